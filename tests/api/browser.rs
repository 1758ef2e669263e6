//! A real headless Chromium, driven over WebDriver, for the pages' tests (`web.rs`,
//! `admin.rs`).
//!
//! Each session starts its own `chromedriver` on a free port and one browser with a
//! fresh profile. Chromium and chromedriver are found where `SSEHUB_CHROMIUM` and
//! `SSEHUB_CHROMEDRIVER` point, or else on `PATH`. Where either is missing, a test
//! that needs them says loudly that it was skipped and how to install them, and
//! passes, so `cargo test` passes on a machine that has only Rust (SPEC §2). With
//! `SSEHUB_REQUIRE_BROWSER=1`, as `.ci/run` sets it, their absence fails the test
//! instead: the pages are part of the product, so in CI "could not test it" must not
//! pass as "works".
//!
//! Every session leaves a screenshot of its page when it ends, at
//! `target/screenshots/<module>-<test>.png` (the whole page when the test closes it,
//! the window as it was when a test fails), for CI to keep and people to look at.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::helpers::{PATIENCE, TestApp};
use crate::tools::{Tool, skip_or_fail};

/// Makes a missing browser fail the test instead of skipping it (any value but `0`
/// or empty).
const REQUIRE: &str = "SSEHUB_REQUIRE_BROWSER";

/// Where the tests look for the browser and its driver: an explicit path in the
/// variable, or else the first of the names found on `PATH`.
const CHROMIUM: Tool = Tool {
    what: "Chromium",
    variable: "SSEHUB_CHROMIUM",
    names: &["chromium", "chromium-browser", "google-chrome"],
};
const CHROMEDRIVER: Tool = Tool {
    what: "chromedriver",
    variable: "SSEHUB_CHROMEDRIVER",
    names: &["chromedriver"],
};

/// Where each session leaves its screenshot (see the module's doc).
const SCREENSHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots");

/// The tallest whole-page screenshot, in CSS pixels: a page taller than this (a long
/// event list) is cut there.
const MAX_SCREENSHOT_HEIGHT: u32 = 4000;

/// Set (to anything but `0` or empty) to have the tests that show each page with
/// realistic data also write the README's screenshots (see `docs_screenshot`).
const DOCS_SCREENSHOTS: &str = "SSEHUB_DOCS_SCREENSHOTS";

/// The browser window's size, as the tests see the pages (and as screenshots show them).
const WINDOW: (u32, u32) = (1200, 900);

const HOW_TO_INSTALL: &str = "`apt-get install chromium chromium-driver` (Debian, Ubuntu), \
or set SSEHUB_CHROMIUM and SSEHUB_CHROMEDRIVER to the executables' paths";

/// The browser and its driver, both found.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl Tools {
    /// Both executables, or `None` after telling the person running the tests that
    /// this test was skipped; fails the test instead when `SSEHUB_REQUIRE_BROWSER` is
    /// set.
    fn find() -> Option<Tools> {
        let (chromium, chromedriver) = (CHROMIUM.find(), CHROMEDRIVER.find());
        let missing: Vec<String> = [&chromium, &chromedriver]
            .into_iter()
            .filter_map(|found| found.as_ref().err().cloned())
            .collect();
        if let (Ok(chromium), Ok(chromedriver)) = (chromium, chromedriver) {
            return Some(Tools {
                chromium,
                chromedriver,
            });
        }
        skip_or_fail(REQUIRE, "a real Chromium", &missing, HOW_TO_INSTALL);
        None
    }
}

/// One Chromium session, driven through its own chromedriver.
pub(crate) struct Browser {
    pub(crate) client: Client,
    /// The WebDriver session's id, for the screenshot of a test that ends without
    /// `close` (a failure): see `Drop`.
    session: Option<String>,
    /// Set by `close`, which has taken the screenshot already.
    closed: bool,
    driver: Chromedriver,
}

impl Browser {
    /// Starts chromedriver and Chromium and opens `path` (e.g. `/admin.html`) of `app`;
    /// `None` when the test is to be skipped because they are not installed (see
    /// `Tools::find`). A test ends there: `let Some(page) = .. else { return };`.
    pub(crate) async fn open_at(app: &TestApp, path: &str) -> Option<Self> {
        Self::open_url(&app.url(path)).await
    }

