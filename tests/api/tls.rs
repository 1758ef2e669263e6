//! HTTPS with HTTP/2 (SPEC §7): subscribers get everything over TLS and over HTTP/2,
//! many streams share one connection, every answer carries HSTS, and a client that
//! stops reading is dropped over TLS and over HTTP/2 as over plain TCP (SPEC §6). The
//! certificate is made by each test; bad certificate settings exit 2 naming the key.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::cli::{refusal, ssehub, write_config};
use crate::helpers::{PATIENCE, TestApp, spawn_app, spawn_app_with};
use crate::slow::server_side_closes;

/// The HSTS header every answer carries with TLS (a year; see `tls::HSTS_MAX_AGE`).
const HSTS: &str = "max-age=31536000";

/// As in `slow.rs`: events large enough that a few dozen overflow a non-reading
/// client's socket buffers (or its HTTP/2 window), then its queue.
const EVENT_BYTES: usize = 64 * 1024;
const EVENTS: usize = 200;

/// A self-signed certificate for `localhost` and `127.0.0.1`, made for one test, in
/// PEM files that are removed when it is dropped.
struct Certificate {
    der: CertificateDer<'static>,
    cert_file: std::path::PathBuf,
    key_file: std::path::PathBuf,
}

impl Certificate {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let base = std::env::temp_dir().join(format!("ssehub-tls-{}-{n}", std::process::id()));
        let cert_file = base.with_extension("cert.pem");
        let key_file = base.with_extension("key.pem");
        std::fs::write(&cert_file, made.cert.pem()).unwrap();
        std::fs::write(&key_file, made.signing_key.serialize_pem()).unwrap();
        Self {
            der: made.cert.der().clone(),
            cert_file,
            key_file,
        }
    }

    /// A client configuration that trusts this certificate alone, offering `alpn`.
    fn client_config(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.cert_file);
        let _ = std::fs::remove_file(&self.key_file);
    }
}

/// The server with TLS on, and the test app's own client (subscribe, publish, stats)
/// speaking HTTPS (HTTP/1.1) to it, trusting the test's certificate.
async fn spawn_https(tweak: impl FnOnce(&mut ssehub::config::Config)) -> (TestApp, Certificate) {
    let certificate = Certificate::new();
    let mut app = spawn_app_with(|c| {
        c.server.tls.cert_file = certificate.cert_file.display().to_string();
        c.server.tls.key_file = certificate.key_file.display().to_string();
        tweak(c);
    })
    .await;
    app.base = format!("https://127.0.0.1:{}", app.port);
    app.http = reqwest::Client::builder()
        .tls_backend_preconfigured(certificate.client_config(&[b"http/1.1"]))
        .build()
        .unwrap();
    (app, certificate)
}

/// A TLS connection of our own to the server, offering `alpn`; with `recv_buffer`, the
/// socket's receive buffer is that small (so a client that stops reading soon holds
/// up the server's writes).
async fn connect(
    app: &TestApp,
    certificate: &Certificate,
    alpn: &[&[u8]],
    recv_buffer: Option<u32>,
) -> TlsStream<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let tcp = socket
        .connect(([127, 0, 0, 1], app.port).into())
        .await
        .unwrap();
    let connector = TlsConnector::from(Arc::new(certificate.client_config(alpn)));
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(PATIENCE, connector.connect(name, tcp))
        .await
        .expect("the TLS handshake ends in time")
        .expect("the server's certificate is the test's")
}

/// The client ports of the server's established connections (its side of them, from
/// `/proc/net/tcp`).
fn established_connections(server_port: u16) -> Vec<u16> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("Linux /proc/net/tcp");
    let port =
        |address: &str| u16::from_str_radix(address.rsplit(':').next().unwrap(), 16).unwrap();
    const ESTABLISHED: &str = "01";
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|f| port(f[1]) == server_port && f[3] == ESTABLISHED)
        .map(|f| port(f[2]))
        .collect()
}

