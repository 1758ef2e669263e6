//! Publishing on an even schedule over a few keep-alive HTTP/1.1 connections.
//!
//! Event `seq` is due at `start + seq / rate`. Each publisher connection takes the next
//! sequence number, waits until it is due and POSTs it; so one slow answer delays only
//! the events that connection took, and the others keep to the schedule. The payload
//! carries the *due* time, so subscribers measure latency from the schedule: a server
//! that makes publishers wait shows up as latency, not as a quietly lower rate.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::sse_client::{connect_from, new_histogram, unix_micros};
use crate::wire::{Dechunker, number_after, parse_head};

/// Largest publish response read; ssehub and Nchan answer with a few hundred bytes.
const MAX_RESPONSE: usize = 1024 * 1024;

/// The placeholder in a body template that stands for the event's JSON payload.
pub const PAYLOAD_PLACEHOLDER: &str = "{payload}";

/// How to build and send one publish request.
#[derive(Debug)]
pub struct PubRequest {
    pub addr: SocketAddrV4,
    /// Request line and headers up to (not including) `Content-Length`.
    head: String,
    /// The body template, split around [`PAYLOAD_PLACEHOLDER`].
    body_before: String,
    body_after: String,
    /// Appended to every payload as `"zpad":"xxx…"` to make events bigger. The key sorts
    /// after `seq` and `t`, so those stay first in the line even if a server re-orders
    /// keys, and the subscriber's scanner only needs a line's first bytes.
    pad: String,
    /// The JSON key in the response that counts the event's receivers, if any.
    receivers_key: &'static str,
}

impl PubRequest {
    pub fn new(
        addr: SocketAddrV4,
        host: &str,
        path: &str,
        headers: &[String],
        body_template: &str,
        pad_bytes: usize,
        receivers_key: &'static str,
    ) -> Result<Self, String> {
        let (before, after) = body_template
            .split_once(PAYLOAD_PLACEHOLDER)
            .ok_or_else(|| format!("--pub-body must contain {PAYLOAD_PLACEHOLDER}"))?;
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
        );
        for h in headers {
            if !h.contains(':') || h.contains(['\r', '\n']) {
                return Err(format!("--pub-header {h:?}: expected \"Name: value\""));
            }
            head.push_str(h);
            head.push_str("\r\n");
        }
        Ok(PubRequest {
            addr,
            head,
            body_before: before.to_owned(),
            body_after: after.to_owned(),
            pad: "x".repeat(pad_bytes),
            receivers_key,
        })
    }

    /// Writes the complete request for event `seq`, due at `due_us`, into `out`.
    fn build(&self, seq: u64, due_us: u64, out: &mut Vec<u8>) {
        use std::io::Write;
        let mut payload = format!("{{\"seq\":{seq},\"t\":{due_us}");
        if !self.pad.is_empty() {
            payload.push_str(",\"zpad\":\"");
            payload.push_str(&self.pad);
            payload.push('"');
        }
        payload.push('}');
        let body_len = self.body_before.len() + payload.len() + self.body_after.len();
        out.clear();
        let _ = write!(out, "{}Content-Length: {body_len}\r\n\r\n", self.head);
        out.extend_from_slice(self.body_before.as_bytes());
        out.extend_from_slice(payload.as_bytes());
        out.extend_from_slice(self.body_after.as_bytes());
    }
}

/// When each event is due.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub start: Instant,
    pub start_unix_us: u64,
    /// `None`: no schedule, each publisher sends as soon as its last answer came.
    pub interval: Option<Duration>,
    pub events: u64,
    /// No request is sent after this: a server that cannot keep up makes the schedule
    /// slip, and the run must still end. Events not sent by then are reported unsent.
    pub stop_at: Instant,
}

