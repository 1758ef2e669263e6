//! Hostile input (SPEC §3, §4, §7): arbitrary and deliberately malicious publish
//! bodies, subscription query strings and credentials thrown at the real server by
//! proptest, and abuse of the transport itself (request heads far too large or sent a
//! few bytes at a time, garbage instead of HTTP, 8 MB and endless bodies).
//!
//! What every property asserts, whatever the input: an answer SPEC allows for that
//! endpoint and input (never a 5xx), every refusal in the JSON shape
//! `{"success": false, "error": "..."}`, a subscriber that sees exactly what was
//! accepted (nothing of a refused publish, nothing injected into an accepted one), and
//! the server still serving afterwards. A failure is shrunk to a minimal input, which
//! the panic message shows.
//!
//! Each property runs `SSEHUB_HOSTILE_CASES` inputs ([`DEFAULT_CASES`] when unset) and
//! prints its count, time and the statuses it saw, so a long run reads, e.g.:
//! `SSEHUB_HOSTILE_CASES=100000 cargo test --test api hostile -- --nocapture`.

use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestError, TestRunner};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{mpsc, oneshot};

use crate::helpers::{PATIENCE, TestApp, spawn_app, spawn_app_with};

/// Inputs per property when `SSEHUB_HOSTILE_CASES` is unset: enough to cover every
/// generator's branches on each run, few enough that the file takes seconds in a
/// debug build.
const DEFAULT_CASES: u32 = 256;
/// `max_body_bytes` of the publish property's server: small, so bodies around the
/// limit stay cheap to generate and send.
const BODY_LIMIT: usize = 64 * 1024;
const TOKEN: &str = "hostile-publish-token";
const SECRET: &str = "a-jwt-secret-of-at-least-32-bytes-for-hostile-tests";
/// Topics (and patterns) SPEC allows per subscription and per event.
const MAX_TOPICS: usize = 32;
const MAX_TOPIC_BYTES: usize = 256;

// ---------------------------------------------------------------------------------
// Driving proptest against a server on this runtime
// ---------------------------------------------------------------------------------

fn cases() -> u32 {
    match std::env::var("SSEHUB_HOSTILE_CASES") {
        Ok(n) => n
            .parse()
            .expect("SSEHUB_HOSTILE_CASES is a number of cases"),
        Err(_) => DEFAULT_CASES,
    }
}

/// The inputs of one property, as proptest draws (and on a failure, shrinks) them.
///
/// proptest's runner is synchronous, while the server and its HTTP clients live on the
/// test's actix runtime, which must keep running meanwhile. So the runner runs on a
/// thread of its own and hands each input over here, waiting for the verdict; the test
/// checks inputs in a plain loop (`while let Some((input, verdict)) = inputs.next()`),
/// with its server, clients and subscribers as ordinary local state.
struct Inputs<V> {
    name: &'static str,
    inputs: mpsc::Receiver<(V, Verdict)>,
    outcome: oneshot::Receiver<Result<(), TestError<V>>>,
    started: Instant,
    runs: u64,
    statuses: BTreeMap<u16, u64>,
}

/// Where the verdict on one input goes back to the runner: `Err` fails it (and starts
/// the shrinking).
struct Verdict(oneshot::Sender<Result<(), String>>);

impl Verdict {
    fn give(self, verdict: Result<(), String>) {
        // The runner waits for every verdict; it has gone only if it panicked.
        let _ = self.0.send(verdict);
    }
}

impl<V: Debug + Send + 'static> Inputs<V> {
    /// Starts the runner; `strategy` is built on the runner's thread, so it need not
    /// be `Send`.
    fn start<S, F>(name: &'static str, strategy: F) -> Self
    where
        S: Strategy<Value = V>,
        F: FnOnce() -> S + Send + 'static,
    {
        let (to_test, inputs) = mpsc::channel(1);
        let (done, outcome) = oneshot::channel();
        std::thread::spawn(move || {
            let config = RunnerConfig {
                cases: cases(),
                // Failures are reported with their minimal input, not kept in files.
                failure_persistence: None,
                // Each shrinking step is a round trip to the server.
                max_shrink_iters: 4096,
                ..RunnerConfig::default()
            };
            let stopped = || TestCaseError::fail("the test stopped before its verdict");
            let result = TestRunner::new(config).run(&strategy(), |input| {
                let (verdict, answer) = oneshot::channel();
                to_test
                    .blocking_send((input, Verdict(verdict)))
                    .map_err(|_| stopped())?;
                answer
                    .blocking_recv()
                    .map_err(|_| stopped())?
                    .map_err(TestCaseError::fail)
            });
            let _ = done.send(result);
        });
        Self {
            name,
            inputs,
            outcome,
            started: Instant::now(),
            runs: 0,
            statuses: BTreeMap::new(),
        }
    }

    /// The next input to check, until the runner is done.
    async fn next(&mut self) -> Option<(V, Verdict)> {
        let next = self.inputs.recv().await;
        self.runs += u64::from(next.is_some());
        next
    }

    fn saw(&mut self, status: u16) {
        *self.statuses.entry(status).or_default() += 1;
    }

    /// Reports the run, and fails the test with the minimal failing input, if any.
    async fn finish(self) {
        let outcome = self
            .outcome
            .await
            .expect("the runner's thread panicked (its message is above)");
        eprintln!(
            "hostile: {}: {} cases, {} runs in all, in {:.1?}; statuses {:?}",
            self.name,
            cases(),
            self.runs,
            self.started.elapsed(),
            self.statuses
        );
        if let Err(failure) = outcome {
            panic!("{}: {failure}", self.name);
        }
    }
}

/// A hang is a failure too, and shrinks like any other.
async fn within_patience<T>(check: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    let limit = 2 * PATIENCE;
    tokio::time::timeout(limit, check)
        .await
        .unwrap_or_else(|_| Err(format!("no verdict within {limit:?}: the server hung")))
}

// ---------------------------------------------------------------------------------
// What every answer must be
// ---------------------------------------------------------------------------------

/// A refusal is exactly `{"success": false, "error": "<what was wrong>"}`, as JSON.
fn refusal_shape(content_type: Option<&HeaderValue>, body: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(body);
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("a refusal that is not JSON ({e}): {text:?}"))?;
    let shaped = value.as_object().is_some_and(|fields| {
        fields.len() == 2
            && fields.get("success") == Some(&Value::Bool(false))
            && fields
                .get("error")
                .and_then(Value::as_str)
                .is_some_and(|error| !error.is_empty())
    });
    if !shaped {
        return Err(format!("a refusal not in the JSON shape: {value}"));
    }
    let json = content_type
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(format!("a refusal with Content-Type {content_type:?}"));
    }
    Ok(())
}

/// Reads a refusal and checks its shape, and that a 401 names its scheme (SPEC §4).
async fn check_refusal(response: reqwest::Response) -> Result<(), String> {
    let status = response.status().as_u16();
    let challenge = response.headers().get(WWW_AUTHENTICATE).cloned();
    let content_type = response.headers().get(CONTENT_TYPE).cloned();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("the refusal's body broke off: {e}"))?;
    refusal_shape(content_type.as_ref(), &body)?;
    if status == 401 && challenge.as_ref().is_none_or(|c| c != "Bearer") {
        return Err(format!("a 401 with WWW-Authenticate {challenge:?}"));
    }
    Ok(())
}

fn unexpected(status: u16, allowed: &[u16], body: &[u8]) -> String {
    format!(
        "answered {status} where SPEC allows {allowed:?}: {}",
        String::from_utf8_lossy(body)
    )
}

/// An event as a subscriber's parser (WHATWG) reads it.
#[derive(Debug, PartialEq)]
struct Seen {
    event: String,
    data: String,
    id: String,
    retry: Option<Duration>,
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>>>>;

/// A subscriber whose every failure is a value, so that a property can report it and
/// shrink, rather than panic. (`helpers::Subscriber` panics, which is right for a story
/// but would stop proptest from finding the minimal input.)
struct Watcher {
    events: Events,
}

impl Watcher {
    async fn open(http: &reqwest::Client, url: &str) -> Self {
        let response = http
            .get(url)
            .send()
            .await
            .expect("GET /events reaches the server");
        assert_eq!(response.status(), 200, "{url}: {:?}", response.text().await);
        Self {
            events: Box::pin(response.bytes_stream().eventsource()),
        }
    }

