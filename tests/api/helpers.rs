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
        http: reqwest::Client::new(),
        stopper,
    }
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>>>>;

/// A subscriber: the response's body read through `eventsource-stream`.
pub struct Subscriber {
    events: Events,
}

impl Subscriber {
    /// The next event; fails the test if none comes within `PATIENCE`.
    pub async fn next(&mut self) -> Event {
        match tokio::time::timeout(PATIENCE, self.events.next()).await {
            Ok(Some(Ok(event))) => event,
            Ok(other) => panic!("the stream ended or broke: {other:?}"),
            Err(_) => panic!("no event within {PATIENCE:?}"),
        }
    }

    /// The next event, or `None` if the stream ends (or breaks) first.
    pub async fn next_or_end(&mut self) -> Option<Event> {
        match tokio::time::timeout(PATIENCE, self.events.next()).await {
            Ok(Some(Ok(event))) => Some(event),
            Ok(_) => None,
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

    /// Waits for the server to end the stream; fails if an event comes instead.
    pub async fn ended(&mut self) {
        match tokio::time::timeout(PATIENCE, self.events.next()).await {
            Ok(None) | Ok(Some(Err(_))) => {}
            Ok(Some(Ok(event))) => panic!("expected the end, got {event:?}"),
            Err(_) => panic!("the stream did not end within {PATIENCE:?}"),
        }
    }

    /// Whether an event arrives within `wait` (for asserting that nothing does).
    pub async fn quiet_for(&mut self, wait: Duration) -> Option<Event> {
        match tokio::time::timeout(wait, self.events.next()).await {
            Ok(Some(Ok(event))) => Some(event),
            _ => None,
        }
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
        let response = request
            .send()
            .await
            .expect("GET /events reaches the server");
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        Subscriber {
            events: Box::pin(response.bytes_stream().eventsource()),
        }
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

    pub async fn stop(&self) {
        self.stopper.stop().await;
    }
}
