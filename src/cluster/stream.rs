//! An event as a stream entry, and back.
//!
//! An entry holds field `b`, the event's encoded SSE body (everything after its `id:`
//! line: encoded once, by the publishing node), `t`, its topics joined by LF (a topic
//! holds no control character), and `i`, the publisher's own id when it gave one. The
//! SSE id is `i`, or else the entry's stream id; each node prepends it to the body once.

use bytes::Bytes;
use redis::Value;
use redis::streams::StreamId;

use crate::error::ApiError;
use crate::event::{Event, Publication};
use crate::hub::Accepted;
use crate::hub::messages::Arrived;
use crate::sse;
use crate::topic::Topic;

/// What the append script takes of one event: its publisher id (`""` for none), its
/// topics, its encoded body.
pub fn fields(event: &Event) -> (&str, String, Bytes) {
    let topics: Vec<&str> = event.topics.iter().map(Topic::as_str).collect();
    (
        event.id.as_deref().unwrap_or(""),
        topics.join("\n"),
        sse::encode_body(event),
    )
}

/// The append script's reply: the events' ids, or a `409` for the first publisher id
/// still held (then nothing was appended).
pub fn accepted(publication: &Publication, reply: Vec<String>) -> Result<Accepted, ApiError> {
    let malformed = || ApiError::Unavailable {
        reason: "cluster: Redis answered the publish in an unexpected form",
        retry_after: 1,
    };
    match reply.split_first() {
        Some((status, ids)) if status == "ok" && ids.len() == publication.events.len() => {
            let ids = publication
                .events
                .iter()
                .zip(ids)
                .map(|(event, entry)| event.id.clone().unwrap_or_else(|| entry.as_str().into()))
                .collect();
            Ok(Accepted {
                ids,
                receivers: None,
            })
        }
        Some((status, [index])) if status == "conflict" => {
            let i: usize = index.parse().map_err(|_| malformed())?;
            let id = publication.events.get(i).and_then(|e| e.id.as_deref());
            let field = match publication.batch {
                true => format!("[{i}].id"),
                false => "id".into(),
            };
            let id = id.ok_or_else(malformed)?;
            Err(ApiError::Conflict {
                field,
                reason: format!("{id:?} is already in the history"),
            })
        }
        _ => Err(malformed()),
    }
}

/// An entry read back from the stream, as the hub takes it; `None` (logged) for an
/// entry that is not one of ours (written to the key by something else).
pub fn arrived(entry: StreamId) -> Option<Arrived> {
    let at_unix_ms = entry.id.split('-').next()?.parse().ok();
    let bytes = |field: &str| match entry.map.get(field) {
        Some(Value::BulkString(b)) => Some(b.as_slice()),
        _ => None,
    };
    let text = |field: &str| bytes(field).and_then(|b| std::str::from_utf8(b).ok());
    let topics = text("t").and_then(|t| {
        t.split('\n')
            .filter(|t| !t.is_empty())
            .map(|t| Topic::parse(t).ok())
            .collect::<Option<Box<[Topic]>>>()
    });
    let (Some(at_unix_ms), Some(body), Some(topics)) = (at_unix_ms, bytes("b"), topics) else {
        log::warn!(
            "cluster: stream entry {} is not an ssehub event; skipped",
            entry.id
        );
        return None;
    };
    let own = text("i");
    let id: Box<str> = own.unwrap_or(&entry.id).into();
    Some(Arrived {
        frame: sse::frame(&id, body),
        server_id: own.is_none(),
        id,
        topics,
        at_unix_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn event(id: Option<&str>, topics: &[&str]) -> Event {
        Event {
            event: Some("e".into()),
            data: "x\ny".into(),
            topics: topics.iter().map(|t| Topic::parse(t).unwrap()).collect(),
            id: id.map(Into::into),
            retry: None,
        }
    }

    fn entry(id: &str, fields: &[(&str, &[u8])]) -> StreamId {
        StreamId {
            id: id.into(),
            map: fields
                .iter()
                .map(|(k, v)| (k.to_string(), Value::BulkString(v.to_vec())))
                .collect::<HashMap<_, _>>(),
            ..StreamId::default()
        }
    }

    #[test]
    fn an_event_reads_back_as_it_was_published() {
        let published = event(None, &["a", "b.c"]);
        let (id, topics, body) = fields(&published);
        assert_eq!((id, topics.as_str()), ("", "a\nb.c"));
        let back = arrived(entry(
            "1700000000123-4",
            &[("t", topics.as_bytes()), ("b", &body)],
        ))
        .unwrap();
        assert_eq!(&*back.id, "1700000000123-4");
        assert!(back.server_id);
        assert_eq!(back.at_unix_ms, 1_700_000_000_123);
        assert_eq!(back.topics, published.topics);
        assert_eq!(
            &back.frame[..],
            b"id: 1700000000123-4\nevent: e\ndata: x\ndata: y\n\n"
        );
    }

    #[test]
    fn a_publisher_id_is_the_sse_id_and_a_global_event_has_no_topics() {
        let published = event(Some("mine"), &[]);
        let (id, topics, body) = fields(&published);
        let back = arrived(entry(
            "5-0",
            &[("i", id.as_bytes()), ("t", topics.as_bytes()), ("b", &body)],
        ))
        .unwrap();
        assert_eq!(&*back.id, "mine");
        assert!(!back.server_id && back.topics.is_empty());
        assert!(back.frame.starts_with(b"id: mine\n"));
    }

    #[test]
    fn a_foreign_entry_is_skipped() {
        assert!(arrived(entry("1-0", &[("hello", b"world")])).is_none());
        assert!(arrived(entry("1-0", &[("t", b"bad*topic"), ("b", b"\n")])).is_none());
    }

    #[test]
    fn the_scripts_reply_becomes_ids_or_a_conflict_naming_the_field() {
        let one = Publication {
            events: vec![event(Some("mine"), &[])],
            batch: false,
        };
        let ok = accepted(&one, vec!["ok".into(), "1-0".into()]).unwrap();
        assert_eq!(ok.ids, ["mine"].map(Box::from));
        assert!(ok.receivers.is_none());
        let batch = Publication {
            events: vec![event(None, &[]), event(Some("x"), &[])],
            batch: true,
        };
        let err = accepted(&batch, vec!["conflict".into(), "1".into()]).unwrap_err();
        assert_eq!(err.to_string(), "[1].id: \"x\" is already in the history");
        let ids = accepted(&batch, vec!["ok".into(), "7-0".into(), "7-1".into()]).unwrap();
        assert_eq!(ids.ids, ["7-0", "x"].map(Box::from));
        assert!(accepted(&batch, vec!["ok".into()]).is_err(), "too few ids");
    }
}