    /// The events before the one whose id is `marker`, which was published after
    /// everything the caller expects. Events reach a client in the hub's order, so
    /// what has not come before the marker was never sent.
    async fn until(&mut self, marker: &str) -> Result<Vec<Seen>, String> {
        let mut before = Vec::new();
        loop {
            let event = match tokio::time::timeout(PATIENCE, self.events.next()).await {
                Err(_) => return Err(format!("the marker {marker} did not come")),
                Ok(None) => return Err("the subscriber's stream ended".into()),
                Ok(Some(Err(error))) => return Err(format!("the subscriber's stream: {error}")),
                Ok(Some(Ok(event))) => event,
            };
            if event.id == marker {
                return Ok(before);
            }
            before.push(Seen {
                event: event.event,
                data: event.data,
                id: event.id,
                retry: event.retry,
            });
        }
    }
}

/// Publishes a marker event (with `authorization`, if the server wants one) to the
/// server at `base`; answers its id.
async fn publish_marker(
    http: &reqwest::Client,
    base: &str,
    authorization: Option<&str>,
) -> Result<String, String> {
    let mut request = http
        .post(format!("{base}/broadcast"))
        .json(&json!({"event": "marker", "data": "marker"}));
    if let Some(authorization) = authorization {
        request = request.header(AUTHORIZATION, authorization);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("the marker's publish failed: {e}"))?;
    let status = response.status();
    let reply: Value = response
        .json()
        .await
        .map_err(|e| format!("the marker's answer: {e}"))?;
    match reply["id"].as_str() {
        Some(id) if status == 200 => Ok(id.to_owned()),
        _ => Err(format!("the marker was refused ({status}): {reply}")),
    }
}

/// The server still answers: `/healthz`, and an event reaches a new subscriber with
/// nothing before it. On new connections: one kept alive from earlier may be closed by
/// the server (keep-alive timeout) just as it is reused, which proves nothing.
async fn still_serves(app: &TestApp, authorization: Option<&str>) {
    let http = reqwest::Client::new();
    let health = http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("GET /healthz reaches the server");
    assert_eq!(health.status(), 200, "/healthz after the abuse");
    let mut watcher = Watcher::open(&http, &app.url("/events")).await;
    let marker = publish_marker(&http, &app.base, authorization)
        .await
        .expect("a publish after the abuse");
    let before = watcher.until(&marker).await.expect("the marker arrives");
    assert!(before.is_empty(), "{before:?}");
}

// ---------------------------------------------------------------------------------
// Strategies shared by the properties: hostile text and JSON as text
// ---------------------------------------------------------------------------------

/// Characters that probe the rules on text (SPEC §4): line ends, NUL and other
/// controls (C0, DEL, C1), what JavaScript takes for line ends, a BOM, noncharacters,
/// the last scalar value, bidi and combining marks, astral characters, and characters
/// the server or JSON give a meaning (`*`, `:`, `.`, quotes, backslash).
const HOSTILE_CHARS: &[char] = &[
    '\r',
    '\n',
    '\0',
    '\t',
    '\u{1b}',
    '\u{7f}',
    '\u{80}',
    '\u{85}',
    '\u{9f}',
    '\u{a0}',
    '\u{2028}',
    '\u{2029}',
    '\u{feff}',
    '\u{fffd}',
    '\u{fffe}',
    '\u{ffff}',
    '\u{10ffff}',
    '\u{202e}',
    '\u{301}',
    '\u{1f600}',
    'é',
    '*',
    ':',
    '.',
    ' ',
    '"',
    '\\',
    '/',
];

/// Texts SPEC or the wire format gives a meaning to.
const MEANINGFUL_TEXTS: &[&str] = &[
    "hub.gap",
    "hub.",
    "Hub.x",
    "hub",
    "earliest",
    "Earliest",
    "message",
    "id: 6",
    "x\n\nid: 7\nevent: y",
    "data: z\r\n\r\n",
    "retry: 1",
    "news.*",
    "*",
    ":",
    "\u{feff}",
    "private.alice",
];

/// The lengths around SPEC's limits: 128 characters for `event`, 256 for `id`, 256
/// bytes for a topic.
const LIMIT_LENGTHS: &[usize] = &[0, 1, 127, 128, 129, 255, 256, 257];

fn hostile_text() -> impl Strategy<Value = String> {
    let char = prop_oneof![
        4 => proptest::char::range('a', 'z'),
        3 => select(HOSTILE_CHARS),
        1 => any::<char>(),
    ];
    prop_oneof![
        4 => vec(char, 0..24).prop_map(String::from_iter),
        1 => (select(vec!["x", "é", "😀", "\u{85}"]), select(LIMIT_LENGTHS))
            .prop_map(|(text, n)| text.repeat(n)),
        1 => select(MEANINGFUL_TEXTS).prop_map(str::to_owned),
    ]
}

/// Escapes written by hand: lone surrogates (high, low, high then not low), valid
/// pairs, NUL and line ends, and escapes or raw characters JSON does not allow.
const ESCAPES: &[&str] = &[
    r"\ud800",
    r"\udbff",
    r"\udc00",
    r"\udfff",
    r"\ud800\u0041",
    r"\ud800\ud800",
    r"\udbff\udfff",
    r"\ud83d\ude00",
    r"\u0000",
    r"\u000a",
    r"\u000D",
    r"\u0085",
    r"\u2028",
    r"\ufeff",
    r"\uffff",
    r"\/",
    r"\b\f\n\r\t",
    r#"\""#,
    r"\\",
    r"\x41",
    r"\u12",
    r"\U0041",
    r"\'",
    "\t",
    "\n",
    "\u{7f}",
];

/// A JSON string literal: mostly hostile text escaped as JSON, sometimes hand-made
/// escapes.
fn json_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => "[a-z ]{0,3}",
        1 => select(ESCAPES).prop_map(str::to_owned),
    ];
    prop_oneof![
        12 => hostile_text().prop_map(|text| Value::String(text).to_string()),
        1 => vec(piece, 0..6).prop_map(|pieces| format!("\"{}\"", pieces.concat())),
    ]
}

/// Numbers at the edges: signed zero, overflowing exponents, `u64::MAX` and one more.
const EDGE_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "0.0",
    "1e999",
    "-1e999",
    "1e-999",
    "1E+2",
    "5000",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
];

/// What looks like a number and is not one in JSON.
const NOT_NUMBERS: &[&str] = &[
    "01", "1.", ".5", "+1", "0x10", "Infinity", "NaN", "1_000", "١", "--1", "1e",
];

fn json_number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<i64>().prop_map(|n| n.to_string()),
        2 => any::<u64>().prop_map(|n| n.to_string()),
        // Now and then NaN or an infinity, which JSON has no words for.
        2 => any::<f64>().prop_map(|n| n.to_string()),
        3 => select(EDGE_NUMBERS).prop_map(str::to_owned),
        1 => select(NOT_NUMBERS).prop_map(str::to_owned),
        // More digits than any float holds.
        1 => (1usize..20_000).prop_map(|digits| "9".repeat(digits)),
        1 => (any::<bool>(), any::<u64>())
            .prop_map(|(negative, e)| format!("1e{}{e}", if negative { "-" } else { "" })),
    ]
}

/// Field names: the seven SPEC knows, near misses, and strangers.
const FIELD_NAMES: &[&str] = &[
    "event",
    "payload",
    "data",
    "topic",
    "topics",
    "id",
    "retry",
    "Event",
    "payload ",
    "extra",
    "__proto__",
    "",
    r"data\u0000",
];

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(FIELD_NAMES).prop_map(|name| format!("\"{name}\"")),
        1 => json_string(),
    ]
}

fn object(fields: &[(String, String)]) -> String {
    let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{{{}}}", fields.join(","))
}

/// Any JSON value, as text (so numbers keep their digits and strings their escapes),
/// nested a few levels.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        1 => select(vec!["null", "true", "false"]).prop_map(str::to_owned),
        2 => json_number(),
        3 => json_string(),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(|items| format!("[{}]", items.join(","))),
            vec((json_key(), inner), 0..5).prop_map(|fields| object(&fields)),
        ]
    })
}

// ---------------------------------------------------------------------------------
// Property 1: publish bodies
// ---------------------------------------------------------------------------------

/// `Content-Type`s, and whether SPEC §4 calls each JSON (case-insensitive, parameters
/// allowed, anything else `415`).
const MEDIA_TYPES: &[(Option<&str>, bool)] = &[
    (Some("application/json"), true),
    (Some("application/json; charset=utf-8"), true),
    (Some("APPLICATION/JSON"), true),
    (Some("Application/Json;charset=\"UTF-8\""), true),
    (Some("text/plain"), false),
    (Some("application/jsonx"), false),
    (Some("application/x-www-form-urlencoded"), false),
    (Some("json"), false),
    (Some(""), false),
    (None, false),
];

