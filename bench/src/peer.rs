//! What the two reference peers (`peer-tokio`, `peer-actix`) share: their command line,
//! the registry of subscribers with its fan-out, the little of a publish body they
//! read, and the bytes they send.
//!
//! The peers are floors for `scripts/bench/compare.sh`, not servers: one event stream
//! for everybody (the topic in `/events?topic=…` is ignored), no history, no auth. What
//! they send is what ssehub sends for the generator's events (`retry:` first, then
//! `id:`, `event:` and `data:` per event, chunked), and they answer a publish as ssehub
//! does, so the generator does the same work against all three.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use clap::Parser;
use tokio::sync::mpsc::Sender;

/// Events queued per subscriber: ssehub's default `client_buffer`, so a peer drops a
/// slow subscriber exactly when ssehub would.
pub const QUEUE: usize = 256;

/// The first bytes of every stream, as ssehub sends them with its default `retry_ms`.
pub const PREAMBLE: &[u8] = b"retry: 3000\n\n";

/// Largest publish body read: ssehub's default `max_body_bytes`.
pub const MAX_BODY: usize = 1024 * 1024;

/// Listen backlog, as ssehub's: 10,000 connects at once must not overflow it.
pub const BACKLOG: u32 = 4096;

/// A reference peer for the benchmark: serves `GET /events` and `POST /broadcast`.
#[derive(Debug, Parser)]
pub struct PeerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,
    /// Worker threads [default: cores − 1, at least 1, as ssehub].
    #[arg(long)]
    pub workers: Option<usize>,
}

impl PeerArgs {
    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1))
            })
            .max(1)
    }
}

/// A subscriber's end of the registry: takes a frame without waiting, or refuses it
/// (queue full: a slow subscriber; or closed: already gone).
pub trait Queue {
    fn offer(&self, frame: &Bytes) -> bool;
}

impl Queue for Sender<Bytes> {
    fn offer(&self, frame: &Bytes) -> bool {
        self.try_send(frame.clone()).is_ok()
    }
}

/// Who is subscribed. One lock around the clients and the id counter: an event gets
/// its id and reaches every queue under it, so queue order is id order.
pub struct Hub<C> {
    inner: Mutex<Inner<C>>,
}

struct Inner<C> {
    /// Removing an entry drops the subscriber's sender, which ends its stream.
    clients: HashMap<u64, C>,
    next_client: u64,
    ids: Ids,
}

/// A publish as answered.
pub struct Published {
    pub id: String,
    pub receivers: usize,
}

