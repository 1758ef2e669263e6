//! The SSE wire format (WHATWG HTML, "Server-sent events"), and nothing else.
//!
//! Each event is encoded here exactly once, into `Bytes` that every receiver shares
//! (a clone is a reference-count bump). Field values reaching this module are
//! already validated (no CR, LF or NUL in `id` and `event`), and `data` is split on
//! every line ending a conforming parser knows, so no publisher input can end an event
//! early or smuggle in a field.

use bytes::{BufMut, Bytes, BytesMut};

use crate::event::Event;

/// Sent on otherwise idle streams so proxies keep them open and dead peers surface.
pub const HEARTBEAT: &[u8] = b": keep-alive\n\n";

/// The first bytes of every stream: written at once so `EventSource.onopen` fires
/// without waiting for an event, and telling the browser how long to wait before a
/// reconnect.
pub fn preamble(retry_ms: u64) -> Bytes {
    Bytes::from(format!("retry: {retry_ms}\n\n"))
}

/// `id`, `event`, one `data` line per line, `retry`, blank line (SPEC §5).
pub fn encode(id: Option<&str>, event: &Event) -> Bytes {
    let mut buf = BytesMut::with_capacity(event.data.len() + 64);
    if let Some(id) = id {
        put_field(&mut buf, "id", id);
    }
    if let Some(name) = &event.event {
        put_field(&mut buf, "event", name);
    }
    put_data(&mut buf, &event.data);
    if let Some(retry) = event.retry {
        put_field(&mut buf, "retry", &retry.to_string());
    }
    buf.put_u8(b'\n');
    buf.freeze()
}

/// The system event that starts a stream whose `Last-Event-ID` is no longer held.
/// It carries the newest id in history, so a reconnect resumes from there instead of
/// reporting the same gap again.
pub fn gap(newest_id: Option<&str>, asked: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(asked.len() + 64);
    if let Some(id) = newest_id {
        put_field(&mut buf, "id", id);
    }
    put_field(&mut buf, "event", "hub.gap");
    put_data(&mut buf, &serde_json::json!({ "lastEventId": asked }).to_string());
    buf.put_u8(b'\n');
    buf.freeze()
}

/// A single-line field whose value was validated not to contain CR, LF or NUL.
fn put_field(buf: &mut BytesMut, name: &str, value: &str) {
    debug_assert!(!value.contains(['\r', '\n', '\0']), "{name} was not validated");
    buf.put_slice(name.as_bytes());
    buf.put_slice(b": ");
    buf.put_slice(value.as_bytes());
    buf.put_u8(b'\n');
}

/// One `data:` line per line; CRLF, CR and LF each end a line (WHATWG), so no payload
/// can end the event early or smuggle in an `id:`. A parser strips one space after the
/// colon, so we always write exactly one and a leading space in the text survives.
fn put_data(buf: &mut BytesMut, text: &str) {
    let mut rest = text;
    loop {
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        buf.put_slice(b"data: ");
        buf.put_slice(&rest.as_bytes()[..end]);
        buf.put_u8(b'\n');
        if end == rest.len() {
            return;
        }
        let ending = if rest[end..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[end + ending..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: Option<&str>, data: &str, retry: Option<u64>) -> Event {
        Event {
            event: name.map(Into::into),
            data: data.into(),
            topics: Box::default(),
            id: None,
            retry,
        }
    }

    #[test]
    fn crlf_cr_and_lf_each_end_exactly_one_line() {
        let mut buf = BytesMut::new();
        put_data(&mut buf, "a\r\nb\rc\nd");
        assert_eq!(&buf[..], b"data: a\ndata: b\ndata: c\ndata: d\n");
    }

    #[test]
    fn empty_text_is_one_empty_data_line_and_trailing_breaks_are_kept() {
        let mut buf = BytesMut::new();
        put_data(&mut buf, "");
        assert_eq!(&buf[..], b"data: \n");
        buf.clear();
        put_data(&mut buf, "x\n");
        assert_eq!(&buf[..], b"data: x\ndata: \n");
    }

    #[test]
    fn fields_come_in_spec_order() {
        let e = event(Some("stockUpdate"), r#"{"p":1}"#, Some(5000));
        assert_eq!(
            &encode(Some("42"), &e)[..],
            b"id: 42\nevent: stockUpdate\ndata: {\"p\":1}\nretry: 5000\n\n"
        );
        let e = event(None, "hi", None);
        assert_eq!(&encode(None, &e)[..], b"data: hi\n\n");
    }

    #[test]
    fn a_gap_names_the_asked_id_as_json_and_carries_the_newest_id() {
        assert_eq!(
            &gap(Some("7"), "a\"b")[..],
            b"id: 7\nevent: hub.gap\ndata: {\"lastEventId\":\"a\\\"b\"}\n\n"
        );
        assert_eq!(&gap(None, "x")[..], b"event: hub.gap\ndata: {\"lastEventId\":\"x\"}\n\n");
    }
}
