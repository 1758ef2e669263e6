//! The live page (`/`, SPEC §9) in a real headless Chromium, driven over WebDriver
//! (see `browser.rs`: each test starts its own chromedriver and browser, and is
//! skipped, loudly, where they are not installed).

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::browser::{Browser, docs_screenshot};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

#[actix_web::test]
async fn the_page_connects_shows_the_server_time_and_updates_a_stock_row_in_place() {
    let app = spawn_app_with(|c| c.demo.clock_secs = 1).await;
    let Some(page) = Browser::open(&app).await else {
        return;
    };
    page.wait_for_text("#state", "open").await;

    let clock = page
        .wait_for("the server time on the clock", "#clock", |t| {
            is_rfc3339_utc(t)
        })
        .await;
    assert!(is_rfc3339_utc(&clock), "{clock}");

    app.wait_for_clients(1).await;
    let stock = |price| json!({"event": "stockUpdate", "topic": "stocks", "payload": {"symbol": "RELIANCE", "price": price}});
    app.publish(stock(2750)).await;
    let price = "#stocks tr[data-symbol=RELIANCE] .price";
    page.wait_for_text(price, "2750").await;
    app.publish(stock(2760)).await;
    page.wait_for_text(price, "2760").await;
    assert_eq!(page.count("#stocks tr").await, 1, "one row per symbol");
    assert_eq!(
        page.text("#stocks tr[data-symbol=RELIANCE] .change").await,
        "+10"
    );
    assert_eq!(
        page.count("#events li").await,
        0,
        "ticks and quotes are not listed"
    );

    if let Some(path) = docs_screenshot("index") {
        with_realistic_data(&app, &page).await;
        page.screenshot_to(&path).await;
    }
    page.close().await;
}

#[actix_web::test]
async fn other_events_are_listed_newest_first_with_type_id_and_data_as_text() {
    let app = spawn_app().await;
    let Some(page) = Browser::open(&app).await else {
        return;
    };
    page.wait_for_text("#state", "open").await;
    app.wait_for_clients(1).await;

    let note = app
        .publish(json!({"event": "note", "data": "hello <b>x</b>"}))
        .await;
    let unnamed = app.publish(json!({"payload": {"n": 1}})).await;

    let listed = page.wait_for_events("both events", 2).await;
    assert_eq!(
        listed,
        json!([
            {"type": "message", "id": unnamed["id"], "data": "{\"n\":1}"},
            {"type": "note", "id": note["id"], "data": "hello <b>x</b>"},
        ])
    );
    assert_eq!(
        page.count("#events b").await,
        0,
        "event data must be shown as text, not parsed as HTML"
    );
    let shown = page
        .client
        .find(Locator::Css("#events li[data-type=note]"))
        .await
        .expect("the note is listed")
        .text()
        .await
        .expect("its text");
    let id = note["id"].as_str().unwrap();
    for part in ["note", id, "hello <b>x</b>"] {
        assert!(shown.contains(part), "{part:?} is not visible in {shown:?}");
    }
    page.close().await;
}

#[actix_web::test]
async fn the_topic_picker_resubscribes_to_the_chosen_pattern_only() {
    let app = spawn_app().await;
    let Some(page) = Browser::open(&app).await else {
        return;
    };
    app.wait_for_stats("the page's default topics", |s| {
        s["clients"] == 1 && s["topics"] == json!({"time": 1, "stocks": 1})
    })
    .await;

    page.type_into("#topics", "news.*").await;
    page.click("#apply").await;
    app.wait_for_stats("the page subscribed to news.* instead", |s| {
        s["clients"] == 1 && s["topics"] == json!({"news.*": 1})
    })
    .await;
    page.wait_for_text("#state", "open").await;

    let not_for_page = app
        .publish(json!([
            {"event": "note", "topic": "stocks", "data": "stocks only"},
            {"event": "stockUpdate", "topic": "stocks", "payload": {"symbol": "TCS", "price": 1}},
        ]))
        .await;
    assert_eq!(not_for_page["receivers"], 0, "{not_for_page}");
    let sport = app
        .publish(json!({"event": "note", "topic": "news.sport", "data": "sport"}))
        .await;

    // Events arrive in publish order, so once `sport` is shown the others would be too.
    let listed = page.wait_for_events("the news.sport event", 1).await;
    assert_eq!(
        listed,
        json!([{"type": "note", "id": sport["id"], "data": "sport"}])
    );
    assert_eq!(page.count("#stocks tr").await, 0, "no stock row");
    page.close().await;
}