impl Schedule {
    /// `rate` events per second (0: as fast as possible), starting `lead` from now;
    /// publishing stops `overrun` after the last event was due (for rate 0: `overrun`
    /// after the start).
    pub fn new(rate: f64, events: u64, lead: Duration, overrun: Duration) -> Self {
        let start = Instant::now() + lead;
        let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        let length = interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(events.saturating_sub(1) as f64)
        });
        Schedule {
            start,
            start_unix_us: unix_micros() + lead.as_micros() as u64,
            interval,
            events,
            stop_at: start + length + overrun,
        }
    }

    fn due(&self, seq: u64) -> Option<Instant> {
        self.interval.map(|i| self.start + i.mul_f64(seq as f64))
    }
}

/// What the publishers measured.
#[derive(Debug)]
pub struct PubOutcome {
    /// Requests sent (the rest of the schedule was cut off at its stop time).
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Request sent → complete answer, µs.
    pub post_latency: Histogram<u64>,
    /// How late requests were sent relative to their due time, µs.
    pub send_lag: Histogram<u64>,
    /// (fewest, most) receivers reported by the server.
    pub receivers: Option<(u64, u64)>,
    /// Achieved publish rate: events sent per second between the first and last send.
    pub rate: f64,
    /// From the schedule's start to the last answer.
    pub elapsed: Duration,
}

struct Shared {
    ok: AtomicU64,
    errors: AtomicU64,
    first_send_us: AtomicU64,
    last_send_us: AtomicU64,
    sent: AtomicU64,
    detail: Mutex<Detail>,
}

struct Detail {
    first_error: Option<String>,
    post_latency: Histogram<u64>,
    send_lag: Histogram<u64>,
    receivers: Option<(u64, u64)>,
}

/// Runs the whole schedule on `connections` publisher connections and waits for it.
pub async fn publish(
    request: Arc<PubRequest>,
    schedule: Schedule,
    connections: usize,
    post_timeout: Duration,
) -> PubOutcome {
    let shared = Arc::new(Shared {
        ok: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_send_us: AtomicU64::new(u64::MAX),
        last_send_us: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        detail: Mutex::new(Detail {
            first_error: None,
            post_latency: new_histogram(),
            send_lag: new_histogram(),
            receivers: None,
        }),
    });
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for id in 0..connections.max(1) {
        let (request, shared, next) = (request.clone(), shared.clone(), next.clone());
        workers.spawn(worker(id, request, schedule, next, shared, post_timeout));
    }
    while workers.join_next().await.is_some() {}
    let elapsed = schedule.start.elapsed();
    let detail = shared.detail.lock().unwrap_or_else(|e| e.into_inner());
    let (first, last, sent) = (
        shared.first_send_us.load(Relaxed),
        shared.last_send_us.load(Relaxed),
        shared.sent.load(Relaxed),
    );
    let span = last.saturating_sub(first) as f64 / 1e6;
    PubOutcome {
        sent,
        ok: shared.ok.load(Relaxed),
        errors: shared.errors.load(Relaxed),
        first_error: detail.first_error.clone(),
        post_latency: detail.post_latency.clone(),
        send_lag: detail.send_lag.clone(),
        receivers: detail.receivers,
        rate: if sent > 1 && span > 0.0 {
            (sent - 1) as f64 / span
        } else {
            0.0
        },
        elapsed,
    }
}

