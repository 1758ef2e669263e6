//! The publisher console (`/admin.html`, SPEC §8, §9) in a real headless Chromium: what
//! is published from its form reaches real subscribers, refusals are shown and publish
//! nothing, its live stats follow the hub, and it lists the connected clients and
//! disconnects one.

use std::time::Duration;

use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

use crate::browser::{Browser, docs_screenshot};
use crate::helpers::{End, Subscriber, TestApp, spawn_app, spawn_app_with};

const TOKEN: &str = "s3cret-admin";

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

    // Published to nobody: the publishes line rises, the deliveries line stays flat.
    app.publish(json!({"event": "note", "topic": "nobody", "data": "unheard"}))
        .await;
    page.wait_for_text("#published", "1").await;
    page.wait_until(
        "a publish drawn on the chart",
        &format!("return {}", rises("published")),
    )
    .await;
    assert_eq!(page.text("#delivered").await, "0");
    assert_eq!(
        page.js(&format!("return {}", rises("delivered"))).await,
        false,
        "nothing was delivered"
    );
    let legend = page.text(".legend").await;
    assert!(
        legend.contains("deliveries / s") && legend.contains("published / s"),
        "{legend}"
    );

    let mut subscriber = app.subscribe("/events?topic=stocks").await;
    app.wait_for_clients(1).await;
    app.publish(json!({"event": "stockUpdate", "topic": "stocks", "payload": {"symbol": "TCS", "price": 3900}}))
        .await;
    subscriber.next().await;

    page.wait_for_text("#clients", "1").await;
    page.wait_for_text("#published", "2").await;
    page.wait_for_text("#delivered", "1").await;
    assert_eq!(page.text("#dropped").await, "0");
    page.wait_for_text("#topic-list tr[data-topic=stocks] .count", "1")
        .await;
    assert_eq!(page.count("#topic-list tr").await, 1);
    page.wait_until(
        "a delivery drawn on the chart",
        &format!("return {}", rises("delivered")),
    )
    .await;

    if let Some(path) = docs_screenshot("admin") {
        with_traffic(&app, &page, &path).await;
    }

    drop(subscriber);
    page.wait_for_text("#clients", "0").await;
    page.wait_for("the topic list emptied", "#topic-list", str::is_empty)
        .await;
    page.close().await;
}

/// A script expression: whether the chart's line of `series` (`delivered` or
/// `published`) rises above zero somewhere, i.e. has two points at different heights
/// (every rate is at least zero, so the lowest point drawn is not zero).
fn rises(series: &str) -> String {
    format!(
        "(() => {{ const line = document.querySelector('#chart polyline.{series}'); \
         if (!line) return false; \
         const ys = line.getAttribute('points').trim().split(/\\s+/) \
           .map((p) => Number(p.split(',')[1])); \
         return ys.length >= 2 && ys.every(Number.isFinite) && Math.min(...ys) < Math.max(...ys); }})()"
    )
}

#[actix_web::test]
async fn the_clients_list_shows_each_subscriber_and_disconnect_ends_its_stream() {
    let app = spawn_app().await;
    let path = "/events?topic=orders.eu&topic=news.*";
    let mut subscriber = app.subscribe(path).await;
    let mut bystander = app.subscribe("/events").await;
    app.wait_for_clients(2).await;
    let Some(page) = open_console(&app).await else {
        return;
    };

    // Listed as the server lists them, most recent first.
    let listed = list_clients(&app, None).await;
    let ids: Vec<&str> = listed.iter().map(|c| c["id"].as_str().unwrap()).collect();
    let ours = listed
        .iter()
        .find(|c| c["topics"] != json!([]))
        .unwrap_or_else(|| panic!("the subscriber with topics: {listed:?}"));
    let id = ours["id"].as_str().unwrap().to_owned();
    let topics: Vec<&str> = ours["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        topics.contains(&"orders.eu") && topics.contains(&"news.*"),
        "{ours}"
    );
    let row = format!("#client-list tr[data-id='{id}']");
    page.wait_for_text(&format!("{row} .topics"), &topics.join(", "))
        .await;
    page.wait_for_text("#clients-state", "2 connected").await;
    assert_eq!(
        page.js(
            "return [...document.querySelectorAll('#client-list tr')].map((r) => r.dataset.id)"
        )
        .await,
        json!(ids)
    );
    let shown = page
        .js(&format!(
            "const row = document.querySelector(\"{row}\"); \
             return {{ id: row.querySelector('code').textContent, \
                       full: row.querySelector('code').title, \
                       peer: row.querySelector('.peer').textContent, \
                       age: row.querySelector('.age').textContent, \
                       queued: row.querySelector('.queued').textContent, \
                       button: row.querySelector('button').textContent }}"
        ))
        .await;
    assert_eq!(shown["id"], format!("{}…", &id[..8]), "shortened: {shown}");
    assert_eq!(shown["full"], id, "the full id in the title: {shown}");
    assert_eq!(shown["peer"], ours["peer"], "{shown}");
    assert!(
        shown["age"].as_str().unwrap().ends_with('s'),
        "connected for seconds: {shown}"
    );
    assert_eq!(shown["queued"], "0", "{shown}");
    assert!(
        shown["button"].as_str().unwrap().starts_with("Disconnect"),
        "{shown}"
    );
    let bystander_row = format!("#client-list tr[data-id='{}'] .topics", ids[0]);
    assert_eq!(
        page.text(&bystander_row).await,
        "none (global broadcasts only)"
    );

    // Disconnect: the subscriber's stream ends, the page says so, and the list updates.
    page.click(&format!("{row} button.disconnect")).await;
    ended(&mut subscriber).await;
    let answer = page
        .wait_for("the disconnect's outcome", "#disconnect-answer", |t| {
            t.contains("204")
        })
        .await;
    assert!(
        answer.contains("Disconnected") && answer.contains(&id[..8]),
        "{answer}"
    );
    page.wait_until(
        "the disconnected client gone from the list",
        &format!(
            "return document.querySelector(\"{row}\") === null \
             && document.querySelectorAll('#client-list tr').length === 1"
        ),
    )
    .await;
    page.wait_for_text("#clients-state", "1 connected").await;

    // It reconnects, as a new client, and receives again; the bystander never noticed.
    let mut again = app.subscribe(path).await;
    page.wait_until(
        "the reconnected client listed",
        &format!(
            "const rows = [...document.querySelectorAll('#client-list tr')]; \
             return rows.length === 2 && rows[0].dataset.id !== '{id}' \
               && rows[0].querySelector('.topics').textContent === {:?}",
            topics.join(", ")
        ),
    )
    .await;
    let order = app
        .publish(json!({"event": "order", "topic": "orders.eu", "payload": {"n": 1}}))
        .await;
    assert_eq!(again.next().await.id, order["id"]);
    let note = app
        .publish(json!({"event": "note", "data": "for everyone"}))
        .await;
    assert_eq!(bystander.next().await.id, note["id"]);
    page.close().await;
}