impl<C: Queue> Hub<C> {
    pub fn new() -> Self {
        Hub {
            inner: Mutex::new(Inner {
                clients: HashMap::new(),
                next_client: 0,
                ids: Ids::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<C>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a subscriber; the returned id removes it again.
    pub fn insert(&self, client: C) -> u64 {
        let mut inner = self.lock();
        let id = inner.next_client;
        inner.next_client += 1;
        inner.clients.insert(id, client);
        id
    }

    pub fn remove(&self, id: u64) {
        // The client is dropped after the lock is released.
        let client = self.lock().clients.remove(&id);
        drop(client);
    }

    /// Drops every subscriber (shutdown): their streams end.
    pub fn clear(&self) {
        let clients = std::mem::take(&mut self.lock().clients);
        drop(clients);
    }

    /// Encodes the body's event once and offers it to every subscriber; a subscriber
    /// whose queue is full is dropped, as ssehub drops a slow client.
    pub fn publish(&self, body: &[u8]) -> Result<Published, &'static str> {
        let publication = Publication::parse(body)?;
        let mut inner = self.lock();
        let id = inner.ids.next();
        let frame = publication.frame(&id);
        inner.clients.retain(|_, client| client.offer(&frame));
        let receivers = inner.clients.len();
        Ok(Published { id, receivers })
    }
}

impl Published {
    /// The answer's JSON, as ssehub's.
    pub fn json(&self) -> String {
        format!(
            r#"{{"success":true,"id":"{}","receivers":{}}}"#,
            self.id, self.receivers
        )
    }
}

/// The JSON of a refused publish.
pub fn refusal_json(reason: &str) -> String {
    format!(r#"{{"success":false,"error":"{reason}"}}"#)
}

/// Event ids shaped like ssehub's (`<ms>-<seq>`, the same length), so frames are the
/// same size.
struct Ids {
    start_ms: u64,
    next: u64,
}

impl Ids {
    fn new() -> Self {
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Ids { start_ms, next: 0 }
    }

    fn next(&mut self) -> String {
        let id = format!("{}-{:06}", self.start_ms, self.next);
        self.next += 1;
        id
    }
}

/// The two fields of a publish body a peer reads; the rest is skipped unread.
#[derive(Debug, PartialEq, Eq)]
pub struct Publication<'a> {
    /// `event`, when it is a plain JSON string (no escapes).
    pub event: Option<&'a str>,
    /// `payload`'s JSON text exactly as posted.
    pub payload: &'a [u8],
}

impl<'a> Publication<'a> {
    /// Reads the top-level object's `event` and `payload` members, skipping the others
    /// without looking inside them. Not a JSON validator: enough to find the payload of
    /// a well-formed body.
    pub fn parse(body: &'a [u8]) -> Result<Self, &'static str> {
        const BAD: &str = "body is not a JSON object";
        let mut i = skip_blanks(body, 0);
        if body.get(i) != Some(&b'{') {
            return Err(BAD);
        }
        i = skip_blanks(body, i + 1);
        let (mut event, mut payload) = (None, None);
        if body.get(i) == Some(&b'}') {
            return Err("payload is required");
        }
        // Bounded: each pass consumes one member.
        loop {
            let key_end = skip_string(body, i).ok_or(BAD)?;
            let key = &body[i + 1..key_end - 1];
            i = skip_blanks(body, key_end);
            if body.get(i) != Some(&b':') {
                return Err(BAD);
            }
            let start = skip_blanks(body, i + 1);
            let end = skip_value(body, start).ok_or(BAD)?;
            let value = &body[start..end];
            match key {
                b"payload" => payload = Some(value),
                b"event" => {
                    event = value
                        .strip_prefix(b"\"")
                        .and_then(|v| v.strip_suffix(b"\""))
                        .filter(|v| !v.contains(&b'\\'))
                        .and_then(|v| std::str::from_utf8(v).ok())
                }
                _ => {}
            }
            i = skip_blanks(body, end);
            match body.get(i) {
                Some(b',') => i = skip_blanks(body, i + 1),
                Some(b'}') => break,
                _ => return Err(BAD),
            }
        }
        Ok(Publication {
            event,
            payload: payload.ok_or("payload is required")?,
        })
    }

    /// The event as sent to every subscriber: `id:`, `event:`, one `data:` line per line
    /// of the payload (CRLF, CR and LF each end one), blank line.
    pub fn frame(&self, id: &str) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.payload.len() + id.len() + 32);
        buf.put_slice(b"id: ");
        buf.put_slice(id.as_bytes());
        buf.put_u8(b'\n');
        if let Some(event) = self.event {
            buf.put_slice(b"event: ");
            buf.put_slice(event.as_bytes());
            buf.put_u8(b'\n');
        }
        let mut rest = self.payload;
        loop {
            let end = rest
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
                .unwrap_or(rest.len());
            buf.put_slice(b"data: ");
            buf.put_slice(&rest[..end]);
            buf.put_u8(b'\n');
            if end == rest.len() {
                break;
            }
            rest = &rest[end
                + if rest[end..].starts_with(b"\r\n") {
                    2
                } else {
                    1
                }..];
        }
        buf.put_u8(b'\n');
        buf.freeze()
    }
}

fn skip_blanks(s: &[u8], mut i: usize) -> usize {
    while matches!(s.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// Index just past the JSON string starting at `s[i]`.
fn skip_string(s: &[u8], i: usize) -> Option<usize> {
    if s.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    // Bounded by the length of `s`.
    loop {
        match s.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// Index just past the JSON value starting at `s[i]`: a string, an object or array
/// (brackets counted, strings inside skipped), or a literal up to the next delimiter.
fn skip_value(s: &[u8], i: usize) -> Option<usize> {
    match s.get(i)? {
        b'"' => skip_string(s, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            // Bounded by the length of `s`.
            loop {
                match s.get(j)? {
                    b'"' => {
                        j = skip_string(s, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let len = s[i..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'))
                .unwrap_or(s.len() - i);
            (len > 0).then_some(i + len)
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    // unwrap: installing a handler fails only outside a runtime with signals enabled.
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generators_body_gives_its_payload_and_event() {
        let body = br#"{"event":"bench","topic":"bench","payload":{"seq":7,"t":12,"zpad":"x}"}}"#;
        let p = Publication::parse(body).unwrap();
        assert_eq!(p.event, Some("bench"));
        assert_eq!(p.payload, br#"{"seq":7,"t":12,"zpad":"x}"}"#);
        assert_eq!(
            &p.frame("1-000001")[..],
            b"id: 1-000001\nevent: bench\ndata: {\"seq\":7,\"t\":12,\"zpad\":\"x}\"}\n\n"
        );
    }

    #[test]
    fn other_members_and_shapes_are_skipped() {
        let body = br#" { "a" : [1, {"b": "\"}"}], "payload" : 42 , "event": "x\"y" } "#;
        let p = Publication::parse(body).unwrap();
        assert_eq!((p.event, p.payload), (None, &b"42"[..]));
        assert!(Publication::parse(br#"{"event":"e"}"#).is_err());
        assert!(Publication::parse(b"[1]").is_err());
        assert!(Publication::parse(br#"{"payload":{"open":1}"#).is_err());
    }

    #[test]
    fn each_line_of_the_payload_is_one_data_line() {
        let p = Publication {
            event: None,
            payload: b"{\r\n\"a\": 1\r}\n",
        };
        assert_eq!(
            &p.frame("i")[..],
            b"id: i\ndata: {\ndata: \"a\": 1\ndata: }\ndata: \n\n"
        );
    }

    #[test]
    fn a_full_queue_drops_its_subscriber() {
        let hub = Hub::new();
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let (gone, _) = tokio::sync::mpsc::channel(1);
        hub.insert(tx);
        hub.insert(gone);
        let body = br#"{"payload":1}"#;
        let first = hub.publish(body).unwrap();
        assert_eq!(first.receivers, 1, "the closed one is gone");
        assert_eq!(hub.publish(body).unwrap().receivers, 0, "the full one too");
        assert!(first.json().starts_with(r#"{"success":true,"id":""#));
    }
}