#[actix_web::test]
async fn a_refused_subscription_shows_closed_with_the_servers_reason() {
    let app = spawn_app().await;
    let Some(page) = Browser::open(&app).await else {
        return;
    };
    page.wait_for_text("#state", "open").await;

    page.type_into("#topics", "news.*.sport").await;
    page.click("#apply").await;
    page.wait_for_text("#state", "closed").await;
    let problem = page
        .wait_for("the server's reason", "#problem", |t| t.contains("400"))
        .await;
    assert!(problem.contains("only at the end"), "{problem}");
    assert_eq!(page.text_if_shown("#problem").await, Some(problem));
    page.close().await;
}

#[actix_web::test]
async fn named_events_are_shown_only_when_listed_in_the_extra_names() {
    let app = spawn_app().await;
    let Some(page) = Browser::open(&app).await else {
        return;
    };
    page.wait_for_text("#state", "open").await;

    page.type_into("#names", "build.done, alert").await;
    page.click("#apply").await;
    // Apply sets the state to connecting at once; only the new stream can open it.
    page.wait_for_text("#state", "open").await;
    app.wait_for_clients(1).await;

    app.publish(json!({"event": "note", "data": "no longer listed"}))
        .await;
    let done = app
        .publish(json!({"event": "build.done", "data": "ok"}))
        .await;
    let listed = page.wait_for_events("the build.done event", 1).await;
    assert_eq!(
        listed,
        json!([{"type": "build.done", "id": done["id"], "data": "ok"}])
    );
    page.close().await;
}

#[actix_web::test]
async fn after_a_server_restart_the_page_reconnects_and_warns_that_events_were_missed() {
    let quick = |c: &mut ssehub::config::Config| c.sse.retry_ms = 100;
    let app = spawn_app_with(quick).await;
    let Some(page) = Browser::open(&app).await else {
        return;
    };
    page.wait_for_text("#state", "open").await;
    app.wait_for_clients(1).await;
    let before = app
        .publish(json!({"event": "note", "data": "before"}))
        .await;
    page.wait_for_events("the first event", 1).await;
    assert_eq!(page.text_if_shown("#gap").await, None, "no gap yet");

    app.stop().await;
    page.wait_for_text("#state", "reconnecting").await;

    let port = app.port;
    let restarted = spawn_app_with(|c| {
        quick(c);
        c.server.bind = format!("127.0.0.1:{port}");
    })
    .await;
    page.wait_for_text("#state", "open").await;
    let listed = page.wait_for_events("the hub.gap event", 2).await;
    let asked = json!({"lastEventId": before["id"]}).to_string();
    assert_eq!(listed[0]["type"], "hub.gap", "{listed}");
    assert_eq!(listed[0]["data"], asked, "{listed}");
    let notice = page.text_if_shown("#gap").await.expect("a visible notice");
    assert!(
        notice.contains("missed") && notice.contains(before["id"].as_str().unwrap()),
        "{notice}"
    );
    restarted.wait_for_clients(1).await;
    page.close().await;
}

/// A few more quotes, up and down, and the kinds of other event the page lists, for
/// the README's screenshot.
async fn with_realistic_data(app: &TestApp, page: &Browser) {
    for (symbol, price) in [
        ("TCS", 3905.4),
        ("INFY", 1612.5),
        ("HDFCBANK", 1689.9),
        ("TCS", 3898.1),
        ("INFY", 1618.0),
        ("RELIANCE", 2757.35),
    ] {
        app.publish(json!({"event": "stockUpdate", "topic": "stocks",
                           "payload": {"symbol": symbol, "price": price}}))
            .await;
    }
    app.publish(
        json!({"event": "note", "data": "Pre-open session ended.\nTrading is <b>live</b>."}),
    )
    .await;
    app.publish(json!({"event": "alert", "payload": {"symbol": "TCS", "level": "warn", "text": "down 0.2% in a minute"}}))
        .await;
    app.publish(json!({"payload": {"build": 1842, "status": "deployed"}}))
        .await;
    page.wait_until(
        "four stock rows and three listed events",
        "return document.querySelectorAll('#stocks tr').length === 4 \
         && document.querySelectorAll('#events li').length === 3",
    )
    .await;
}

// ---- the live page ----------------------------------------------------------------

impl Browser {
    /// Starts chromedriver and Chromium and opens the live page of `app`; `None` when
    /// the test is skipped.
    async fn open(app: &TestApp) -> Option<Self> {
        Self::open_at(app, "/").await
    }

    /// Waits until the events list holds `n` items; answers them, newest first, as
    /// `{"type", "id", "data"}`.
    async fn wait_for_events(&self, what: &str, n: usize) -> Value {
        let script = "return [...document.querySelectorAll('#events li')].map(li => ({ \
                      type: li.dataset.type, id: li.dataset.id, \
                      data: li.querySelector('.data').textContent }))";
        self.poll(what, script, |v| v.as_array().is_some_and(|a| a.len() >= n))
            .await
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as the demo clock sends it.
fn is_rfc3339_utc(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}
