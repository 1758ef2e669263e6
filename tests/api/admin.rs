//! The publisher console (`/admin.html`, SPEC §9) in a real headless Chromium: what is
//! published from its form reaches real subscribers, refusals are shown and publish
//! nothing, and its live stats follow the hub.

use std::time::Duration;

use serde_json::{Value, json};

use crate::browser::Browser;
use crate::helpers::{TestApp, spawn_app};

/// Opens the console and records every `POST /broadcast` the page makes (URL, headers
/// and body, as passed to `fetch`), so a test can tell "refused by the page" from
/// "refused by the server". `None` when the test is skipped (no browser installed).
async fn open_console(app: &TestApp) -> Option<Browser> {
    let page = Browser::open_at(app, "/admin.html").await?;
    page.js("window.__posts = []; \
         const original = window.fetch; \
         window.fetch = function (url, init) { \
           if (String(url).includes('/broadcast')) window.__posts.push({ \
             url: String(url), method: init?.method, headers: init?.headers, body: init?.body }); \
           return original.apply(this, arguments); \
         }; \
         return true")
        .await;
    Some(page)
}

/// The requests to `/broadcast` the page has made so far.
async fn posts(page: &Browser) -> Vec<Value> {
    match page.js("return window.__posts").await {
        Value::Array(posts) => posts,
        other => panic!("the request log is gone: {other}"),
    }
}

/// Fills the publish form; an empty string empties a field.
async fn fill(page: &Browser, event: &str, topics: &str, payload: &str, as_text: bool) {
    for (css, text) in [
        ("#event", event),
        ("#topics", topics),
        ("#payload", payload),
    ] {
        if text.is_empty() {
            page.js(&format!(
                "document.querySelector({css:?}).value = ''; return true"
            ))
            .await;
        } else {
            page.type_into(css, text).await;
        }
    }
    let checked = page
        .js("return document.querySelector('#as-text').checked")
        .await;
    if checked != Value::Bool(as_text) {
        page.click("#as-text").await;
    }
}

/// Waits for an answer whose body mentions `needle`; answers (status, parsed body).
async fn answer_with(page: &Browser, needle: &str) -> (String, Value) {
    let text = page
        .wait_for(&format!("an answer with {needle:?}"), "#answer", |t| {
            t.contains(needle)
        })
        .await;
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("#answer shows the server's JSON as sent: {e}: {text}"));
    (page.text("#answer-status").await, body)
}

