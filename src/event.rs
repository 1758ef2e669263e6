//! A publish request as posted (JSON) becomes validated `Event`s here, or one
//! `ApiError` naming the field. A batch is validated whole before anything is handed
//! to the hub, so one bad event publishes nothing.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::topic::Topic;

/// Events per batch (SPEC §4): enough to flush a back end's queue in one request,
/// small enough that one request cannot hold the hub for long.
pub const MAX_BATCH: usize = 1000;
/// Topics per event and per subscription (SPEC §3, §4).
pub const MAX_TOPICS: usize = 32;
/// Characters in an event type (SPEC §4).
const MAX_EVENT_CHARS: usize = 128;
/// Characters in an event id (SPEC §4).
const MAX_ID_CHARS: usize = 256;
/// Event names with this prefix belong to the server (`hub.gap`).
pub const RESERVED_PREFIX: &str = "hub.";
/// The `Last-Event-ID` that asks for the whole history, so never an event's id.
pub const EARLIEST: &str = "earliest";

const FIELDS: [&str; 7] = ["event", "payload", "data", "topic", "topics", "id", "retry"];

/// One event, valid by construction, not yet given its server id.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event: Option<Box<str>>,
    /// The text of the `data:` lines: compact JSON for `payload`, else `data` as given.
    pub data: Box<str>,
    /// Empty for a global broadcast; otherwise distinct topics.
    pub topics: Box<[Topic]>,
    /// The publisher's own id; the hub assigns one when absent.
    pub id: Option<Box<str>>,
    pub retry: Option<u64>,
}

/// A parsed `POST /broadcast` body.
#[derive(Debug)]
pub struct Publication {
    pub events: Vec<Event>,
    /// Posted as an array: answered with `ids`, errors name the index.
    pub batch: bool,
}

/// Parses a `POST /broadcast` body: one object, or an array of 1–1000 objects.
pub fn parse_body(body: &[u8]) -> Result<Publication, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("body", format!("malformed JSON: {e}")))?;
    let (events, batch) = match value {
        Value::Object(object) => (vec![parse_event(object, "")?], false),
        Value::Array(items) => {
            if items.is_empty() || items.len() > MAX_BATCH {
                return Err(ApiError::invalid(
                    "body",
                    format!("a batch holds 1 to {MAX_BATCH} events, not {}", items.len()),
                ));
            }
            let events = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::Object(object) => parse_event(object, &format!("[{i}].")),
                    _ => Err(ApiError::invalid(format!("[{i}]"), "must be a JSON object")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            check_batch_ids(&events)?;
            (events, true)
        }
        _ => {
            return Err(ApiError::invalid(
                "body",
                "must be a JSON object or an array of objects",
            ));
        }
    };
    Ok(Publication { events, batch })
}