/// One publisher connection: takes sequence numbers until the schedule is used up.
async fn worker(
    id: usize,
    request: Arc<PubRequest>,
    schedule: Schedule,
    next: Arc<AtomicU64>,
    shared: Arc<Shared>,
    post_timeout: Duration,
) {
    let mut conn: Option<TcpStream> = None;
    let (mut out, mut resp) = (Vec::with_capacity(1024), Vec::with_capacity(1024));
    // Bounded: each pass takes a distinct sequence number below `schedule.events`.
    loop {
        let seq = next.fetch_add(1, Relaxed);
        if seq >= schedule.events {
            break;
        }
        let due = schedule.due(seq);
        if due.unwrap_or_else(Instant::now).max(Instant::now()) > schedule.stop_at {
            break;
        }
        let due_us = match due {
            Some(due) => {
                tokio::time::sleep_until(due.into()).await;
                schedule.start_unix_us + due.duration_since(schedule.start).as_micros() as u64
            }
            None => unix_micros(),
        };
        request.build(seq, due_us, &mut out);
        let sent = Instant::now();
        let since_start = sent.saturating_duration_since(schedule.start).as_micros() as u64;
        shared.first_send_us.fetch_min(since_start, Relaxed);
        shared.last_send_us.fetch_max(since_start, Relaxed);
        shared.sent.fetch_add(1, Relaxed);
        let lag_us = due.map_or(0, |d| sent.saturating_duration_since(d).as_micros() as u64);
        let result = match tokio::time::timeout(
            post_timeout,
            post(&mut conn, id, &request, &out, &mut resp),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => {
                conn = None;
                Err(format!("no answer within {post_timeout:?}"))
            }
        };
        let took_us = sent.elapsed().as_micros() as u64;
        let mut detail = shared.detail.lock().unwrap_or_else(|e| e.into_inner());
        if due.is_some() {
            detail.send_lag.saturating_record(lag_us.max(1));
        }
        match result {
            Ok(receivers) => {
                shared.ok.fetch_add(1, Relaxed);
                detail.post_latency.saturating_record(took_us.max(1));
                if let Some(n) = receivers {
                    let (lo, hi) = detail.receivers.unwrap_or((n, n));
                    detail.receivers = Some((lo.min(n), hi.max(n)));
                }
            }
            Err(e) => {
                shared.errors.fetch_add(1, Relaxed);
                detail.first_error.get_or_insert(e);
            }
        }
    }
}

/// Sends one request on the kept-alive connection (opening one if needed) and reads the
/// answer. A reused connection that the server had closed meanwhile (keep-alive timeout,
/// request limit) fails before any answer byte: then the request is sent once more on a
/// fresh connection. Returns the receivers count from the answer, if it has one.
async fn post(
    conn: &mut Option<TcpStream>,
    id: usize,
    request: &PubRequest,
    out: &[u8],
    resp: &mut Vec<u8>,
) -> Result<Option<u64>, String> {
    for attempt in 0..2 {
        let reused = conn.is_some();
        let stream = match conn {
            Some(s) => s,
            None => conn.insert(
                connect_from(request.addr, id)
                    .await
                    .map_err(|e| format!("connect: {e}"))?,
            ),
        };
        match exchange(stream, out, resp).await {
            Ok((status, keep)) => {
                if !keep {
                    *conn = None;
                }
                let body = resp.as_slice();
                if !(200..300).contains(&status) {
                    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                    return Err(format!("HTTP {status}: {text}"));
                }
                return Ok(number_after(body, request.receivers_key.as_bytes()));
            }
            Err(Exchange::Stale) if reused && attempt == 0 => *conn = None,
            Err(Exchange::Stale) => {
                *conn = None;
                return Err("connection closed before the answer".into());
            }
            Err(Exchange::Failed(e)) => {
                *conn = None;
                return Err(e);
            }
        }
    }
    Err("connection closed before the answer".into())
}

enum Exchange {
    /// Closed or reset before any answer byte: the request may be retried.
    Stale,
    Failed(String),
}