#[actix_web::test]
async fn an_https_subscriber_gets_what_is_published_over_https_and_every_answer_has_hsts() {
    let (app, _certificate) = spawn_https(|_| {}).await;

    for (path, status) in [
        ("/healthz", 200),
        ("/events?topic=", 400),
        ("/nowhere", 404),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(response.version(), reqwest::Version::HTTP_11);
        assert_eq!(
            response.headers()["strict-transport-security"],
            HSTS,
            "{path}"
        );
    }
    let stream = app.get("/events").await;
    assert_eq!(stream.headers()["strict-transport-security"], HSTS);
    drop(stream);

    let mut events = app.subscribe("/events?topic=news").await;
    let reply = app
        .publish(json!({"topic": "news", "event": "note", "data": "over TLS"}))
        .await;
    assert_eq!(reply["receivers"], 1);
    let got = events.next().await;
    assert_eq!(
        (got.id.as_str(), got.event.as_str(), got.data.as_str()),
        (reply["id"].as_str().unwrap(), "note", "over TLS")
    );
}

#[actix_web::test]
async fn plain_http_sends_no_hsts() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none(),
        "{:?}",
        response.headers()
    );
}

/// Chromium's HTTP/2 flow-control windows (6 MiB per stream, 15 MiB per connection):
/// the server may send that much before the browser has read any of it.
const CHROMIUM_STREAM_WINDOW: u32 = 6 * 1024 * 1024;
const CHROMIUM_CONNECTION_WINDOW: u32 = 15 * 1024 * 1024;

/// How an [`H2`] client behaves.
#[derive(Default)]
struct Client {
    /// A socket receive buffer this small (see [`connect`]).
    recv_buffer: Option<u32>,
    /// Once sent, the client stops reading its connection.
    stall: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Chromium's windows instead of the HTTP/2 default (64 KiB).
    browser_window: bool,
}

/// An HTTP/2 client over one TLS connection: requests are streams on it.
struct H2 {
    client: h2::client::SendRequest<Bytes>,
    port: u16,
}

type H2Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<h2::Error>>>>>;

impl H2 {
    /// Opens the connection; answers it and its client-side port. The connection is
    /// driven by a task until `client.stall` is sent (if given), then held open but
    /// never read again: a browser whose tab hangs.
    async fn open(app: &TestApp, certificate: &Certificate, client: Client) -> (Self, u16) {
        let tls = connect(app, certificate, &[b"h2", b"http/1.1"], client.recv_buffer).await;
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            Some(&b"h2"[..]),
            "the server chose HTTP/2"
        );
        let local_port = tls.get_ref().0.local_addr().unwrap().port();
        let mut builder = h2::client::Builder::new();
        if client.browser_window {
            builder
                .initial_window_size(CHROMIUM_STREAM_WINDOW)
                .initial_connection_window_size(CHROMIUM_CONNECTION_WINDOW);
        }
        let (send, connection) = builder.handshake(tls).await.unwrap();
        let stall = client.stall;
        actix_web::rt::spawn(async move {
            let mut connection = connection;
            match stall {
                None => {
                    let _ = connection.await;
                }
                Some(stall) => {
                    tokio::select! {
                        _ = &mut connection => return,
                        _ = stall => {}
                    }
                    // Never polled again, never dropped: its socket is never read.
                    std::future::pending::<()>().await;
                    drop(connection);
                }
            }
        });
        let h2 = Self {
            client: send,
            port: app.port,
        };
        (h2, local_port)
    }

    /// Sends a request (with `body` as JSON, if any); answers the response head and its
    /// body stream.
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> http::Response<h2::RecvStream> {
        std::future::poll_fn(|cx| self.client.poll_ready(cx))
            .await
            .unwrap();
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("https://localhost:{}{path}", self.port));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let (response, mut send) = self
            .client
            .send_request(request.body(()).unwrap(), body.is_none())
            .unwrap();
        if let Some(body) = body {
            send.send_data(Bytes::from(body.to_string()), true).unwrap();
        }
        let response = tokio::time::timeout(PATIENCE, response)
            .await
            .expect("an answer in time")
            .unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        response
    }

    /// A whole JSON answer.
    async fn json(&mut self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let response = self.request(method, path, body).await;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = tokio::time::timeout(PATIENCE, body.data()).await.unwrap() {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        (
            status,
            serde_json::from_slice(&bytes).expect("every answer is JSON"),
        )
    }

    async fn publish(&mut self, body: Value) -> Value {
        let (status, reply) = self.json("POST", "/broadcast", Some(&body)).await;
        assert_eq!(status, 200, "{reply}");
        reply
    }

    /// Polls `/stats` over this connection until `test` holds.
    async fn wait_for_stats(&mut self, what: &str, test: impl Fn(&Value) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (_, stats) = self.json("GET", "/stats", None).await;
            if test(&stats) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: never happened; {stats}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Opens `/events` as a stream of this connection; checks it is a 200 event stream
    /// with HSTS, and answers its events.
    async fn subscribe(&mut self, path: &str) -> H2Events {
        let response = self.request("GET", path, None).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["strict-transport-security"], HSTS);
        let body = futures_util::stream::unfold(response.into_body(), |mut body| async move {
            let chunk = body.data().await?;
            if let Ok(bytes) = &chunk {
                // Read, so the server may send more (HTTP/2 flow control).
                let _ = body.flow_control().release_capacity(bytes.len());
            }
            Some((chunk, body))
        });
        Box::pin(body.eventsource())
    }
}

