//! `spawn_app`: the real server (the same `Application::build` as `main`) on port 0,
//! with real HTTP clients and a WHATWG-conforming SSE parser.

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use ssehub::config::Config;
use ssehub::startup::{Application, Stopper};

/// How long a test waits for something it expects before failing.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub http: reqwest::Client,
    stopper: Stopper,
}

/// The server with test-friendly defaults: one worker, no demo clock, `web/` found
/// wherever the tests run.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::default();
    config.server.bind = "127.0.0.1:0".into();
    config.server.workers = 1;
    config.server.static_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/web").into();
    config.server.shutdown_timeout_secs = 2;
    tweak(&mut config);
    let app = Application::build(&config).expect("the test config is valid");
    let port = app.port();
    let stopper = app.stopper();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        port,
        http: http_client(),
        stopper,
    }
}

/// A reqwest client. reqwest speaks TLS through rustls here, without a crypto provider
/// of its own (aws-lc would be built for it): it takes the process default, which is
/// set to rustls's `ring`, the server's provider, before the first client is made.
pub fn http_client() -> reqwest::Client {
    // An error means it is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>>>>;

/// A subscriber: the response's body read through `eventsource-stream`.
pub struct Subscriber {
    events: Events,
}

/// How a stream stopped. A test that expects a stream to stop says which of these it
/// accepts: the server ending a stream on purpose (stop, shutdown) is `Clean`, while a
/// client the hub cut for being slow may see either.
#[derive(Debug)]
pub enum End {
    /// The body finished: the server ended the response (the chunked terminator).
    Clean,
    /// The connection broke before the body finished (a reset, a truncated chunk).
    Broken(String),
}

/// What a read from the stream gave: an event, or how the stream stopped. A body that
/// is not valid UTF-8 or not an event stream fails the test here: no caller expects it.
fn outcome(item: Option<Result<Event, EventStreamError<reqwest::Error>>>) -> Result<Event, End> {
    match item {
        Some(Ok(event)) => Ok(event),
        None => Err(End::Clean),
        Some(Err(EventStreamError::Transport(error))) => Err(End::Broken(format!("{error:?}"))),
        Some(Err(malformed)) => panic!("the server sent a malformed event stream: {malformed:?}"),
    }
}

impl Subscriber {
    /// The next event; fails the test if none comes within `PATIENCE`.
    pub async fn next(&mut self) -> Event {
        match self.next_or_end().await {
            Ok(event) => event,
            Err(end) => panic!("expected an event, but the stream stopped: {end:?}"),
        }
    }

    /// The next event, or how the stream stopped if it stops first; fails the test if
    /// neither happens within `PATIENCE`. The caller decides which `End` it accepts.
    pub async fn next_or_end(&mut self) -> Result<Event, End> {
        match tokio::time::timeout(PATIENCE, self.events.next()).await {
            Ok(item) => outcome(item),
            Err(_) => panic!("neither an event nor the end within {PATIENCE:?}"),
        }
    }

    /// The next `n` events' data.
    pub async fn next_data(&mut self, n: usize) -> Vec<String> {
        let mut data = Vec::with_capacity(n);
        for _ in 0..n {
            data.push(self.next().await.data);
        }
        data
    }

    /// Reads events until the one whose id is `marker` (published after everything the
    /// test expects), and answers those that came before it. This is how a test shows
    /// that nothing else arrived: events reach a client in the hub's order, so what did
    /// not come before the marker was never sent, whereas a pause proves nothing.
    pub async fn until(&mut self, marker: &str) -> Vec<Event> {
        let mut before = Vec::new();
        loop {
            let event = self.next().await;
            if event.id == marker {
                return before;
            }
            before.push(event);
        }
    }

    /// The data of the events before the marker (see `until`).
    pub async fn data_until(&mut self, marker: &str) -> Vec<String> {
        self.until(marker)
            .await
            .into_iter()
            .map(|e| e.data)
            .collect()
    }

    /// Waits for the server to finish the response; fails if an event comes instead
    /// or the connection breaks.
    pub async fn ended_cleanly(&mut self) {
        match self.end().await {
            End::Clean => {}
            End::Broken(reason) => panic!("expected a clean end, the stream broke: {reason}"),
        }
    }

    async fn end(&mut self) -> End {
        match self.next_or_end().await {
            Err(end) => end,
            Ok(event) => panic!("expected the end, got {event:?}"),
        }
    }
}

/// Sends `request` (a `GET /events`, to any server) and checks it is a 200 event
/// stream.
pub async fn open_stream(request: reqwest::RequestBuilder) -> Subscriber {
    let response = request
        .send()
        .await
        .expect("GET /events reaches the server");
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    Subscriber {
        events: Box::pin(response.bytes_stream().eventsource()),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("GET reaches the server")
    }

    /// Opens `path` (e.g. `/events?topic=a`) and checks it is a 200 event stream.
    pub async fn subscribe(&self, path: &str) -> Subscriber {
        self.subscribe_with(self.http.get(self.url(path))).await
    }

    /// Like `subscribe`, resuming after `last_id` as a reconnecting browser does.
    pub async fn resume(&self, path: &str, last_id: &str) -> Subscriber {
        self.subscribe_with(
            self.http
                .get(self.url(path))
                .header("Last-Event-ID", last_id),
        )
        .await
    }

    async fn subscribe_with(&self, request: reqwest::RequestBuilder) -> Subscriber {
        open_stream(request).await
    }

    /// Publishes and expects success; answers the JSON reply.
    pub async fn publish(&self, body: Value) -> Value {
        let (status, reply) = self.try_publish(body).await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["success"], true, "{reply}");
        reply
    }

    pub async fn try_publish(&self, body: Value) -> (u16, Value) {
        self.post(Some("application/json"), body.to_string().into_bytes())
            .await
    }

    pub async fn post(&self, content_type: Option<&str>, body: Vec<u8>) -> (u16, Value) {
        let mut request = self.http.post(self.url("/broadcast")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let response = request.send().await.expect("POST reaches the server");
        let status = response.status().as_u16();
        let reply = response.json().await.expect("every answer is JSON");
        (status, reply)
    }

    pub async fn stats(&self) -> Value {
        self.get("/stats")
            .await
            .json()
            .await
            .expect("/stats is JSON")
    }

    /// Polls `/stats` until `test` holds; fails the test after `PATIENCE`.
    pub async fn wait_for_stats(&self, what: &str, test: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let stats = self.stats().await;
            if test(&stats) {
                return stats;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: never happened; {stats}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_for_clients(&self, n: u64) {
        self.wait_for_stats(&format!("{n} clients"), |s| s["clients"] == n)
            .await;
    }

    /// After a slow client was dropped: the one subscriber left gets the next event.
    pub async fn healthy_gets_what_comes_next(&self, healthy: &mut Subscriber) {
        let reply = self.publish(serde_json::json!({"data": "after"})).await;
        assert_eq!(reply["receivers"], 1, "only the healthy subscriber is left");
        let next = healthy.next().await;
        assert_eq!(
            (next.id.as_str(), next.data.as_str()),
            (reply["id"].as_str().unwrap(), "after")
        );
    }

    pub async fn stop(&self) {
        self.stopper.stop().await;
    }
}
