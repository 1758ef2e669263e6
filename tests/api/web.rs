//! The live page (`/`, SPEC §9) in a real headless Chromium, driven over WebDriver.
//!
//! Each test starts its own `chromedriver` on a free port and one browser session with
//! a fresh profile. A missing chromedriver or Chromium fails the test: the page is part
//! of the product, so "could not test it" must not pass as "works".

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::helpers::{PATIENCE, TestApp, spawn_app, spawn_app_with};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

#[actix_web::test]
async fn the_page_connects_shows_the_server_time_and_updates_a_stock_row_in_place() {
    let app = spawn_app_with(|c| c.demo.clock_secs = 1).await;
    let page = Browser::open(&app).await;
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

    // For a look at the page: SSEHUB_SCREENSHOT=/tmp/ssehub-index.png cargo test ...
    if let Ok(path) = std::env::var("SSEHUB_SCREENSHOT") {
        app.publish(json!({"event": "stockUpdate", "topic": "stocks", "payload": {"symbol": "INFY", "price": 1612.5}}))
            .await;
        app.publish(json!({"event": "note", "data": "Markets open <b>now</b>"}))
            .await;
        app.publish(json!({"payload": {"greeting": "hello", "n": 1}}))
            .await;
        page.wait_until(
            "a second row and two listed events",
            "return document.querySelectorAll('#stocks tr').length === 2 \
             && document.querySelectorAll('#events li').length === 2",
        )
        .await;
        let png = page.client.screenshot().await.expect("a screenshot");
        std::fs::write(&path, png).expect("the screenshot is written");
    }
    page.close().await;
}

#[actix_web::test]
async fn other_events_are_listed_newest_first_with_type_id_and_data_as_text() {
    let app = spawn_app().await;
    let page = Browser::open(&app).await;
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
    let page = Browser::open(&app).await;
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
    let page = Browser::open(&app).await;
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
    let page = Browser::open(&app).await;
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
    let page = Browser::open(&app).await;
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

// ---- the browser ----------------------------------------------------------------

/// One Chromium session, driven through its own chromedriver.
pub(crate) struct Browser {
    pub(crate) client: Client,
    _driver: Chromedriver,
}

impl Browser {
    /// Starts chromedriver and Chromium and opens the live page of `app`.
    async fn open(app: &TestApp) -> Self {
        Self::open_at(app, "/").await
    }

    /// Starts chromedriver and Chromium and opens `path` (e.g. `/admin.html`) of `app`.
    pub(crate) async fn open_at(app: &TestApp, path: &str) -> Self {
        let driver = Chromedriver::start().await;
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1200,900",
                    format!("--user-data-dir={}", driver.profile.display()),
                ],
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| panic!("no Chromium session from {CHROMEDRIVER}: {e}"));
        client
            .goto(&app.url(path))
            .await
            .expect("the browser opens the page");
        Browser {
            client,
            _driver: driver,
        }
    }

    /// Runs `script` (a function body) in the page and answers what it returns.
    pub(crate) async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("the page ran {script:?}: {e}"))
    }

    /// Polls the page until `script` returns something `test` accepts; fails after
    /// `PATIENCE`, showing the last answer.
    async fn poll(&self, what: &str, script: &str, test: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let answer = self.js(script).await;
            if test(&answer) {
                return answer;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: never shown within {PATIENCE:?}; the page showed {answer}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub(crate) async fn wait_until(&self, what: &str, script: &str) {
        self.poll(what, script, |v| v == &Value::Bool(true)).await;
    }

    /// The `textContent` of the first element matching `css` ("" when there is none).
    pub(crate) async fn text(&self, css: &str) -> String {
        let script = format!("return document.querySelector({css:?})?.textContent ?? ''");
        self.js(&script)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the text of `css` passes `test`, and answers it.
    pub(crate) async fn wait_for(
        &self,
        what: &str,
        css: &str,
        test: impl Fn(&str) -> bool,
    ) -> String {
        let script = format!("return document.querySelector({css:?})?.textContent ?? ''");
        let text = self
            .poll(what, &script, |v| v.as_str().is_some_and(&test))
            .await;
        text.as_str().unwrap_or_default().to_owned()
    }

    pub(crate) async fn wait_for_text(&self, css: &str, expected: &str) {
        self.wait_for(&format!("{css} reading {expected:?}"), css, |t| {
            t == expected
        })
        .await;
    }

    /// The text of `css` if it is rendered (not `hidden`), else `None`.
    pub(crate) async fn text_if_shown(&self, css: &str) -> Option<String> {
        let script = format!(
            "const e = document.querySelector({css:?}); \
             return e && e.checkVisibility() ? e.textContent : null"
        );
        self.js(&script).await.as_str().map(str::to_owned)
    }

    pub(crate) async fn count(&self, css: &str) -> u64 {
        let script = format!("return document.querySelectorAll({css:?}).length");
        self.js(&script).await.as_u64().expect("a count")
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

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.expect(css);
        field.clear().await.expect("the field clears");
        field.send_keys(text).await.expect("the field takes keys");
    }

    pub(crate) async fn click(&self, css: &str) {
        let button = self.client.find(Locator::Css(css)).await.expect(css);
        button.click().await.expect("the button clicks");
    }

    pub(crate) async fn close(self) {
        self.client.close().await.expect("the session closes");
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

// ---- chromedriver ---------------------------------------------------------------

/// A chromedriver process on a free port, with a fresh Chromium profile directory;
/// both go away on drop.
struct Chromedriver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Chromedriver {
    async fn start() -> Self {
        for (path, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the web tests need a real browser (install {package})"
            );
        }
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let profile = std::env::temp_dir().join(format!(
            "ssehub-web-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("a temporary profile directory");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {CHROMEDRIVER}: {e}"));
        let mut driver = Chromedriver {
            child,
            port,
            profile,
        };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("{CHROMEDRIVER} exited at start-up: {status}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{CHROMEDRIVER} did not listen on port {port} within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Chromedriver {
    /// Asks chromedriver to shut down, which quits the browsers it started (a test that
    /// failed never closed its session, and a killed chromedriver would leave Chromium
    /// running); kills it if it does not exit in time.
    fn drop(&mut self) {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = stream.set_read_timeout(Some(PATIENCE));
            let _ = stream.write_all(
                b"GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            );
            let _ = stream.read_to_end(&mut Vec::new());
        }
        let deadline = std::time::Instant::now() + PATIENCE;
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