/// A `POST /broadcast`.
#[derive(Clone)]
struct Post {
    content_type: Option<&'static str>,
    json: bool,
    body: Vec<u8>,
}

impl Debug for Post {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 2048;
        let shown = &self.body[..self.body.len().min(SHOWN)];
        write!(
            f,
            "Content-Type {:?}, {} bytes: b\"{}\"{}",
            self.content_type,
            self.body.len(),
            shown.escape_ascii(),
            if self.body.len() > SHOWN { "…" } else { "" }
        )
    }
}

fn topic_string() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(vec!["news", "a.b", "private.alice", "x*", "*", "", " "])
            .prop_map(|topic| format!("\"{topic}\"")),
        3 => json_string(),
    ]
}

/// An event object: each field SPEC knows present or not, mostly of its own type (with
/// hostile contents), sometimes of any type; now and then a field SPEC does not know.
fn event_object() -> impl Strategy<Value = String> {
    /// `"name": value`, the value mostly of the field's own type.
    fn typed(
        name: &'static str,
        value: impl Strategy<Value = String> + 'static,
    ) -> impl Strategy<Value = (String, String)> {
        prop_oneof![9 => value.boxed(), 1 => json_value().boxed()]
            .prop_map(move |value| (format!("\"{name}\""), value))
    }
    fn field(
        name: &'static str,
        present: f64,
        value: impl Strategy<Value = String> + 'static,
    ) -> impl Strategy<Value = Option<(String, String)>> {
        prop::option::weighted(present, typed(name, value))
    }
    let topics = vec(topic_string(), 0..40).prop_map(|topics| format!("[{}]", topics.join(",")));
    // A few ids over and over, so that some are still in the history: 409.
    let id = prop_oneof![
        2 => json_string(),
        1 => select(vec!["\"a\"", "\"b\"", "\"earliest\""]).prop_map(str::to_owned),
    ];
    // Mostly exactly one of `payload` and `data`, as SPEC asks, sometimes both or neither.
    let payload = || typed("payload", json_value());
    let data = || typed("data", json_string());
    let content = prop_oneof![
        6 => payload().prop_map(|payload| (Some(payload), None)),
        3 => data().prop_map(|data| (None, Some(data))),
        1 => (payload(), data()).prop_map(|(payload, data)| (Some(payload), Some(data))),
        1 => Just((None, None)),
    ];
    (
        field("event", 0.4, json_string()),
        content,
        field("topic", 0.3, topic_string()),
        field("topics", 0.2, topics),
        field("id", 0.3, id),
        field("retry", 0.2, json_number()),
        prop::option::weighted(0.05, (json_key(), json_value())),
    )
        .prop_map(
            |(event, (payload, data), topic, topics, id, retry, stranger)| {
                let fields: Vec<(String, String)> =
                    [event, payload, data, topic, topics, id, retry, stranger]
                        .into_iter()
                        .flatten()
                        .collect();
                object(&fields)
            },
        )
}

/// JSON's punctuation and words, and what JSON lacks (comments, single quotes), to be
/// strung together at random.
const SOUP: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"payload\"",
    "\"data\"",
    "\"event\"",
    "\"topics\"",
    "null",
    "1",
    "\"x\"",
    "\"\\ud800\"",
    " ",
    "\n",
    "\u{feff}",
    "/*",
    "*/",
    "//",
    "'",
    "true",
    "-",
    "e",
    "\\",
];

/// Nesting from shallow to far past serde_json's recursion limit (128), as the whole
/// body or as a payload.
fn deep_nesting() -> impl Strategy<Value = Vec<u8>> {
    let shapes = vec![
        ("[", "]"),
        ("{\"a\":", "}"),
        ("{\"payload\":", "}"),
        ("[{\"payload\":", "}]"),
    ];
    let depth = prop_oneof![
        select(vec![1usize, 126, 127, 128, 129, 1000]),
        1usize..30_000
    ];
    (select(shapes), depth, any::<bool>()).prop_map(|((open, close), depth, as_payload)| {
        let nested = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        match as_payload {
            true => format!("{{\"payload\":{nested}}}").into_bytes(),
            false => nested.into_bytes(),
        }
    })
}

/// A valid event whose body is within a few bytes of `max_body_bytes`, either side.
fn around_the_limit() -> impl Strategy<Value = Vec<u8>> {
    (0usize..8).prop_map(|offset| {
        let length = BODY_LIMIT - 4 + offset;
        let fill = length - r#"{"data":""}"#.len();
        format!("{{\"data\":\"{}\"}}", "x".repeat(fill)).into_bytes()
    })
}

fn publish_input() -> impl Strategy<Value = Post> {
    // A well-formed object, cut short or with one byte (maybe not UTF-8) put in.
    let mangled = (
        event_object(),
        any::<prop::sample::Index>(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(text, at, byte, cut)| {
            let mut bytes = text.into_bytes();
            let at = at.index(bytes.len() + 1);
            match cut {
                true => bytes.truncate(at),
                false => bytes.insert(at, byte),
            }
            bytes
        });
    let body = prop_oneof![
        6 => event_object().prop_map(String::into_bytes),
        2 => vec(event_object(), 0..5)
            .prop_map(|events| format!("[{}]", events.join(",")).into_bytes()),
        2 => json_value().prop_map(String::into_bytes),
        1 => vec(any::<u8>(), 0..64),
        1 => vec(select(SOUP), 0..24).prop_map(|tokens| tokens.concat().into_bytes()),
        1 => deep_nesting(),
        1 => mangled,
        1 => around_the_limit(),
    ];
    let media_type = prop_oneof![9 => Just(0usize), 1 => 0..MEDIA_TYPES.len()];
    (media_type, body).prop_map(|(media_type, body)| {
        let (content_type, json) = MEDIA_TYPES[media_type];
        Post {
            content_type,
            json,
            body,
        }
    })
}

/// What a subscriber must see of an accepted publish: each posted event, in order,
/// with the id the server answered, its data exactly as posted (a payload as compact
/// JSON; text with CRLF, CR and LF each one line break, as WHATWG parsers read it).
fn accepted_events(body: &[u8], reply: &Value) -> Result<Vec<Seen>, String> {
    if reply["success"] != true || !reply["receivers"].is_u64() {
        return Err(format!("a 200 that is not a success: {reply}"));
    }
    let posted: Value = serde_json::from_slice(body)
        .map_err(|e| format!("accepted a body that is not JSON ({e}): {reply}"))?;
    let (events, ids) = match &posted {
        Value::Object(_) => (vec![&posted], vec![reply["id"].clone()]),
        Value::Array(items) => (
            items.iter().collect(),
            reply["ids"].as_array().cloned().unwrap_or_default(),
        ),
        _ => return Err(format!("accepted neither an object nor an array: {reply}")),
    };
    if events.len() != ids.len() {
        return Err(format!("{} events posted, answered {reply}", events.len()));
    }
    events
        .into_iter()
        .zip(ids)
        .map(|(event, id)| {
            let id = id
                .as_str()
                .ok_or(format!("an id that is not a string: {reply}"))?;
            if let Some(own) = event.get("id").and_then(Value::as_str)
                && own != id
            {
                return Err(format!("posted id {own:?}, answered {id:?}"));
            }
            let data = match (event.get("payload"), event.get("data")) {
                (Some(payload), None) => payload.to_string(),
                (None, Some(Value::String(text))) => text.replace("\r\n", "\n").replace('\r', "\n"),
                _ => {
                    return Err(format!(
                        "accepted an event without one payload or data text: {event}"
                    ));
                }
            };
            Ok(Seen {
                event: event
                    .get("event")
                    .and_then(Value::as_str)
                    .unwrap_or("message")
                    .to_owned(),
                data,
                id: id.to_owned(),
                retry: event
                    .get("retry")
                    .and_then(Value::as_u64)
                    .map(Duration::from_millis),
            })
        })
        .collect()
}

async fn check_publish(app: &TestApp, watcher: &mut Watcher, post: &Post) -> Result<u16, String> {
    let mut request = app.http.post(app.url("/broadcast")).body(post.body.clone());
    if let Some(content_type) = post.content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("the POST failed: {e}"))?;
    let status = response.status().as_u16();
    let content_type = response.headers().get(CONTENT_TYPE).cloned();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("the answer broke off: {e}"))?;
    // SPEC §4: the media type is checked first, then the size, then the contents.
    let allowed: &[u16] = match () {
        _ if !post.json => &[415],
        _ if post.body.len() > BODY_LIMIT => &[413],
        _ => &[200, 400, 409],
    };
    if !allowed.contains(&status) {
        return Err(unexpected(status, allowed, &body));
    }
    let expected = match status {
        200 => {
            let reply = serde_json::from_slice(&body)
                .map_err(|e| format!("a 200 that is not JSON: {e}"))?;
            accepted_events(&post.body, &reply)?
        }
        _ => {
            refusal_shape(content_type.as_ref(), &body)?;
            Vec::new()
        }
    };
    let marker = publish_marker(&app.http, &app.base, None).await?;
    let seen = watcher.until(&marker).await?;
    if seen != expected {
        return Err(format!(
            "answered {status}; the subscriber saw {seen:?}, not {expected:?}"
        ));
    }
    Ok(status)
}