#[actix_web::test]
async fn what_the_console_publishes_reaches_a_subscriber_exactly_and_the_answer_is_shown() {
    let app = spawn_app().await;
    let mut subscriber = app.subscribe("/events?topic=stocks").await;
    let Some(page) = open_console(&app).await else {
        return;
    };

    fill(
        &page,
        "stockUpdate",
        "stocks",
        r#"{"symbol": "RELIANCE",  "price": 2750}"#,
        false,
    )
    .await;
    page.type_into("#token", "s3cret").await;
    page.click("#publish").await;

    let got = subscriber.next().await;
    assert_eq!(got.event, "stockUpdate");
    assert_eq!(got.data, r#"{"symbol":"RELIANCE","price":2750}"#);
    let id = got.id.clone();
    let (status, answer) = answer_with(&page, &id).await;
    assert_eq!(status, "200");
    assert_eq!(
        answer,
        json!({"success": true, "id": id, "receivers": 1}),
        "the answer names the id the subscriber saw"
    );
    assert!(
        page.text("#answer").await.contains(r#""success":true"#),
        "the server's JSON is shown as it came"
    );
    let sent = posts(&page).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["method"], "POST");
    assert_eq!(sent[0]["headers"]["Content-Type"], "application/json");
    assert_eq!(sent[0]["headers"]["Authorization"], "Bearer s3cret");

    // Several topics go as `topics`, and plain text as `data`, line by line.
    fill(
        &page,
        "note",
        "stocks, news",
        "not <b>JSON</b>\nline two",
        true,
    )
    .await;
    page.type_into("#id", "note-1").await;
    page.click("#publish").await;
    let got = subscriber.next().await;
    assert_eq!(
        (got.event.as_str(), got.id.as_str(), got.data.as_str()),
        ("note", "note-1", "not <b>JSON</b>\nline two")
    );
    let (status, answer) = answer_with(&page, "note-1").await;
    assert_eq!(status, "200");
    assert_eq!(answer["success"], true, "{answer}");
    let sent = posts(&page).await[1]["body"].as_str().unwrap().to_owned();
    assert_eq!(
        page.text("#sent").await,
        sent,
        "the page shows what it sent"
    );
    assert_eq!(
        page.count("#sent b").await,
        0,
        "as text, not parsed as HTML"
    );
    let body: Value = serde_json::from_str(&sent).expect("the page sends JSON");
    assert_eq!(
        body,
        json!({"event": "note", "topics": ["stocks", "news"], "id": "note-1",
               "data": "not <b>JSON</b>\nline two"})
    );

    // No topic and no name: a global broadcast, which browsers see as `message`.
    fill(&page, "", "", "null", false).await;
    page.js("document.querySelector('#id').value = ''; return true")
        .await;
    page.click("#publish").await;
    let got = subscriber.next().await;
    assert_eq!((got.event.as_str(), got.data.as_str()), ("message", "null"));
    answer_with(&page, &got.id).await;
    page.close().await;
}

#[actix_web::test]
async fn a_refused_event_shows_the_servers_reason_and_bad_json_is_caught_before_sending() {
    let app = spawn_app().await;
    let mut subscriber = app.subscribe("/events?topic=*").await;
    let Some(page) = open_console(&app).await else {
        return;
    };

    fill(&page, "hub.x", "stocks", r#"{"price": 1}"#, false).await;
    page.click("#publish").await;
    let (status, answer) = answer_with(&page, "\"success\"").await;
    assert_eq!(status, "400", "{answer}");
    assert_eq!(answer["success"], false, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("event:"), "names the field: {answer}");
    assert_eq!(
        page.text_if_shown("#payload-error").await,
        None,
        "the payload was fine"
    );

    // Not JSON: the page says so next to the payload and sends nothing.
    fill(&page, "stockUpdate", "stocks", r#"{"price": 1,}"#, false).await;
    page.click("#publish").await;
    let problem = page
        .text_if_shown("#payload-error")
        .await
        .expect("an inline error under the payload");
    assert!(problem.contains("not JSON"), "{problem}");
    assert_eq!(
        page.js("return document.querySelector('#payload').getAttribute('aria-invalid')")
            .await,
        "true"
    );
    assert_eq!(
        posts(&page).await.len(),
        1,
        "only the hub.x request was sent"
    );
    assert_eq!(
        page.text("#answer-status").await,
        "400",
        "the last answer stays"
    );

    // Fixing it clears the error.
    page.type_into("#payload", "[]").await;
    assert_eq!(page.text_if_shown("#payload-error").await, None);

    // Events arrive in the hub's order: what did not come before the marker was
    // never sent.
    let marker = app
        .publish(json!({"event": "marker", "payload": null}))
        .await;
    let before = subscriber.until(marker["id"].as_str().unwrap()).await;
    assert!(
        before.is_empty(),
        "a refused event reaches nobody: {before:?}"
    );
    // /stats is rebuilt at most once a second: wait for the answer that counts it.
    app.wait_for_stats("only the marker published", |s| s["published"] == 1)
        .await;
    page.close().await;
}

#[actix_web::test]
async fn the_live_stats_follow_clients_publishes_and_deliveries() {
    let app = spawn_app().await;
    let Some(page) = open_console(&app).await else {
        return;
    };
    page.wait_for_text("#stats-state", "live").await;
    page.wait_for_text("#clients", "0").await;
    assert_eq!(page.text("#published").await, "0");
    assert_eq!(page.count("#topic-list tr").await, 0);

    let mut subscriber = app.subscribe("/events?topic=stocks").await;
    app.wait_for_clients(1).await;
    app.publish(json!({"event": "stockUpdate", "topic": "stocks", "payload": {"symbol": "TCS", "price": 3900}}))
        .await;
    subscriber.next().await;

    page.wait_for_text("#clients", "1").await;
    page.wait_for_text("#published", "1").await;
    page.wait_for_text("#delivered", "1").await;
    assert_eq!(page.text("#dropped").await, "0");
    page.wait_for_text("#topic-list tr[data-topic=stocks] .count", "1")
        .await;
    assert_eq!(page.count("#topic-list tr").await, 1);
    // The delivery is drawn: the deliveries-per-second line rises above zero somewhere.
    page.wait_until(
        "a delivery drawn on the chart",
        "const line = document.querySelector('#chart polyline.delivered'); \
         if (!line) return false; \
         const ys = line.getAttribute('points').trim().split(/\\s+/) \
           .map((p) => Number(p.split(',')[1])); \
         return ys.length >= 2 && ys.every(Number.isFinite) && Math.min(...ys) < Math.max(...ys)",
    )
    .await;

    // For a look at the console: SSEHUB_ADMIN_SCREENSHOT=/tmp/ssehub-admin.png cargo test ...
    if let Ok(path) = std::env::var("SSEHUB_ADMIN_SCREENSHOT") {
        screenshot_with_traffic(&app, &page, &path).await;
    }

    drop(subscriber);
    page.wait_for_text("#clients", "0").await;
    page.wait_for("the topic list emptied", "#topic-list", str::is_empty)
        .await;
    page.close().await;
}

/// Some subscribers and a few seconds of uneven traffic, then a screenshot.
async fn screenshot_with_traffic(app: &TestApp, page: &Browser, path: &str) {
    let mut others = Vec::new();
    for query in [
        "topic=news.*",
        "topic=stocks&topic=news.sport",
        "topic=*",
        "",
    ] {
        others.push(app.subscribe(&format!("/events?{query}")).await);
    }
    for second in 0..8u32 {
        for n in 0..(second * 7 % 11 + 1) {
            app.publish(json!({"event": "stockUpdate", "topic": "stocks", "payload": {"symbol": "INFY", "price": 1600 + n}}))
                .await;
        }
        app.publish(json!({"event": "note", "topic": "news.sport", "data": "goal"}))
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    fill(
        page,
        "stockUpdate",
        "stocks, news.markets",
        "{\"symbol\": \"RELIANCE\", \"price\": 2750}",
        false,
    )
    .await;
    page.click("#publish").await;
    answer_with(page, "\"success\"").await;
    page.client
        .set_window_size(1200, 1400)
        .await
        .expect("the window resizes");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let png = page.client.screenshot().await.expect("a screenshot");
    std::fs::write(path, png).expect("the screenshot is written");
    drop(others);
}