/// Writes `out` and reads one response; leaves its body in `resp`. Returns the status
/// and whether the connection may be reused.
async fn exchange(
    stream: &mut TcpStream,
    out: &[u8],
    resp: &mut Vec<u8>,
) -> Result<(u16, bool), Exchange> {
    stream.write_all(out).await.map_err(|_| Exchange::Stale)?;
    resp.clear();
    // Bounded by MAX_HEAD inside parse_head.
    let (head, head_len) = loop {
        match stream.read_buf(resp).await {
            Ok(0) | Err(_) if resp.is_empty() => return Err(Exchange::Stale),
            Ok(0) => return Err(Exchange::Failed("closed inside the answer head".into())),
            Err(e) => return Err(Exchange::Failed(format!("read answer: {e}"))),
            Ok(_) => {}
        }
        if let Some(parsed) = parse_head(resp).map_err(|e| Exchange::Failed(e.to_string()))? {
            break parsed;
        }
    };
    resp.drain(..head_len);
    let keep = !head.close;
    if head.chunked {
        let mut body = Vec::new();
        let mut chunks = Dechunker::default();
        let mut pending = std::mem::take(resp);
        // Bounded by MAX_RESPONSE.
        loop {
            let done = chunks
                .feed(&pending, |d| body.extend_from_slice(d))
                .map_err(|e| Exchange::Failed(e.to_string()))?;
            if done {
                break;
            }
            if body.len() > MAX_RESPONSE {
                return Err(Exchange::Failed("answer too large".into()));
            }
            pending.clear();
            let n = stream
                .read_buf(&mut pending)
                .await
                .map_err(|e| Exchange::Failed(e.to_string()))?;
            if n == 0 {
                return Err(Exchange::Failed("closed inside a chunked answer".into()));
            }
        }
        *resp = body;
        return Ok((head.status, keep));
    }
    let Some(len) = head.content_length else {
        // No length and not chunked: the body runs to the end of the connection
        // (or is empty for 204/304, which the servers here do not send to a POST).
        read_to_close(stream, resp).await?;
        return Ok((head.status, false));
    };
    if len > MAX_RESPONSE {
        return Err(Exchange::Failed("answer too large".into()));
    }
    // Bounded: each pass reads at least one byte towards `len`.
    while resp.len() < len {
        let n = stream
            .read_buf(resp)
            .await
            .map_err(|e| Exchange::Failed(e.to_string()))?;
        if n == 0 {
            return Err(Exchange::Failed("closed inside the answer body".into()));
        }
    }
    resp.truncate(len);
    Ok((head.status, keep))
}

async fn read_to_close(stream: &mut TcpStream, resp: &mut Vec<u8>) -> Result<(), Exchange> {
    // Bounded by MAX_RESPONSE.
    while resp.len() <= MAX_RESPONSE {
        if stream
            .read_buf(resp)
            .await
            .map_err(|e| Exchange::Failed(e.to_string()))?
            == 0
        {
            return Ok(());
        }
    }
    Err(Exchange::Failed("answer too large".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse_sample;

    #[test]
    fn request_carries_payload_and_length() {
        let addr = "127.0.0.1:3000".parse().unwrap();
        let req = PubRequest::new(
            addr,
            "127.0.0.1:3000",
            "/broadcast",
            &["Authorization: Bearer t".into()],
            r#"{"event":"bench","payload":{payload}}"#,
            5,
            "\"receivers\":",
        )
        .unwrap();
        let mut out = Vec::new();
        req.build(7, 1234, &mut out);
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /broadcast HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n"));
        assert!(head.contains("Authorization: Bearer t\r\n"));
        assert!(head.ends_with(&format!("Content-Length: {}", body.len())));
        assert_eq!(
            body,
            r#"{"event":"bench","payload":{"seq":7,"t":1234,"zpad":"xxxxx"}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(parsed["payload"]["seq"], 7);
        assert_eq!(
            parse_sample(body.as_bytes()).map(|s| (s.seq, s.due_us)),
            Some((7, 1234))
        );
    }

    #[test]
    fn bad_templates_and_headers_are_refused() {
        let addr = "127.0.0.1:3000".parse().unwrap();
        assert!(PubRequest::new(addr, "h", "/p", &[], "{}", 0, "").is_err());
        assert!(PubRequest::new(addr, "h", "/p", &["nocolon".into()], "{payload}", 0, "").is_err());
    }

    #[test]
    fn schedule_spacing() {
        let s = Schedule::new(1000.0, 10, Duration::ZERO, Duration::from_secs(1));
        assert_eq!(s.due(5).unwrap() - s.start, Duration::from_millis(5));
        assert_eq!(s.stop_at - s.start, Duration::from_millis(1009));
        assert!(
            Schedule::new(0.0, 10, Duration::ZERO, Duration::ZERO)
                .due(5)
                .is_none()
        );
    }
}