/// `at` is the field-name prefix of this event in a batch (`[3].`), or empty.
fn parse_event(mut object: Map<String, Value>, at: &str) -> Result<Event, ApiError> {
    let invalid = |field: &str, reason: String| ApiError::invalid(format!("{at}{field}"), reason);
    if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(invalid(unknown, "unknown field".into()));
    }
    // `null` means absent for `event`, `topic`, `topics`, `id` and `retry` (SPEC §4);
    // for `payload` it is the value, and `data` must be a string.
    let payload = object.remove("payload");
    let data = object.remove("data");
    let mut take = |field: &str| object.remove(field).filter(|v| !v.is_null());

    let event = take("event")
        .map(|v| {
            let name = single_line(v, MAX_EVENT_CHARS).map_err(|r| invalid("event", r))?;
            if name.starts_with(RESERVED_PREFIX) {
                return Err(invalid(
                    "event",
                    format!("names starting with {RESERVED_PREFIX:?} are reserved"),
                ));
            }
            Ok(name)
        })
        .transpose()?;

    let data = match (payload, data) {
        (Some(payload), None) => payload.to_string().into(),
        (None, Some(Value::String(text))) => text.into(),
        (None, Some(_)) => return Err(invalid("data", "must be a string".into())),
        (Some(_), Some(_)) => {
            return Err(invalid(
                "payload",
                "give either payload or data, not both".into(),
            ));
        }
        (None, None) => return Err(invalid("payload", "payload or data is required".into())),
    };

    let topics = match (take("topic"), take("topics")) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "topics",
                "give either topic or topics, not both".into(),
            ));
        }
        (Some(topic), None) => vec![parse_topic(topic).map_err(|r| invalid("topic", r))?],
        (None, Some(Value::Array(list))) => {
            if list.is_empty() || list.len() > MAX_TOPICS {
                return Err(invalid(
                    "topics",
                    format!("must hold 1 to {MAX_TOPICS} topics, not {}", list.len()),
                ));
            }
            let mut topics = Vec::with_capacity(list.len());
            for (i, topic) in list.into_iter().enumerate() {
                let topic = parse_topic(topic).map_err(|r| invalid(&format!("topics[{i}]"), r))?;
                if !topics.contains(&topic) {
                    topics.push(topic);
                }
            }
            topics
        }
        (None, Some(_)) => return Err(invalid("topics", "must be an array of strings".into())),
        (None, None) => Vec::new(),
    };

    let id = take("id")
        .map(|v| {
            let id = single_line(v, MAX_ID_CHARS).map_err(|r| invalid("id", r))?;
            if &*id == EARLIEST {
                return Err(invalid("id", format!("{EARLIEST:?} is reserved")));
            }
            Ok(id)
        })
        .transpose()?;

    let retry = take("retry")
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| invalid("retry", "must be a non-negative integer".into()))
        })
        .transpose()?;

    Ok(Event {
        event,
        data,
        topics: topics.into(),
        id,
        retry,
    })
}

/// A string of 1..=`max` characters with no CR, LF or NUL: what `id` and `event`
/// may hold, since each is written as one line and a NUL voids an `id` (WHATWG).
fn single_line(value: Value, max: usize) -> Result<Box<str>, String> {
    let Value::String(text) = value else {
        return Err("must be a string".into());
    };
    let chars = text.chars().count();
    if chars == 0 || chars > max {
        return Err(format!("must be 1 to {max} characters, not {chars}"));
    }
    if text.contains(['\r', '\n', '\0']) {
        return Err("must not contain CR, LF or NUL".into());
    }
    Ok(text.into())
}

fn parse_topic(value: Value) -> Result<Topic, String> {
    match value {
        Value::String(text) => Topic::parse(&text),
        _ => Err("must be a string".into()),
    }
}