#[actix_web::test]
async fn no_publish_body_breaks_the_server_or_reaches_a_subscriber_unless_accepted_as_posted() {
    let app = spawn_app_with(|c| c.publish.max_body_bytes = BODY_LIMIT).await;
    let mut watcher = Watcher::open(&app.http, &app.url("/events?topic=*")).await;
    let mut inputs = Inputs::start("publish bodies", publish_input);
    while let Some((post, verdict)) = inputs.next().await {
        let result = within_patience(check_publish(&app, &mut watcher, &post)).await;
        match &result {
            Ok(status) => inputs.saw(*status),
            // Whatever the subscriber was in the middle of, the next input starts afresh.
            Err(_) => watcher = Watcher::open(&app.http, &app.url("/events?topic=*")).await,
        }
        verdict.give(result.map(drop));
    }
    inputs.finish().await;
    still_serves(&app, None).await;
}

// ---------------------------------------------------------------------------------
// Property 2: the /events query string
// ---------------------------------------------------------------------------------

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_secs()
}

/// An HS256 JWT with these claims and an `exp` an hour away.
fn jwt(mut claims: Value) -> String {
    claims["exp"] = (now() + 3600).into();
    let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("an HMAC key");
    jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), &claims, &key)
        .expect("claims serialize")
}

/// The server every credential property runs against: a publish token, an HS256 key
/// and private topics (SPEC §7).
async fn spawn_secured_app() -> TestApp {
    spawn_app_with(|c| {
        c.auth.publish_token = TOKEN.into();
        c.auth.jwt_secret = SECRET.into();
        c.auth.private_topics = vec!["private.*".into()];
    })
    .await
}

/// Tokens a subscriber may send with `token=`, and what each may see of private
/// topics: `None` for one that is not valid (401).
fn subscriber_tokens() -> Vec<(String, Option<Vec<&'static str>>)> {
    let expired = {
        let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("an HMAC key");
        let claims = json!({"subscribe": ["*"], "exp": now() - 3600});
        jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), &claims, &key)
            .expect("claims serialize")
    };
    vec![
        // The publish token publishes; it opens no private topic (tests/api/auth.rs).
        (TOKEN.into(), Some(vec![])),
        (
            jwt(json!({"subscribe": ["private.alice"]})),
            Some(vec!["private.alice"]),
        ),
        (jwt(json!({"subscribe": ["*"]})), Some(vec!["*"])),
        (jwt(json!({"publish": ["*"]})), Some(vec![])),
        (expired, None),
        ("junk".into(), None),
        ("a.b.c".into(), None),
    ]
}

/// Pieces of query text: topics public and private, patterns with `*` in every place,
/// escapes of controls (C0, DEL, C1), broken escapes, escapes that decode to bytes
/// that are not UTF-8 (a lone byte, a surrogate, an overlong form), and characters
/// with a meaning in a query.
const QUERY_PIECES: &[&str] = &[
    "news",
    "a.b",
    "private.alice",
    "private.bob",
    "private.",
    "private%2Ealice",
    "private.*",
    "*",
    "news.*",
    "a*b",
    "**",
    "*a",
    "%2A",
    "news.%2A",
    "%00",
    "%01",
    "%1F",
    "%7F",
    "%C2%85",
    "%C2%9F",
    "%0A",
    "%0D",
    "%09",
    "%",
    "%z",
    "%4",
    "%zz",
    "%%",
    "%FF",
    "%C3",
    "%ED%A0%80",
    "%C0%AF",
    "%EF%BB%BF",
    "%E2%80%A8",
    "+",
    "%2B",
    "%26",
    "%3D",
    "=",
    "&",
    "earliest",
    "1",
];

/// Query text, as sent: only characters a URL carries unchanged (the test checks that
/// the server got exactly this).
fn query_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => select(QUERY_PIECES).prop_map(str::to_owned),
        2 => "[A-Za-z0-9._~!$()*+,;:@/?-]{0,12}",
        1 => vec(any::<u8>(), 1..6)
            .prop_map(|bytes| bytes.iter().map(|b| format!("%{b:02X}")).collect()),
        1 => any::<char>().prop_map(|c| {
            let mut utf8 = [0; 4];
            c.encode_utf8(&mut utf8).bytes().map(|b| format!("%{b:02X}")).collect()
        }),
        1 => (select(vec!["x", "%C3%A9"]), select(LIMIT_LENGTHS)).prop_map(|(text, n)| text.repeat(n)),
    ];
    vec(piece, 0..4).prop_map(|pieces| pieces.concat())
}

/// A `GET /events` query string.
#[derive(Clone)]
struct Query(String);

impl Debug for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/events?{}", self.0)
    }
}

fn query_input() -> impl Strategy<Value = Query> {
    let tokens: Vec<String> = subscriber_tokens().into_iter().map(|(t, _)| t).collect();
    let name = prop_oneof![
        8 => Just("topic".to_owned()),
        1 => Just("lastEventId".to_owned()),
        1 => Just("token".to_owned()),
        2 => select(vec![
            "%74opic", "topic%00", "to%zzpic", "TOPIC", "topic[]", "", "_", "topic+", "%",
            "last%45ventId", "tok%65n", "topic%3D",
        ])
        .prop_map(str::to_owned),
        1 => query_text(),
    ];
    // Mostly topics and patterns SPEC accepts, so that a query's one bad parameter is
    // not always bound to come, and the access rules get their turn.
    let fine = prop_oneof![
        2 => select(vec!["news", "stocks", "a.b", "news.*", "*", "private.*", "private.alice",
            "private.bob", "private%2Ealice", "%C3%A9t%C3%A9", "a+b", "earliest"])
            .prop_map(str::to_owned),
        1 => "[a-z.]{1,12}\\*?",
    ];
    let value = prop_oneof![
        6 => fine.prop_map(Some),
        4 => query_text().prop_map(Some),
        2 => select(tokens.clone()).prop_map(Some),
        1 => Just(None),
    ];
    let param = (name, value).prop_map(|(name, value)| match value {
        Some(value) => format!("{name}={value}"),
        None => name,
    });
    // Mostly a few parameters; sometimes around 32 topics and more.
    let params = prop_oneof![4 => vec(param.clone(), 0..8), 1 => vec(param, 28..40)];
    // Often a token the server knows (valid or not), anywhere among them.
    let token = prop::option::weighted(0.5, (select(tokens), any::<prop::sample::Index>()));
    let lead = select(vec!["", "&", "&&"]);
    (lead, params, token).prop_map(|(lead, mut params, token)| {
        if let Some((token, at)) = token {
            params.insert(at.index(params.len() + 1), format!("token={token}"));
        }
        Query(format!("{lead}{}", params.join("&")))
    })
}

/// `application/x-www-form-urlencoded` decoding, strict (SPEC §3: bad
/// percent-encoding is refused).
fn form_decode(text: &str) -> Result<String, ()> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = rest.get(..2).ok_or(())?;
                let hex = std::str::from_utf8(hex).map_err(drop)?;
                if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    return Err(());
                }
                bytes.push(u8::from_str_radix(hex, 16).map_err(drop)?);
                rest = &rest[2..];
            }
            _ => bytes.push(b),
        }
    }
    String::from_utf8(bytes).map_err(drop)
}

/// A topic or pattern SPEC §3 accepts: 1–256 bytes, no control character, `*` only at
/// the end.
fn filter_ok(filter: &str) -> bool {
    !filter.is_empty()
        && filter.len() <= MAX_TOPIC_BYTES
        && !filter.chars().any(char::is_control)
        && filter.find('*').is_none_or(|star| star == filter.len() - 1)
}

/// Whether `patterns` match `topic` (exact, or `prefix*`).
fn matches(patterns: &[&str], topic: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix),
        None => *p == topic,
    })
}

