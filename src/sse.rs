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

/// Everything after the `id:` line: `event`, one `data` line per line, `retry`, blank
/// line (SPEC §5). Encoded before the event has its id, so that the publish lock only
/// has to prepend the id ([`frame`]).
pub fn encode_body(event: &Event) -> Bytes {
    let mut buf = BytesMut::with_capacity(event.data.len() + 32);
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

/// The event as sent: its `id:` line, then its encoded body.
pub fn frame(id: &str, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(id.len() + 5 + body.len());
    put_field(&mut buf, "id", id);
    buf.put_slice(body);
    buf.freeze()
}

/// An `id:` line alone: a block that dispatches no event but sets the client's last
/// event id (WHATWG), so a client that connected without a position and is cut off
/// before its first event resumes from here.
pub fn position(id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(id.len() + 6);
    put_field(&mut buf, "id", id);
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
    put_data(
        &mut buf,
        &serde_json::json!({ "lastEventId": asked }).to_string(),
    );
    buf.put_u8(b'\n');
    buf.freeze()
}

/// A single-line field whose value was validated not to contain CR, LF or NUL.
fn put_field(buf: &mut BytesMut, name: &str, value: &str) {
    debug_assert!(
        !value.contains(['\r', '\n', '\0']),
        "{name} was not validated"
    );
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
        let ending = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
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
            &frame("42", &encode_body(&e))[..],
            b"id: 42\nevent: stockUpdate\ndata: {\"p\":1}\nretry: 5000\n\n"
        );
        let e = event(None, "hi", None);
        assert_eq!(&encode_body(&e)[..], b"data: hi\n\n");
    }

    #[test]
    fn a_position_is_an_id_line_and_a_blank_line_only() {
        assert_eq!(&position("1-2")[..], b"id: 1-2\n\n");
    }

    #[test]
    fn a_gap_names_the_asked_id_as_json_and_carries_the_newest_id() {
        assert_eq!(
            &gap(Some("7"), "a\"b")[..],
            b"id: 7\nevent: hub.gap\ndata: {\"lastEventId\":\"a\\\"b\"}\n\n"
        );
        assert_eq!(
            &gap(None, "x")[..],
            b"event: hub.gap\ndata: {\"lastEventId\":\"x\"}\n\n"
        );
    }
}

/// Whatever a publisher sends, a conforming parser reads back exactly that event, or
/// the request is refused for breaking a rule of SPEC §4: never a different event.
#[cfg(test)]
mod round_trip {
    use crate::event::parse_body;
    use eventsource_stream::Eventsource;
    use futures_util::StreamExt;
    use proptest::prelude::*;
    use serde_json::json;

    /// Any text, with the characters that matter to the wire format made common.
    fn text(max: usize) -> impl Strategy<Value = String> {
        let tricky = prop_oneof![
            4 => any::<char>(),
            1 => prop::sample::select(vec!['\r', '\n', '\0', ':', ' ', '\u{feff}', '\u{85}', '\u{2028}']),
        ];
        prop::collection::vec(tricky, 0..max).prop_map(|chars| chars.into_iter().collect())
    }

    fn single_line_ok(s: &str, max: usize) -> bool {
        (1..=max).contains(&s.chars().count()) && !s.contains(['\r', '\n', '\0'])
    }

    /// Parses `bytes` with eventsource-stream (WHATWG), fed in chunks of `split` bytes.
    fn parse(bytes: &[u8], split: usize) -> Vec<eventsource_stream::Event> {
        let chunks: Vec<Result<bytes::Bytes, std::convert::Infallible>> = bytes
            .chunks(split)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let events = futures_util::stream::iter(chunks)
            .eventsource()
            .collect::<Vec<_>>();
        futures_executor::block_on(events)
            .into_iter()
            .map(|e| e.expect("a conforming stream"))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn every_accepted_event_reads_back_exactly(
            name in proptest::option::of(text(12)),
            data in text(40),
            id in proptest::option::of(text(12)),
            retry in proptest::option::of(any::<u64>()),
            as_payload in any::<bool>(),
            split in 1usize..64,
        ) {
            let body = if as_payload {
                json!({"event": name, "payload": {"text": data}, "id": id, "retry": retry})
            } else {
                json!({"event": name, "data": data, "id": id, "retry": retry})
            };
            let valid = name.as_deref().is_none_or(|n| single_line_ok(n, 128) && !n.starts_with("hub."))
                && id.as_deref().is_none_or(|i| single_line_ok(i, 256) && i != "earliest");
            let parsed = parse_body(body.to_string().as_bytes());
            prop_assert_eq!(parsed.is_ok(), valid, "{:?}", parsed);
            let Ok(publication) = parsed else { return Ok(()) };

            let event = &publication.events[0];
            let wire_id = id.clone().unwrap_or_else(|| "0000000000000001".into());
            let mut stream = super::preamble(3000).to_vec();
            stream.extend_from_slice(&super::frame(&wire_id, &super::encode_body(event)));
            let got = parse(&stream, split);
            prop_assert_eq!(got.len(), 1);
            // Lines are what SSE carries: every line ending reads back as LF.
            let expected_data = if as_payload {
                json!({"text": data}).to_string()
            } else {
                data.replace("\r\n", "\n").replace('\r', "\n")
            };
            prop_assert_eq!(&got[0].data, &expected_data);
            prop_assert_eq!(&got[0].event, name.as_deref().unwrap_or("message"));
            prop_assert_eq!(&got[0].id, &wire_id);
            prop_assert_eq!(got[0].retry.map(|r| r.as_millis() as u64), retry);
        }
    }
}