fn check_batch_ids(events: &[Event]) -> Result<(), ApiError> {
    let mut seen = HashMap::new();
    for (i, event) in events.iter().enumerate() {
        if let Some(id) = &event.id
            && let Some(first) = seen.insert(id, i)
        {
            return Err(ApiError::Conflict {
                field: format!("[{i}].id"),
                reason: format!("the same id as [{first}]"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<Vec<Event>, ApiError> {
        parse_body(value.to_string().as_bytes()).map(|p| p.events)
    }

    fn error(value: Value) -> String {
        parse(value).unwrap_err().to_string()
    }

    #[test]
    fn the_seed_request_parses_to_compact_json_in_the_posted_order() {
        let events = parse(json!({
            "event": "stockUpdate",
            "payload": { "symbol": "RELIANCE", "price": 2750 }
        }))
        .unwrap();
        assert_eq!(&*events[0].data, r#"{"symbol":"RELIANCE","price":2750}"#);
        assert_eq!(events[0].event.as_deref(), Some("stockUpdate"));
        assert!(events[0].topics.is_empty() && events[0].id.is_none());
    }

    #[test]
    fn numbers_keep_every_digit() {
        let body = br#"{"payload": {"n": 12345678901234567890123, "f": 0.1000000000000000055511}}"#;
        let events = parse_body(body).unwrap().events;
        assert_eq!(
            &*events[0].data,
            r#"{"n":12345678901234567890123,"f":0.1000000000000000055511}"#
        );
    }

    #[test]
    fn null_means_absent_except_for_payload() {
        let events = parse(json!({
            "event": null, "payload": null, "topic": null, "topics": null,
            "id": null, "retry": null
        }))
        .unwrap();
        assert_eq!(&*events[0].data, "null");
        assert_eq!(events[0].event, None);
    }

    #[test]
    fn each_refusal_names_its_field() {
        let cases = [
            (json!({"payload": 1, "extra": null}), "extra: unknown field"),
            (
                json!({"event": "hub.x", "payload": 1}),
                "event: names starting",
            ),
            (
                json!({"event": "", "payload": 1}),
                "event: must be 1 to 128",
            ),
            (
                json!({"event": "a\rb", "payload": 1}),
                "event: must not contain",
            ),
            (json!({"event": 5, "payload": 1}), "event: must be a string"),
            (json!({"payload": 1, "data": "x"}), "payload: give either"),
            (json!({}), "payload: payload or data is required"),
            (json!({"data": 5}), "data: must be a string"),
            (json!({"data": null}), "data: must be a string"),
            (json!({"payload": 1, "data": null}), "payload: give either"),
            (
                json!({"payload": 1, "topic": "a", "topics": ["b"]}),
                "topics: give either",
            ),
            (
                json!({"payload": 1, "topic": "a*"}),
                "topic: must not contain '*'",
            ),
            (
                json!({"payload": 1, "topics": []}),
                "topics: must hold 1 to 32",
            ),
            (
                json!({"payload": 1, "topics": ["a", 1]}),
                "topics[1]: must be a string",
            ),
            (
                json!({"payload": 1, "topics": "a"}),
                "topics: must be an array",
            ),
            (
                json!({"payload": 1, "id": "earliest"}),
                "id: \"earliest\" is reserved",
            ),
            (
                json!({"payload": 1, "id": "a\u{0}"}),
                "id: must not contain",
            ),
            (
                json!({"payload": 1, "retry": -1}),
                "retry: must be a non-negative integer",
            ),
            (
                json!({"payload": 1, "retry": 1.5}),
                "retry: must be a non-negative integer",
            ),
            (json!(5), "body: must be a JSON object"),
            (json!([]), "body: a batch holds 1 to 1000 events, not 0"),
            (json!([{"payload": 1}, 7]), "[1]: must be a JSON object"),
            (
                json!([{"payload": 1}, {"payload": 1, "retry": "x"}]),
                "[1].retry: must be",
            ),
        ];
        for (body, expected) in cases {
            let got = error(body.clone());
            assert!(
                got.starts_with(expected),
                "{body} gave {got:?}, not {expected:?}"
            );
        }
        assert!(
            parse_body(b"{")
                .unwrap_err()
                .to_string()
                .starts_with("body: malformed JSON")
        );
        let too_many = Value::Array(vec![json!({"payload": 1}); MAX_BATCH + 1]);
        assert!(error(too_many).contains("not 1001"));
    }

    #[test]
    fn lengths_count_characters_and_topics_count_bytes() {
        assert!(parse(json!({"payload": 1, "id": "é".repeat(256)})).is_ok());
        assert!(parse(json!({"payload": 1, "id": "é".repeat(257)})).is_err());
        assert!(parse(json!({"payload": 1, "topic": "é".repeat(128)})).is_ok());
        assert!(parse(json!({"payload": 1, "topic": "é".repeat(129)})).is_err());
        let topics: Vec<String> = (0..33).map(|i| i.to_string()).collect();
        assert!(error(json!({"payload": 1, "topics": topics})).contains("not 33"));
    }

    #[test]
    fn repeated_topics_count_once() {
        let events = parse(json!({"payload": 1, "topics": ["a", "b", "a"]})).unwrap();
        assert_eq!(events[0].topics.len(), 2);
    }

    #[test]
    fn a_batch_with_a_repeated_id_is_a_conflict() {
        let err = parse(json!([{"payload": 1, "id": "x"}, {"payload": 2, "id": "x"}])).unwrap_err();
        assert!(matches!(err, ApiError::Conflict { .. }), "{err:?}");
        assert_eq!(err.to_string(), "[1].id: the same id as [0]");
    }
}