/// The statuses SPEC §3 and §7 allow for `GET /events?<query>`. Where SPEC leaves the
/// order of checks open (a bad subscription with a bad token), either refusal is
/// allowed; so is counting repeated topics towards the 32 or not.
fn subscribe_allowed(query: &str, tokens: &[(String, Option<Vec<&'static str>>)]) -> Vec<u16> {
    let mut bad = false;
    let mut topic_params = 0;
    let mut topics: Vec<String> = Vec::new();
    let mut token = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        // A name that does not decode is not one the server reads.
        let Ok(name) = form_decode(name) else {
            continue;
        };
        let value = form_decode(value);
        match (name.as_str(), value) {
            ("topic", Ok(topic)) if filter_ok(&topic) => {
                topic_params += 1;
                if !topics.contains(&topic) {
                    topics.push(topic);
                }
            }
            ("topic", _) => {
                topic_params += 1;
                bad = true;
            }
            ("token", Ok(value)) if !value.is_empty() => token = Some(value),
            ("lastEventId" | "token", Err(())) => bad = true,
            _ => {}
        }
    }
    let sight = token.map(|token| {
        tokens
            .iter()
            .find(|(known, _)| *known == token)
            .and_then(|(_, sight)| sight.clone())
    });
    let private = |topic: &&String| !topic.ends_with('*') && matches(&["private.*"], topic);
    let auth = match sight {
        Some(None) => 401,
        None if topics.iter().any(|t| private(&t)) => 401,
        Some(Some(sight)) if topics.iter().filter(private).any(|t| !matches(&sight, t)) => 403,
        _ => 200,
    };
    let refusals = |also: u16| match auth {
        200 => vec![also],
        auth => vec![also, auth],
    };
    match () {
        _ if bad || topics.len() > MAX_TOPICS => refusals(400),
        _ if topic_params > MAX_TOPICS => vec![400, auth],
        _ => vec![auth],
    }
}

async fn check_subscribe(
    app: &TestApp,
    query: &Query,
    tokens: &[(String, Option<Vec<&'static str>>)],
) -> Result<u16, String> {
    let allowed = subscribe_allowed(&query.0, tokens);
    let response = app
        .http
        .get(app.url(&format!("/events?{}", query.0)))
        .send()
        .await
        .map_err(|e| format!("the GET failed: {e}"))?;
    let sent = response.url().query().unwrap_or("");
    if sent != query.0 {
        return Err(format!(
            "the test's client sent {sent:?}: fix the generator"
        ));
    }
    let status = response.status().as_u16();
    if !allowed.contains(&status) {
        let body = response.bytes().await.unwrap_or_default();
        return Err(unexpected(status, &allowed, &body));
    }
    if status != 200 {
        check_refusal(response).await?;
        return Ok(status);
    }
    let content_type = response.headers().get(CONTENT_TYPE).cloned();
    if content_type
        .as_ref()
        .is_none_or(|c| c != "text/event-stream")
    {
        return Err(format!("a stream with Content-Type {content_type:?}"));
    }
    // The first bytes come at once (SPEC §3); then the stream is dropped, which ends
    // the subscription.
    let mut response = response;
    match tokio::time::timeout(PATIENCE, response.chunk()).await {
        Ok(Ok(Some(first))) if first.windows(6).any(|w| w == b"retry:") => Ok(200),
        other => Err(format!("the stream's first bytes: {other:?}")),
    }
}

#[actix_web::test]
async fn no_subscription_query_breaks_the_server_and_each_gets_the_answer_spec_gives_it() {
    let app = spawn_secured_app().await;
    let tokens = subscriber_tokens();
    let mut inputs = Inputs::start("/events queries", query_input);
    while let Some((query, verdict)) = inputs.next().await {
        let result = within_patience(check_subscribe(&app, &query, &tokens)).await;
        if let Ok(status) = &result {
            inputs.saw(*status);
        }
        verdict.give(result.map(drop));
    }
    inputs.finish().await;
    still_serves(&app, Some(&format!("Bearer {TOKEN}"))).await;
}

// ---------------------------------------------------------------------------------
// Property 3: credentials
// ---------------------------------------------------------------------------------

/// How the `Authorization` header is made.
#[derive(Debug, Clone)]
enum Credential {
    Missing,
    /// Any bytes a header value may hold (visible ASCII, space, tab, and bytes past
    /// ASCII, which are not text).
    Raw(RawHeader),
    Scheme {
        scheme: &'static str,
        separator: &'static str,
        token: Token,
    },
}

#[derive(Clone)]
struct RawHeader(Vec<u8>);

impl Debug for RawHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

#[derive(Debug, Clone)]
enum Token {
    Publish,
    /// Text that is neither the publish token nor a JWT (random, near misses, random
    /// base64url parts).
    Text(String),
    Jwt(Jwt),
}

/// A JWT, made when sent (so `exp` is relative to that moment, even while shrinking).
#[derive(Debug, Clone)]
struct Jwt {
    /// The header as JSON text, the HMAC it names (if any), and whether SPEC accepts
    /// it (HS256 is the only algorithm configured).
    header: (&'static str, Option<Algorithm>, bool),
    claims: Claims,
    signing: Signing,
}

#[derive(Debug, Clone)]
enum Claims {
    /// Not an object of claims at all.
    Text(String),
    Object {
        exp: Exp,
        publish: List,
        subscribe: List,
        /// `admin` as JSON text, if present.
        admin: Option<&'static str>,
        /// Registered claims SPEC does not mention (`aud`, `iss`, …).
        others: Vec<&'static str>,
    },
}

#[derive(Debug, Clone)]
enum Exp {
    Missing,
    /// Seconds from the moment the token is made.
    In(i64),
    Never,
    /// JSON text of another type, or out of range.
    Raw(&'static str),
}

#[derive(Debug, Clone)]
enum List {
    Absent,
    Patterns(Vec<String>),
    /// JSON text of another type.
    Raw(&'static str),
}

#[derive(Debug, Clone, Copy)]
enum Signing {
    /// With the configured secret and the header's HMAC (HS256 when it names none).
    Right,
    OtherKey,
    Truncated,
    Garbage,
    Empty,
}

/// Seconds past `exp` a token is still accepted (SPEC §7).
const LEEWAY_SECS: i64 = 60;

impl Exp {
    fn valid(&self) -> bool {
        match self {
            Self::In(seconds) => *seconds >= -LEEWAY_SECS,
            Self::Never => true,
            Self::Missing | Self::Raw(_) => false,
        }
    }
}

impl List {
    /// The patterns, or `None` when the claim is not a list of valid patterns.
    fn patterns(&self) -> Option<Vec<&str>> {
        match self {
            Self::Absent => Some(Vec::new()),
            Self::Patterns(list) if list.iter().all(|p| filter_ok(p)) => {
                Some(list.iter().map(String::as_str).collect())
            }
            Self::Patterns(_) | Self::Raw(_) => None,
        }
    }

    fn json(&self) -> Option<String> {
        match self {
            Self::Absent => None,
            Self::Patterns(list) => Some(json!(list).to_string()),
            Self::Raw(text) => Some((*text).to_owned()),
        }
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn hmac(message: &str, secret: &str, algorithm: Algorithm) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes()).expect("an HMAC key");
    jsonwebtoken::crypto::sign(message.as_bytes(), &key, algorithm).expect("HMAC signs anything")
}

impl Jwt {
    fn text(&self) -> String {
        let claims = match &self.claims {
            Claims::Text(text) => text.clone(),
            Claims::Object {
                exp,
                publish,
                subscribe,
                admin,
                others,
            } => {
                let exp = match exp {
                    Exp::Missing => None,
                    Exp::In(seconds) => Some((now() as i64 + seconds).to_string()),
                    Exp::Never => Some(u64::MAX.to_string()),
                    Exp::Raw(text) => Some((*text).to_owned()),
                };
                let fields: Vec<(String, String)> = [
                    ("exp", exp),
                    ("publish", publish.json()),
                    ("subscribe", subscribe.json()),
                    ("admin", admin.map(str::to_owned)),
                ]
                .into_iter()
                .filter_map(|(name, value)| Some((format!("\"{name}\""), value?)))
                .chain(others.iter().map(|other| {
                    let (name, value) = other.split_once('=').expect("name=json");
                    (format!("\"{name}\""), value.to_owned())
                }))
                .collect();
                object(&fields)
            }
        };
        let (header, algorithm, _) = self.header;
        let signed = format!(
            "{}.{}",
            base64url(header.as_bytes()),
            base64url(claims.as_bytes())
        );
        let right = || hmac(&signed, SECRET, algorithm.unwrap_or(Algorithm::HS256));
        let signature = match self.signing {
            Signing::Right => right(),
            Signing::OtherKey => hmac(
                &signed,
                "another-secret-of-at-least-32-bytes!!",
                Algorithm::HS256,
            ),
            Signing::Truncated => {
                let mut signature = right();
                signature.pop();
                signature
            }
            Signing::Garbage => "c2lnbmF0dXJl".into(),
            Signing::Empty => String::new(),
        };
        format!("{signed}.{signature}")
    }

    /// The statuses SPEC §7 allows for a publish to `topic` with this token.
    fn allowed(&self, topic: Option<&str>) -> Vec<u16> {
        let (_, _, header_ok) = self.header;
        let Claims::Object {
            exp,
            publish,
            subscribe,
            admin,
            others,
        } = &self.claims
        else {
            return vec![401];
        };
        let admin_ok = admin.is_none_or(|a| a == "true" || a == "false");
        let publish = publish.patterns();
        let valid = header_ok
            && matches!(self.signing, Signing::Right)
            && exp.valid()
            && admin_ok
            && subscribe.patterns().is_some();
        let Some(publish) = publish.filter(|_| valid) else {
            return vec![401];
        };
        let covered = match topic {
            None => publish.contains(&"*"),
            Some(topic) => matches(&publish, topic),
        };
        let verdict = if covered { 200 } else { 403 };
        // SPEC says nothing of `aud` and the like: refusing a token for them is fair.
        match others.is_empty() {
            true => vec![verdict],
            false => vec![verdict, 401],
        }
    }
}

impl Credential {
    fn header(&self) -> Option<Vec<u8>> {
        match self {
            Self::Missing => None,
            Self::Raw(RawHeader(bytes)) => Some(bytes.clone()),
            Self::Scheme {
                scheme,
                separator,
                token,
            } => {
                let token = match token {
                    Token::Publish => TOKEN.to_owned(),
                    Token::Text(text) => text.clone(),
                    Token::Jwt(jwt) => jwt.text(),
                };
                Some(format!("{scheme}{separator}{token}").into_bytes())
            }
        }
    }

    fn allowed(&self, topic: Option<&str>) -> Vec<u16> {
        match self {
            Self::Missing | Self::Raw(_) => vec![401],
            Self::Scheme {
                scheme,
                separator,
                token,
            } => {
                // RFC 6750: the scheme is case-insensitive, then one or more spaces.
                if !scheme.eq_ignore_ascii_case("bearer") || !separator.starts_with(' ') {
                    return vec![401];
                }
                match token {
                    Token::Publish => vec![200],
                    Token::Text(_) => vec![401],
                    Token::Jwt(jwt) => jwt.allowed(topic),
                }
            }
        }
    }
}

/// Headers: the accepted HS256 ones (one with a hostile `kid`), other HMACs with the
/// same secret, `none`, public-key algorithms signed with the secret (the key
/// confusion attack), and headers that are not headers.
const JWT_HEADERS: &[(&str, Option<Algorithm>, bool)] = &[
    (
        r#"{"alg":"HS256","typ":"JWT"}"#,
        Some(Algorithm::HS256),
        true,
    ),
    (r#"{"alg":"HS256"}"#, Some(Algorithm::HS256), true),
    (
        r#"{"typ":"JWT","alg":"HS256","kid":"k\u0000\"x\n"}"#,
        Some(Algorithm::HS256),
        true,
    ),
    (
        r#"{"alg":"HS384","typ":"JWT"}"#,
        Some(Algorithm::HS384),
        false,
    ),
    (r#"{"alg":"HS512"}"#, Some(Algorithm::HS512), false),
    (r#"{"alg":"none","typ":"JWT"}"#, None, false),
    (r#"{"alg":"RS256","typ":"JWT"}"#, None, false),
    (r#"{"alg":"ES256"}"#, None, false),
    (r#"{"alg":"hs256"}"#, None, false),
    (r#"{"alg":""}"#, None, false),
    (r#"{"alg":5}"#, None, false),
    (r#"{"alg":null}"#, None, false),
    (r#"{"alg":"HS256","alg":"none"}"#, None, false),
    ("{}", None, false),
    ("[]", None, false),
    ("not json", None, false),
];

/// Claim values of the wrong type, or out of range for their type.
const WRONG_EXPS: &[&str] = &[
    "\"9999999999\"",
    "9999999999.5",
    "1.5e12",
    "-1",
    "0",
    "null",
    "true",
    "[9999999999]",
    "{}",
    "18446744073709551616",
    "1e999",
];
const WRONG_LISTS: &[&str] = &[
    "\"*\"",
    "5",
    "null",
    "[1]",
    "{\"a\":1}",
    "[[\"*\"]]",
    "[null]",
];
const PATTERNS: &[&str] = &[
    "*",
    "news",
    "news.*",
    "stocks",
    "private.*",
    "private.alice",
    "weather.*",
    "news.sport",
];
/// Patterns SPEC refuses: `*` not at the end, empty, a control character.
const BAD_PATTERNS: &[&str] = &["a*b", "", "**", "*.news", "\u{85}", "news\n"];
const OTHER_CLAIMS: &[&str] = &[
    "aud=\"ssehub\"",
    "iss=\"someone\"",
    "sub=5",
    "jti=null",
    "nbf=1",
    "iat=\"yesterday\"",
];

fn list_claim() -> impl Strategy<Value = List> {
    let pattern = prop_oneof![
        8 => select(PATTERNS).prop_map(str::to_owned),
        1 => select(BAD_PATTERNS).prop_map(str::to_owned),
        1 => Just("x".repeat(300)),
    ];
    prop_oneof![
        2 => Just(List::Absent),
        6 => vec(pattern, 0..4).prop_map(List::Patterns),
        1 => select(WRONG_LISTS).prop_map(List::Raw),
    ]
}

fn claims() -> impl Strategy<Value = Claims> {
    // Far from the edge of the leeway, so that no run hangs on the clock.
    let exp = prop_oneof![
        6 => select(vec![3600i64, 10, -10, 86_400 * 365]).prop_map(Exp::In),
        1 => select(vec![-3600i64, -86_400]).prop_map(Exp::In),
        1 => Just(Exp::Never),
        1 => Just(Exp::Missing),
        1 => select(WRONG_EXPS).prop_map(Exp::Raw),
    ];
    let admin = prop::option::weighted(
        0.3,
        select(vec!["true", "false", "\"true\"", "1", "null", "[]"]),
    );
    let object = (
        exp,
        list_claim(),
        list_claim(),
        admin,
        vec(select(OTHER_CLAIMS), 0..2),
    )
        .prop_map(|(exp, publish, subscribe, admin, others)| Claims::Object {
            exp,
            publish,
            subscribe,
            admin,
            others,
        });
    prop_oneof![
        8 => object,
        1 => json_value().prop_map(Claims::Text),
        1 => vec(any::<u8>(), 0..32)
            .prop_map(|bytes| Claims::Text(String::from_utf8_lossy(&bytes).into_owned())),
    ]
}

fn token() -> impl Strategy<Value = Token> {
    let signing = prop_oneof![
        3 => Just(Signing::Right),
        1 => select(vec![
            Signing::OtherKey,
            Signing::Truncated,
            Signing::Garbage,
            Signing::Empty,
        ]),
    ];
    // The accepted headers are the first three.
    let header = prop_oneof![2 => select(&JWT_HEADERS[..3]), 1 => select(JWT_HEADERS)];
    let jwt = (header, claims(), signing).prop_map(|(header, claims, signing)| {
        Token::Jwt(Jwt {
            header,
            claims,
            signing,
        })
    });
    let random_parts = vec(vec(any::<u8>(), 0..48), 1..6).prop_map(|parts| {
        let parts: Vec<String> = parts.iter().map(|part| base64url(part)).collect();
        Token::Text(parts.join("."))
    });
    let near_misses = select(vec![
        format!("{TOKEN}x"),
        TOKEN[1..].to_owned(),
        TOKEN.to_uppercase(),
        format!("{TOKEN}."),
        format!("{TOKEN} x"),
    ])
    .prop_map(Token::Text);
    prop_oneof![
        2 => Just(Token::Publish),
        1 => near_misses,
        2 => random_parts,
        6 => jwt,
        1 => "[ -~]{0,40}".prop_map(Token::Text),
    ]
}

/// Schemes and separators: RFC 6750's (any case, one or more spaces) and near misses.
const SCHEMES: &[(&str, &str)] = &[
    ("Bearer", " "),
    ("bearer", " "),
    ("BEARER", " "),
    ("bEaReR", " "),
    ("Bearer", "  "),
    ("Bearer", "\t"),
    ("Bearer", ""),
    ("Bearer:", " "),
    ("Basic", " "),
    ("Token", " "),
    ("Bearer,", " "),
];

/// One publish attempt: a credential, and the topic it publishes to (`None`: global).
#[derive(Debug, Clone)]
struct Attempt {
    credential: Credential,
    topic: Option<&'static str>,
}

fn attempt_input() -> impl Strategy<Value = Attempt> {
    let header_byte = prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'\t'), 1 => 0x80u8..=0xff];
    let raw = vec(header_byte, 0..64).prop_map(|bytes| Credential::Raw(RawHeader(bytes)));
    let scheme = prop_oneof![6 => Just(SCHEMES[0]), 4 => select(SCHEMES)];
    let schemed = (scheme, token()).prop_map(|((scheme, separator), token)| Credential::Scheme {
        scheme,
        separator,
        token,
    });
    let credential = prop_oneof![
        1 => Just(Credential::Missing),
        2 => raw,
        10 => schemed,
    ];
    let topic = select(vec![
        None,
        Some("news"),
        Some("stocks"),
        Some("private.alice"),
        Some("weather"),
    ]);
    (credential, topic).prop_map(|(credential, topic)| Attempt { credential, topic })
}

async fn check_attempt(
    app: &TestApp,
    watcher: &mut Watcher,
    attempt: &Attempt,
) -> Result<u16, String> {
    let allowed = attempt.credential.allowed(attempt.topic);
    let data = format!("{attempt:?}");
    let mut body = json!({"event": "attempt", "data": data});
    if let Some(topic) = attempt.topic {
        body["topic"] = topic.into();
    }
    let mut request = app.http.post(app.url("/broadcast")).json(&body);
    if let Some(header) = attempt.credential.header() {
        let value = HeaderValue::from_bytes(&header).map_err(|e| {
            format!("the test made a header no client sends ({e}): fix the generator")
        })?;
        request = request.header(AUTHORIZATION, value);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("the POST failed: {e}"))?;
    let status = response.status().as_u16();
    let expected = match status {
        _ if !allowed.contains(&status) => {
            let body = response.bytes().await.unwrap_or_default();
            return Err(unexpected(status, &allowed, &body));
        }
        200 => {
            let reply: Value = response
                .json()
                .await
                .map_err(|e| format!("a 200 that is not JSON: {e}"))?;
            let id = reply["id"].as_str().ok_or(format!("no id: {reply}"))?;
            vec![Seen {
                event: "attempt".into(),
                data,
                id: id.to_owned(),
                retry: None,
            }]
        }
        _ => {
            check_refusal(response).await?;
            Vec::new()
        }
    };
    let marker = publish_marker(&app.http, &app.base, Some(&format!("Bearer {TOKEN}"))).await?;
    let seen = watcher.until(&marker).await?;
    if seen != expected {
        return Err(format!(
            "answered {status}; the subscriber saw {seen:?}, not {expected:?}"
        ));
    }
    Ok(status)
}

#[actix_web::test]
async fn no_credential_breaks_the_server_and_only_a_valid_one_publishes_where_it_may() {
    let app = spawn_secured_app().await;
    // Sees everything, private topics included, so a leak would show.
    let everything = app.url(&format!(
        "/events?topic=*&token={}",
        jwt(json!({"subscribe": ["*"]}))
    ));
    let mut watcher = Watcher::open(&app.http, &everything).await;
    let mut inputs = Inputs::start("credentials", attempt_input);
    while let Some((attempt, verdict)) = inputs.next().await {
        let result = within_patience(check_attempt(&app, &mut watcher, &attempt)).await;
        match &result {
            Ok(status) => inputs.saw(*status),
            Err(_) => watcher = Watcher::open(&app.http, &everything).await,
        }
        verdict.give(result.map(drop));
    }
    inputs.finish().await;
    still_serves(&app, Some(&format!("Bearer {TOKEN}"))).await;
}

// ---------------------------------------------------------------------------------
// Transport abuse, over raw sockets
// ---------------------------------------------------------------------------------

/// What a raw client writes, in order; after the last step it keeps the connection
/// open (its write side too: a half-close would tell the server it is done).
#[derive(Clone)]
enum Step {
    Send(Bytes),
    /// `chunk` again and again, `pace` apart if given: a client that never finishes.
    Repeat {
        chunk: Bytes,
        pace: Option<Duration>,
    },
}

/// What came back on a raw connection.
#[derive(Debug)]
enum Answer {
    Response {
        status: u16,
        head: String,
        body: Vec<u8>,
    },
    /// Closed or reset before a whole response head.
    Closed(String),
}

impl Answer {
    /// A 4xx, or a closed connection; a JSON 4xx in the refusal shape. (The HTTP layer
    /// may refuse a head it cannot parse in its own words: 400, 408, 413, 414, 431.)
    fn assert_refused_or_closed(&self, what: &str) {
        let (status, head, body) = match self {
            Self::Response { status, head, body } => (status, head, body),
            Self::Closed(how) => return eprintln!("hostile: {what}: {how}"),
        };
        eprintln!(
            "hostile: {what}: {}",
            head.lines().next().unwrap_or_default()
        );
        assert!(
            (400..500).contains(status),
            "{what}: answered {head}{}",
            String::from_utf8_lossy(body)
        );
        if head
            .to_ascii_lowercase()
            .contains("content-type: application/json")
        {
            let content_type = HeaderValue::from_static("application/json");
            refusal_shape(Some(&content_type), body).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }

    fn assert_json_refusal(&self, what: &str, expected: u16) {
        match self {
            Self::Response { status, head, body } if *status == expected => {
                let content_type = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-type")
                            .then(|| value.trim())
                    })
                    .and_then(|value| HeaderValue::from_str(value).ok());
                refusal_shape(content_type.as_ref(), body)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            other => panic!("{what}: expected a JSON {expected}, got {other:?}"),
        }
    }
}

/// Writes `steps` to a new connection (in a task of its own, so the server may answer
/// before the request is complete) and reads the first answer, or the close.
async fn exchange(port: u16, steps: Vec<Step>) -> Answer {
    try_exchange(port, steps)
        .await
        .unwrap_or_else(|| panic!("neither an answer nor a close within {PATIENCE:?}"))
}

/// Like [`exchange`]; `None` when neither an answer nor a close came within
/// `PATIENCE`.
async fn try_exchange(port: u16, steps: Vec<Step>) -> Option<Answer> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    let (mut read, mut write) = stream.into_split();
    let writer = actix_web::rt::spawn(async move {
        for step in steps {
            let written = match step {
                Step::Send(bytes) => write.write_all(&bytes).await,
                Step::Repeat { chunk, pace } => loop {
                    if let Err(error) = write.write_all(&chunk).await {
                        break Err(error);
                    }
                    if let Some(pace) = pace {
                        tokio::time::sleep(pace).await;
                    }
                },
            };
            // The server closed the connection: what it answered is what counts.
            if written.is_err() {
                break;
            }
        }
        std::future::pending::<()>().await;
        drop(write);
    });
    let answer = tokio::time::timeout(PATIENCE, read_answer(&mut read)).await;
    writer.abort();
    answer.ok()
}

async fn read_answer(read: &mut OwnedReadHalf) -> Answer {
    let mut buffer = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match read.read(&mut chunk).await {
            Ok(0) => return Answer::Closed(format!("closed after {} bytes", buffer.len())),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(error) => return Answer::Closed(error.to_string()),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 response: {head:?}"));
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let mut body = buffer.split_off(head_end);
    if let Some(length) = length {
        while body.len() < length {
            match read.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        body.truncate(length);
    }
    Answer::Response { status, head, body }
}

fn send(bytes: impl Into<Bytes>) -> Step {
    Step::Send(bytes.into())
}

#[actix_web::test]
async fn request_heads_far_over_any_sane_size_are_refused_or_closed() {
    let app = spawn_app().await;
    let megabyte = "a".repeat(1 << 20);
    let many: String = (0..10_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let heads = [
        (
            "a 1 MB header line",
            format!("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {megabyte}\r\n\r\n"),
        ),
        (
            "10,000 headers",
            format!("GET /healthz HTTP/1.1\r\nHost: t\r\n{many}\r\n"),
        ),
        (
            "a 1 MB request line",
            format!("GET /{megabyte} HTTP/1.1\r\nHost: t\r\n\r\n"),
        ),
        (
            "a 1 MB query",
            format!("GET /events?topic={megabyte} HTTP/1.1\r\nHost: t\r\n\r\n"),
        ),
    ];
    for (what, head) in heads {
        exchange(app.port, vec![send(head)])
            .await
            .assert_refused_or_closed(what);
    }
    still_serves(&app, None).await;
}

/// Request lines of `kb` kilobytes: a path, a topic, that many topics, a publish path.
fn long_request_lines(kb: usize) -> Vec<(String, String)> {
    let long = "a".repeat(kb * 1024);
    let topics = "topic=a&".repeat(kb * 1024 / 8);
    vec![
        (format!("a {kb} KB path"), format!("GET /{long} HTTP/1.1")),
        (
            format!("a {kb} KB topic"),
            format!("GET /events?topic={long} HTTP/1.1"),
        ),
        (
            format!("{} topics", kb * 1024 / 8),
            format!("GET /events?{topics} HTTP/1.1"),
        ),
        (
            format!("a {kb} KB publish path"),
            format!("POST /broadcast/{long} HTTP/1.1"),
        ),
    ]
}

#[actix_web::test]
async fn request_lines_of_100_kb_are_refused() {
    let app = spawn_app().await;
    for (what, line) in long_request_lines(100) {
        exchange(app.port, vec![send(format!("{line}\r\nHost: t\r\n\r\n"))])
            .await
            .assert_refused_or_closed(&what);
    }
    still_serves(&app, None).await;
}

#[actix_web::test]
async fn request_lines_the_http_layer_takes_are_refused_by_the_app_in_json() {
    let app = spawn_app().await;
    // 60 KB: under the 64 KB an HTTP request target may have (the `http` crate's limit).
    let expected = [404, 400, 400, 404];
    for ((what, line), status) in long_request_lines(60).into_iter().zip(expected) {
        exchange(app.port, vec![send(format!("{line}\r\nHost: t\r\n\r\n"))])
            .await
            .assert_json_refusal(&what, status);
    }
    still_serves(&app, None).await;
}

/// A small xorshift, so the garbage is the same on every run.
fn noise(length: usize, mut state: u64) -> Vec<u8> {
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[actix_web::test]
async fn garbage_instead_of_http_is_refused_or_closed() {
    let app = spawn_app().await;
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", noise(4096, 0x9e37_79b9_7f4a_7c15)),
        ("more random bytes", noise(64, 7)),
        (
            "a TLS ClientHello",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        ),
        ("the HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
        ("an SSH banner", b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()),
        ("NUL bytes", b"\0\0\0\0\0\0\0\0\r\n\r\n".to_vec()),
        ("HTTP/9.9", b"GET / HTTP/9.9\r\n\r\n".to_vec()),
        ("no target", b"GET\r\n\r\n".to_vec()),
        ("controls in the target", b"GET /\x01\x02 HTTP/1.1\r\n\r\n".to_vec()),
        (
            "a space in a header name",
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n".to_vec(),
        ),
        (
            "a negative length",
            b"POST /broadcast HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n".to_vec(),
        ),
        (
            "two lengths",
            b"POST /broadcast HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
                .to_vec(),
        ),
        (
            "a bad chunk size",
            b"POST /broadcast HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
                .to_vec(),
        ),
        ("only line ends", b"\r\n\r\n\r\n\r\n".to_vec()),
    ];
    for (what, bytes) in garbage {
        exchange(app.port, vec![send(bytes)])
            .await
            .assert_refused_or_closed(what);
    }
    still_serves(&app, None).await;
}

#[actix_web::test]
async fn request_heads_sent_a_few_bytes_at_a_time_are_cut_off_while_others_are_served() {
    /// Enough slow clients to show they hold nothing the others need.
    const SLOW_CLIENTS: usize = 20;
    let app = spawn_app().await;
    let slow: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| {
            let steps = vec![
                send("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: "),
                // A few bytes every 100 ms, and never the end of the head.
                Step::Repeat {
                    chunk: Bytes::from_static(b"abc"),
                    pace: Some(Duration::from_millis(100)),
                },
            ];
            actix_web::rt::spawn(exchange(app.port, steps))
        })
        .collect();
    // Meanwhile everyone else is served.
    still_serves(&app, None).await;
    for client in slow {
        let answer = client.await.expect("the slow client's task");
        // The server's client request timeout: a 408, or the connection closed.
        match &answer {
            Answer::Response { status: 408, .. } | Answer::Closed(_) => {}
            other => panic!("a head that never ends got {other:?}"),
        }
    }
    still_serves(&app, None).await;
}

fn vm_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let kilobytes = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .expect("VmRSS in kB");
    kilobytes * 1024
}

const EIGHT_MB: usize = 8 << 20;

fn post_head(length: &str) -> String {
    format!(
        "POST /broadcast HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{length}\r\n\r\n"
    )
}

#[actix_web::test]
async fn eight_megabyte_bodies_are_refused_with_413_without_the_server_keeping_them() {
    /// Far past `max_body_bytes` (1 MiB) at every request: kept, they would grow the
    /// process by 160 MB.
    const REQUESTS: usize = 20;
    let app = spawn_app().await;
    let head = Bytes::from(post_head(&format!("Content-Length: {EIGHT_MB}")));
    let mut body = vec![b'x'; EIGHT_MB];
    body[..9].copy_from_slice(b"{\"data\":\"");
    // One copy, shared by every request (the test's own memory is measured too).
    let body = Bytes::from(body);
    let post = || {
        exchange(
            app.port,
            vec![Step::Send(head.clone()), Step::Send(body.clone())],
        )
    };
    // The first requests grow the allocator's pools once.
    post().await.assert_json_refusal("the first 8 MB body", 413);
    let before = vm_rss_bytes();
    for i in 0..REQUESTS {
        post()
            .await
            .assert_json_refusal(&format!("8 MB body {i}"), 413);
    }
    let grown = vm_rss_bytes().saturating_sub(before);
    eprintln!("hostile: {REQUESTS} 8 MB bodies grew the process's RSS by {grown} bytes");
    // A bound, not a measurement: half of what keeping every body would take.
    assert!(
        grown < (REQUESTS * EIGHT_MB / 2) as u64,
        "RSS grew by {grown} bytes over {REQUESTS} refused 8 MB bodies"
    );
    still_serves(&app, None).await;
}

#[actix_web::test]
async fn a_chunked_body_that_never_ends_is_refused_with_413() {
    let app = spawn_app().await;
    let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
    chunk.extend(std::iter::repeat_n(b'x', 64 * 1024));
    chunk.extend_from_slice(b"\r\n");
    let answer = exchange(
        app.port,
        vec![
            send(post_head("Transfer-Encoding: chunked")),
            send(&b"9\r\n{\"data\":\"\r\n"[..]),
            Step::Repeat {
                chunk: chunk.into(),
                pace: None,
            },
        ],
    )
    .await;
    answer.assert_json_refusal("an endless chunked body", 413);
    still_serves(&app, None).await;
}

#[actix_web::test]

async fn a_body_announced_past_max_body_bytes_is_refused_without_waiting_for_it() {
    let app = spawn_app().await;
    // The length alone says it is too large: nothing of it need be read.
    let head = post_head(&format!("Content-Length: {EIGHT_MB}"));
    match try_exchange(app.port, vec![send(head)]).await {
        Some(answer) => answer.assert_refused_or_closed("Content-Length: 8 MB, no body"),
        None => panic!("after {PATIENCE:?}, still waiting for a body of 8 MB that never comes"),
    }
    still_serves(&app, None).await;
}

#[actix_web::test]

async fn a_body_that_stops_coming_is_cut_off() {
    let app = spawn_app().await;
    let requests = [
        (
            "Content-Length: 100, 10 bytes of body",
            vec![
                send(post_head("Content-Length: 100")),
                send("{\"data\":\"x"),
            ],
        ),
        (
            "a chunked body that stops without its last chunk",
            vec![
                send(post_head("Transfer-Encoding: chunked")),
                send("9\r\n{\"data\":\"\r\n"),
            ],
        ),
    ];
    let answers = futures_util::future::join_all(
        requests
            .iter()
            .map(|(_, steps)| try_exchange(app.port, steps.clone())),
    )
    .await;
    let waiting: Vec<&str> = requests
        .iter()
        .zip(&answers)
        .filter(|(_, answer)| answer.is_none())
        .map(|((what, _), _)| *what)
        .collect();
    assert!(
        waiting.is_empty(),
        "after {PATIENCE:?}, the server still holds these open and unanswered: {waiting:?}"
    );
    for ((what, _), answer) in requests.iter().zip(answers.into_iter().flatten()) {
        answer.assert_refused_or_closed(what);
    }
    still_serves(&app, None).await;
}
