//! Last-Event-ID: replay without gaps or duplicates, `hub.gap`, conflicts.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{Value, json};

use crate::helpers::{Subscriber, TestApp, spawn_app, spawn_app_with};

async fn publish_ids(app: &TestApp, bodies: &[Value]) -> Vec<String> {
    let mut ids = Vec::new();
    for body in bodies {
        ids.push(
            app.publish(body.clone()).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids
}

#[actix_web::test]
async fn a_resumed_client_gets_every_later_matching_event_then_live_ones() {
    let app = spawn_app().await;
    let ids = publish_ids(
        &app,
        &[
            json!({"topic": "a", "data": "a1"}),
            json!({"topic": "b", "data": "b1"}),
            json!({"topic": "a", "data": "a2"}),
            json!({"data": "g"}),
        ],
    )
    .await;
    let mut resumed = app.resume("/events?topic=a", &ids[0]).await;
    app.publish(json!({"topic": "a", "data": "live"})).await;
    let a2 = resumed.next().await;
    assert_eq!((a2.id.as_str(), a2.data.as_str()), (ids[2].as_str(), "a2"));
    assert_eq!(resumed.next_data(2).await, ["g", "live"]);
}

#[actix_web::test]
async fn the_query_parameter_works_and_the_header_wins() {
    let app = spawn_app().await;
    let ids = publish_ids(
        &app,
        &[
            json!({"data": "1"}),
            json!({"data": "2"}),
            json!({"data": "3"}),
        ],
    )
    .await;
    let mut by_query = app
        .subscribe(&format!("/events?lastEventId={}", ids[0]))
        .await;
    let mut both = app
        .resume(&format!("/events?lastEventId={}", ids[0]), &ids[1])
        .await;
    let live = app.publish(json!({"data": "live"})).await;
    let live = live["id"].as_str().unwrap();
    assert_eq!(by_query.data_until(live).await, ["2", "3"]);
    assert_eq!(both.data_until(live).await, ["3"]);
}

#[actix_web::test]
async fn earliest_replays_the_whole_history_and_the_newest_id_replays_nothing() {
    let app = spawn_app_with(|c| c.sse.history_size = 3).await;
    let ids = publish_ids(
        &app,
        &(1..=5).map(|i| json!({"payload": i})).collect::<Vec<_>>(),
    )
    .await;
    let mut earliest = app.subscribe("/events?lastEventId=earliest").await;
    let mut newest = app.resume("/events", &ids[4]).await;
    let live = app.publish(json!({"payload": "live"})).await;
    let live = live["id"].as_str().unwrap();
    assert_eq!(earliest.data_until(live).await, ["3", "4", "5"]);
    assert_eq!(newest.data_until(live).await, Vec::<String>::new());
}

#[actix_web::test]
async fn an_evicted_or_unknown_id_starts_with_hub_gap_carrying_the_newest_id() {
    let app = spawn_app_with(|c| c.sse.history_size = 2).await;
    let ids = publish_ids(
        &app,
        &[
            json!({"payload": 1}),
            json!({"payload": 2}),
            json!({"payload": 3}),
        ],
    )
    .await;
    let mut newest = ids[2].clone();
    for asked in [ids[0].as_str(), "never-issued"] {
        let mut client = app.resume("/events", asked).await;
        let gap = client.next().await;
        assert_eq!(gap.event, "hub.gap");
        assert_eq!(
            serde_json::from_str::<Value>(&gap.data).unwrap(),
            json!({"lastEventId": asked})
        );
        assert_eq!(gap.id, newest, "resume from the newest id held");
        // Reconnecting with that id reports no second gap.
        drop(client);
        let mut again = app.resume("/events", &gap.id).await;
        newest = app.publish(json!({"payload": "next"})).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(again.next_data(1).await, ["\"next\""]);
    }
}

#[actix_web::test]
async fn a_gap_with_an_empty_history_carries_no_id() {
    let app = spawn_app().await;
    let mut client = app.resume("/events", "from-before-a-restart").await;
    let gap = client.next().await;
    assert_eq!((gap.event.as_str(), gap.id.as_str()), ("hub.gap", ""));
    let mut earliest = app.subscribe("/events?lastEventId=earliest").await;
    app.publish(json!({"data": "first"})).await;
    assert_eq!(
        earliest.next_data(1).await,
        ["first"],
        "no gap for earliest on empty history"
    );
}

#[actix_web::test]
async fn events_older_than_the_ttl_leave_the_history() {
    let app = spawn_app_with(|c| c.sse.history_ttl_secs = 2).await;
    let kept = app.publish(json!({"payload": 1})).await;
    // Held at first: the whole history replays it.
    let mut replay = app.subscribe("/events?lastEventId=earliest").await;
    assert_eq!(replay.next().await.id, kept["id"].as_str().unwrap());
    app.wait_for_stats("the event expired", |s| {
        s["history"] == 0 && s["published"] == 1
    })
    .await;
}

#[actix_web::test]
async fn an_id_still_in_history_is_a_conflict_and_publishes_nothing() {
    let app = spawn_app().await;
    let mut watcher = app.subscribe("/events").await;
    app.publish(json!({"payload": 1, "id": "order-1"})).await;
    let (status, reply) = app
        .try_publish(json!({"payload": 2, "id": "order-1"}))
        .await;
    assert_eq!(status, 409);
    assert!(
        reply["error"].as_str().unwrap().starts_with("id:"),
        "{reply}"
    );
    let (status, reply) = app
        .try_publish(json!([{"payload": 3}, {"payload": 4, "id": "order-1"}]))
        .await;
    assert_eq!(status, 409);
    assert!(
        reply["error"].as_str().unwrap().starts_with("[1].id:"),
        "{reply}"
    );
    let (status, _) = app
        .try_publish(json!([{"payload": 5, "id": "x"}, {"payload": 6, "id": "x"}]))
        .await;
    assert_eq!(status, 409);
    app.publish(json!({"payload": "after"})).await;
    assert_eq!(watcher.next_data(2).await, ["1", "\"after\""]);
    app.wait_for_stats("two published", |s| s["published"] == 2)
        .await;
}

/// The event that ends the load test: published after every publisher is done, so a
/// subscriber that reaches it has seen everything it will ever get.
const END: &str = "end";

/// Reads up to `n` events into `into`; answers the id of the `END` marker if it
/// comes first (it is not added).
async fn read_up_to(
    subscriber: &mut Subscriber,
    n: usize,
    into: &mut Vec<(String, String)>,
) -> Option<String> {
    for _ in 0..n {
        let event = subscriber.next().await;
        if event.event == END {
            return Some(event.id);
        }
        into.push((event.id, event.data));
    }
    None
}

#[actix_web::test]
async fn reconnecting_subscribers_see_exactly_the_published_sequence_under_load() {
    const EVENTS: usize = 1500;
    let app = Rc::new(spawn_app_with(|c| c.sse.history_size = 10_000).await);
    let topics = [
        json!("a"),
        json!("b"),
        json!(["a", "b"]),
        Value::Null,
        json!("c"),
    ];

    // Two publishers at once; server ids sort in the hub's order, so sorting what
    // they were told rebuilds the order every subscriber must see.
    let published = Rc::new(RefCell::new(Vec::new()));
    let publishers: Vec<_> = (0..2)
        .map(|p| {
            let (app, published, topics) = (app.clone(), published.clone(), topics.clone());
            actix_web::rt::spawn(async move {
                for i in 0..EVENTS / 2 {
                    let topic = topics[(i * 2 + p) % topics.len()].clone();
                    let data = format!("{p}-{i}");
                    let body = match &topic {
                        Value::Array(_) => json!({"topics": topic, "data": data}),
                        _ => json!({"topic": topic, "data": data}),
                    };
                    let id = app.publish(body).await["id"].as_str().unwrap().to_owned();
                    published.borrow_mut().push((id, topic, data));
                }
            })
        })
        .collect();

    let filters = [
        "/events?topic=a",
        "/events?topic=b&topic=c",
        "/events?topic=*",
        "/events",
    ];
    let subscribers: Vec<_> = filters
        .iter()
        .enumerate()
        .map(|(k, path)| {
            let app = app.clone();
            let path = path.to_string();
            actix_web::rt::spawn(async move {
                let mut got: Vec<(String, String)> = Vec::new();
                let (mut round, mut during_publishing) = (0, 0);
                // Reconnect after a varying number of events, many times, until the
                // marker published after the last event arrives.
                loop {
                    let last = got
                        .last()
                        .map_or("earliest".to_owned(), |(id, _)| id.clone());
                    let mut stream = app.resume(&path, &last).await;
                    let end = read_up_to(&mut stream, 1 + (round * 7 + k * 3) % 40, &mut got).await;
                    round += 1;
                    if app.stats().await["published"].as_u64().unwrap() < EVENTS as u64 {
                        during_publishing += 1;
                    }
                    if let Some(end) = end {
                        return (during_publishing, got, end);
                    }
                }
            })
        })
        .collect();

    for publisher in publishers {
        publisher.await.unwrap();
    }
    // A global broadcast, so every subscriber gets it, after all the others.
    let end = app.publish(json!({"event": END, "payload": null})).await;
    let mut published = published.borrow().clone();
    published.sort_by(|x, y| x.0.cmp(&y.0));
    for (k, subscriber) in subscribers.into_iter().enumerate() {
        let (during_publishing, got, end_seen) = subscriber.await.unwrap();
        assert_eq!(
            end_seen,
            end["id"].as_str().unwrap(),
            "subscriber {k}: the marker"
        );
        let wanted = |topic: &Value| -> bool {
            let names: Vec<&str> = match topic {
                Value::Null => return true,
                Value::String(t) => vec![t.as_str()],
                Value::Array(list) => list.iter().map(|t| t.as_str().unwrap()).collect(),
                _ => unreachable!(),
            };
            match k {
                0 => names.contains(&"a"),
                1 => names.contains(&"b") || names.contains(&"c"),
                2 => true,
                _ => false,
            }
        };
        let expected: Vec<(String, String)> = published
            .iter()
            .filter(|(_, topic, _)| wanted(topic))
            .map(|(id, _, data)| (id.clone(), data.clone()))
            .collect();
        assert!(
            during_publishing >= 10,
            "subscriber {k} reconnected only {during_publishing} times while events were published"
        );
        assert_eq!(got.len(), expected.len(), "subscriber {k}: count");
        assert!(got == expected, "subscriber {k}: the sequence differs");
    }
}