async fn next_event(events: &mut H2Events) -> Event {
    match tokio::time::timeout(PATIENCE, events.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(other) => panic!("expected an event, got {other:?}"),
        Err(_) => panic!("no event within {PATIENCE:?}"),
    }
}

#[actix_web::test]
async fn an_http2_client_holds_100_event_streams_over_one_connection_and_each_gets_every_event() {
    const STREAMS: usize = 100;
    let (app, certificate) = spawn_https(|_| {}).await;
    // Everything below, subscribing, publishing and reading stats, goes over this one
    // connection.
    let (mut h2, local_port) = H2::open(&app, &certificate, Client::default()).await;

    let mut streams = Vec::with_capacity(STREAMS);
    for i in 0..STREAMS {
        streams.push(h2.subscribe(&format!("/events?topic=t{}", i % 2)).await);
    }
    h2.wait_for_stats("every stream subscribed", |s| s["clients"] == STREAMS)
        .await;
    assert_eq!(
        established_connections(app.port),
        [local_port],
        "one TCP connection holds every stream"
    );

    let everyone = h2
        .publish(json!({"event": "all", "data": "to every stream"}))
        .await;
    assert_eq!(everyone["receivers"], STREAMS);
    let odd = h2
        .publish(json!({"topic": "t1", "data": "odd streams"}))
        .await;
    assert_eq!(odd["receivers"], STREAMS / 2);
    let even = h2
        .publish(json!({"topic": "t0", "data": "even streams"}))
        .await;

    for (i, events) in streams.iter_mut().enumerate() {
        let got = next_event(events).await;
        assert_eq!(
            (got.id.as_str(), got.event.as_str(), got.data.as_str()),
            (everyone["id"].as_str().unwrap(), "all", "to every stream"),
            "stream {i}"
        );
        let mine = if i % 2 == 1 { &odd } else { &even };
        assert_eq!(next_event(events).await.id, mine["id"].as_str().unwrap());
    }
    assert_eq!(established_connections(app.port), [local_port]);
}

#[actix_web::test]
async fn a_stalled_tls_subscriber_is_dropped_and_disconnected_while_others_get_everything() {
    let (app, certificate) = spawn_https(|c| c.sse.client_buffer = 8).await;
    let mut healthy = app.subscribe("/events").await;

    // Subscribes over TLS, then never reads again.
    let mut stalled = connect(&app, &certificate, &[b"http/1.1"], Some(4096)).await;
    stalled
        .write_all(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    stalled.flush().await.unwrap();
    let client_port = stalled.get_ref().0.local_addr().unwrap().port();
    app.wait_for_clients(2).await;

    publish_while_healthy_reads(&app, &mut healthy).await;
    // Both in one answer: the counters are read one by one.
    app.wait_for_stats("the stalled client dropped, the healthy one left", |s| {
        dropped_for_not_reading(s) && s["clients"] == 1
    })
    .await;

    // The server closed the connection itself, while the client still reads nothing.
    server_side_closes(app.port, client_port).await;
    app.healthy_gets_what_comes_next(&mut healthy).await;
    drop(stalled);
}

#[actix_web::test]
async fn a_stalled_http2_connection_is_dropped_with_its_streams_while_others_get_everything() {
    const STREAMS: usize = 3;
    let (app, certificate) = spawn_https(|c| c.sse.client_buffer = 8).await;
    let mut healthy = app.subscribe("/events").await;

    let (stall, stalled) = tokio::sync::oneshot::channel();
    let client = Client {
        recv_buffer: Some(4096),
        stall: Some(stalled),
        ..Client::default()
    };
    let (mut h2, client_port) = H2::open(&app, &certificate, client).await;
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        streams.push(h2.subscribe("/events").await);
    }
    app.wait_for_clients(1 + STREAMS as u64).await;
    // From here the HTTP/2 connection is never read: none of its streams.
    stall.send(()).unwrap();

    publish_while_healthy_reads(&app, &mut healthy).await;
    app.wait_for_stats("the stalled streams dropped", dropped_for_not_reading)
        .await;
    // Closing one stalled stream's connection closes them all.
    server_side_closes(app.port, client_port).await;
    app.wait_for_clients(1).await;
    app.healthy_gets_what_comes_next(&mut healthy).await;
    drop(streams);
}