#[actix_web::test]
async fn with_auth_the_clients_list_asks_for_an_admin_token_and_shows_them_once_typed() {
    let app = spawn_app_with(|c| c.auth.publish_token = TOKEN.into()).await;
    let mut subscriber = app.subscribe("/events?topic=stocks").await;
    let Some(page) = open_console(&app).await else {
        return;
    };

    page.wait_for_text("#clients-state", "needs an admin token")
        .await;
    let problem = page
        .text_if_shown("#clients-problem")
        .await
        .expect("a visible explanation");
    assert!(
        problem.contains("401") && problem.contains("admin token") && problem.contains("Token"),
        "{problem}"
    );
    assert_eq!(page.count("#client-list tr").await, 0);
    assert_eq!(page.text("#stats-state").await, "needs an admin token");

    page.type_into("#token", "not-the-token").await;
    page.wait_for_text("#clients-state", "token refused").await;

    page.type_into("#token", TOKEN).await;
    page.wait_for_text("#clients-state", "1 connected").await;
    page.wait_for_text("#client-list tr .topics", "stocks")
        .await;
    assert_eq!(page.text_if_shown("#clients-problem").await, None);
    page.wait_for_text("#stats-state", "live").await;
    let listed = list_clients(&app, Some(TOKEN)).await;
    assert_eq!(
        page.js("return document.querySelector('#client-list tr').dataset.id")
            .await,
        listed[0]["id"]
    );

    // The disconnect carries the token as well.
    page.click("#client-list tr button.disconnect").await;
    ended(&mut subscriber).await;
    page.wait_for("the disconnect's outcome", "#disconnect-answer", |t| {
        t.contains("204")
    })
    .await;
    page.wait_for_text("#clients-state", "none connected").await;
    page.close().await;
}

/// `GET /clients` as the test sees it, with the bearer `token` if any.
async fn list_clients(app: &TestApp, token: Option<&str>) -> Vec<Value> {
    let mut request = app.http.get(app.url("/clients"));
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = request
        .send()
        .await
        .expect("GET /clients reaches the server");
    assert_eq!(response.status(), 200);
    match response.json().await.expect("/clients is JSON") {
        Value::Array(clients) => clients,
        other => panic!("/clients is a list: {other}"),
    }
}

/// Waits for the stream of a client the admin disconnected to stop: cleanly or broken,
/// as for a dropped slow client (SPEC §8), but with no event first.
async fn ended(subscriber: &mut Subscriber) {
    match subscriber.next_or_end().await {
        Err(End::Clean | End::Broken(_)) => {}
        Ok(event) => panic!("expected the stream to end, got {event:?}"),
    }
}

/// Some more subscribers, a publish from the form and a few seconds of uneven traffic,
/// then the README's screenshot at `path`, taken while the rates are still up.
async fn with_traffic(app: &TestApp, page: &Browser, path: &std::path::Path) {
    let mut others = Vec::new();
    for query in [
        "topic=news.*",
        "topic=stocks&topic=news.sport",
        "topic=*",
        "",
    ] {
        others.push(app.subscribe(&format!("/events?{query}")).await);
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
    for second in 0..10u32 {
        if second > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        for n in 0..(second * 7 % 11 + 1) {
            app.publish(json!({"event": "stockUpdate", "topic": "stocks", "payload": {"symbol": "INFY", "price": 1600 + n}}))
                .await;
        }
        app.publish(json!({"event": "note", "topic": "news.sport", "data": "goal"}))
            .await;
    }
    page.wait_for_text("#clients-state", "5 connected").await;
    page.wait_for("the last second's publishes", "#rate-published", |t| {
        t != "0" && t != "—"
    })
    .await;
    page.screenshot_to(path).await;
    drop(others);
}