    /// Like `open_at`, for any URL (a proxy in front of the app, say).
    pub(crate) async fn open_url(url: &str) -> Option<Self> {
        let tools = Tools::find()?;
        let driver = Chromedriver::start(&tools.chromedriver).await;
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--window-size={},{}", WINDOW.0, WINDOW.1),
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
            .unwrap_or_else(|e| {
                let (chromium, chromedriver) =
                    (tools.chromium.display(), tools.chromedriver.display());
                panic!("no session of {chromium} from {chromedriver}: {e}")
            });
        client.goto(url).await.expect("the browser opens the page");
        let session = client.session_id().await.ok().flatten();
        Some(Browser {
            client,
            session,
            closed: false,
            driver,
        })
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
    pub(crate) async fn poll(
        &self,
        what: &str,
        script: &str,
        test: impl Fn(&Value) -> bool,
    ) -> Value {
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

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.expect(css);
        field.clear().await.expect("the field clears");
        field.send_keys(text).await.expect("the field takes keys");
    }

    pub(crate) async fn click(&self, css: &str) {
        let button = self.client.find(Locator::Css(css)).await.expect(css);
        button.click().await.expect("the button clicks");
    }

    /// Saves a PNG of the whole page (up to `MAX_SCREENSHOT_HEIGHT`) at `path`, creating
    /// its directory. The window grows to the page's height and stays so.
    pub(crate) async fn screenshot_to(&self, path: &Path) {
        // The window's height is the page's plus whatever the window holds besides.
        let height = self
            .js("return Math.ceil(document.documentElement.scrollHeight \
                 + window.outerHeight - window.innerHeight)")
            .await
            .as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .unwrap_or(WINDOW.1)
            .clamp(WINDOW.1, MAX_SCREENSHOT_HEIGHT);
        self.client
            .set_window_size(WINDOW.0, height)
            .await
            .expect("the window resizes");
        // Two frames: the resize's layout, then what the page redraws for it (the chart).
        self.js("return new Promise((done) => \
                 requestAnimationFrame(() => requestAnimationFrame(() => done(true))))")
            .await;
        let png = self.client.screenshot().await.expect("a screenshot");
        write_png(path, &png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Ends the session, after saving the test's screenshot (see the module's doc).
    pub(crate) async fn close(mut self) {
        self.screenshot_to(&screenshot_path()).await;
        self.closed = true;
        self.client
            .clone()
            .close()
            .await
            .expect("the session closes");
    }
}

impl Drop for Browser {
    /// A test that failed (or returned without `close`) still leaves its screenshot,
    /// the window as the failure found it. The async client cannot run here, inside
    /// the test's runtime as it unwinds, so this asks chromedriver directly.
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let Some(session) = &self.session else {
            return;
        };
        let screenshot = self
            .driver
            .get(&format!("/session/{session}/screenshot"))
            .and_then(|answer| decode_base64(answer["value"].as_str()?));
        // No panic here: this may run while a failed test unwinds.
        let path = screenshot_path();
        match screenshot.map(|png| write_png(&path, &png)) {
            Some(Ok(())) => {}
            Some(Err(e)) => eprintln!("cannot write {}: {e}", path.display()),
            None => eprintln!("no screenshot of the page: chromedriver did not give one"),
        }
    }
}

/// `docs/screenshots/<page>.png` when `SSEHUB_DOCS_SCREENSHOTS` is set, else `None`.
/// The README's pictures come from one test per page, which then adds realistic data
/// before its screenshot:
/// `SSEHUB_DOCS_SCREENSHOTS=1 cargo test --test api -- web::the_page_connects admin::the_live_stats`
pub(crate) fn docs_screenshot(page: &str) -> Option<PathBuf> {
    std::env::var(DOCS_SCREENSHOTS)
        .is_ok_and(|v| !v.is_empty() && v != "0")
        .then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/screenshots/{page}.png")))
}

/// `target/screenshots/<module>-<test>.png`, named after the running test (its thread).
fn screenshot_path() -> PathBuf {
    let test = std::thread::current()
        .name()
        .map_or_else(|| "browser".to_owned(), |name| name.replace("::", "-"));
    Path::new(SCREENSHOTS).join(format!("{test}.png"))
}

/// Writes `png` at `path`, creating its directory.
fn write_png(path: &Path, png: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, png)
}

/// Standard base64 (WebDriver's encoding of a screenshot); `None` if it is not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut held) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=') {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        held += 6;
        if held >= 8 {
            held -= 8;
            // unwrap: masked to 8 bits
            bytes.push(u8::try_from((bits >> held) & 0xff).unwrap());
        }
    }
    Some(bytes)
}

/// A chromedriver process on a free port, with a fresh Chromium profile directory;
/// both go away on drop.
struct Chromedriver {
    child: Child,
    path: PathBuf,
    port: u16,
    profile: PathBuf,
}

impl Chromedriver {
    async fn start(path: &Path) -> Self {
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
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        let mut driver = Chromedriver {
            child,
            path: path.to_owned(),
            port,
            profile,
        };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("{} exited at start-up: {status}", driver.path.display());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not listen on port {port} within {PATIENCE:?}",
                driver.path.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A WebDriver `GET` over a plain blocking connection (for `Drop`, where the async
    /// client cannot run); its JSON answer, or `None` if there is none.
    fn get(&self, path: &str) -> Option<Value> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(PATIENCE)).ok()?;
        (&stream)
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .ok()?;
        // chromedriver keeps the connection open: read the body by its length.
        let mut reader = BufReader::new(stream);
        let mut length = None;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).ok()?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().ok();
            }
        }
        let mut body = vec![0; length?];
        reader.read_exact(&mut body).ok()?;
        serde_json::from_slice(&body).ok()
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