#[actix_web::test]
async fn a_stalled_http2_client_with_a_browsers_window_is_dropped_after_the_stall_timeout() {
    let (app, certificate) = spawn_https(|c| {
        c.sse.stall_timeout_secs = 1;
        c.sse.history_size = 100;
    })
    .await;
    // 6.5 MB of history: more than the sockets between us hold, less than the window.
    let payload = "x".repeat(64 * 1024);
    for i in 0..100 {
        app.publish(json!({"data": format!("{i} {payload}")})).await;
    }

    // It asks for all of it and reads nothing; nothing is published from now on, so its
    // queue stays empty: only the stall timeout can drop it.
    let (stall, stalled) = tokio::sync::oneshot::channel();
    let client = Client {
        recv_buffer: Some(4096),
        stall: Some(stalled),
        browser_window: true,
    };
    let (mut h2, client_port) = H2::open(&app, &certificate, client).await;
    let replay = h2.subscribe("/events?lastEventId=earliest").await;
    stall.send(()).unwrap();

    let stats = app
        .wait_for_stats("the stalled client dropped", |s| {
            s["dropped_stalled"] == 1 && s["clients"] == 0
        })
        .await;
    assert_eq!(stats["dropped_slow"], 0, "its queue never filled");
    server_side_closes(app.port, client_port).await;
    drop(replay);
}

fn dropped_for_not_reading(stats: &Value) -> bool {
    let count = |key: &str| stats[key].as_u64().unwrap_or(0);
    count("dropped_slow") + count("dropped_stalled") >= 1
}

/// Publishes `EVENTS` large global events, waiting for the healthy subscriber to get
/// each (so it never falls behind, and only a client that stopped reading can be
/// dropped).
async fn publish_while_healthy_reads(app: &TestApp, healthy: &mut crate::helpers::Subscriber) {
    let payload = "x".repeat(EVENT_BYTES);
    for i in 0..EVENTS {
        let reply = app
            .publish(json!({"event": "big", "data": format!("{i} {payload}")}))
            .await;
        let event = healthy.next().await;
        assert_eq!(event.id, reply["id"].as_str().unwrap());
        assert!(event.data.starts_with(&format!("{i} ")));
    }
}

#[test]
fn bad_tls_settings_exit_2_naming_the_key() {
    let certificate = Certificate::new();
    let cert = certificate.cert_file.display().to_string();
    let key = certificate.key_file.display().to_string();
    let garbage = write_config("tls-garbage-pem", "this is not PEM\n");
    let garbage = garbage.display().to_string();
    let config = |name: &str, cert: &str, key: &str| {
        write_config(
            name,
            &format!("[server.tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"),
        )
    };

    let cases = [
        (
            config("tls-no-key", &cert, ""),
            "server.tls.cert_file",
            "server.tls.key_file is not",
        ),
        (
            config("tls-missing-key", &cert, "/nonexistent/key.pem"),
            "server.tls.key_file",
            "cannot read /nonexistent/key.pem",
        ),
        (
            config("tls-garbage-cert", &garbage, &key),
            "server.tls.cert_file",
            "holds no PEM certificate",
        ),
        (
            config("tls-garbage-key", &cert, &garbage),
            "server.tls.key_file",
            "holds no PEM private key",
        ),
    ];
    for (file, key_name, problem) in cases {
        let line = refusal(ssehub().arg("--config").arg(&file));
        assert!(line.contains(file.to_str().unwrap()), "{line}");
        assert!(
            line.contains(&format!("{key_name}: ")) && line.contains(problem),
            "{line}"
        );
    }

    // From the environment, the variable is named.
    let good = config("tls-good", &cert, &key);
    let line = refusal(
        ssehub()
            .arg("--config")
            .arg(&good)
            .env("SSEHUB_SERVER_TLS_KEY_FILE", &garbage),
    );
    assert!(
        line.contains("SSEHUB_SERVER_TLS_KEY_FILE: server.tls.key_file: "),
        "{line}"
    );
}
