//! Publishing: the wire format subscribers see, ids, and every refusal.

use serde_json::{Value, json};

use crate::helpers::{Subscriber, TestApp, spawn_app, spawn_app_with};

#[actix_web::test]
async fn the_seed_request_reaches_subscribers_as_compact_json() {
    let app = spawn_app().await;
    let mut subscriber = app.subscribe("/events").await;
    // The README's curl, byte for byte.
    let body = r#"{"event": "stockUpdate", "payload": { "symbol": "RELIANCE", "price": 2750 }}"#;
    let (status, reply) = app.post(Some("application/json"), body.into()).await;
    assert_eq!(status, 200);
    assert_eq!(reply["success"], true);
    assert_eq!(reply["receivers"], 1);
    let event = subscriber.next().await;
    assert_eq!(event.event, "stockUpdate");
    assert_eq!(event.data, r#"{"symbol":"RELIANCE","price":2750}"#);
    assert_eq!(event.id, reply["id"].as_str().unwrap());
}

#[actix_web::test]
async fn text_data_keeps_its_lines_and_cannot_inject_fields() {
    let app = spawn_app().await;
    let mut subscriber = app.subscribe("/events").await;
    app.publish(json!({"event": "note", "data": "a\r\nid: 6\n\nevent: x\rdata: y"}))
        .await;
    app.publish(json!({"data": ""})).await;
    let event = subscriber.next().await;
    assert_eq!(event.event, "note");
    assert_eq!(event.data, "a\nid: 6\n\nevent: x\ndata: y");
    assert_ne!(event.id, "6");
    let empty = subscriber.next().await;
    assert_eq!((empty.event.as_str(), empty.data.as_str()), ("message", ""));
}

#[actix_web::test]
async fn ids_and_retry_are_sent_as_given_and_server_ids_sort_in_publish_order() {
    let app = spawn_app().await;
    let mut subscriber = app.subscribe("/events").await;
    let mine = app
        .publish(json!({"payload": 1, "id": "order-17", "retry": 5000}))
        .await;
    assert_eq!(mine["id"], "order-17");
    let mut server_ids = Vec::new();
    for i in 0..20 {
        server_ids.push(
            app.publish(json!({"payload": i})).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let event = subscriber.next().await;
    assert_eq!(event.id, "order-17");
    assert_eq!(event.retry, Some(std::time::Duration::from_millis(5000)));
    for id in &server_ids {
        assert_eq!(&subscriber.next().await.id, id);
    }
    assert!(
        server_ids
            .windows(2)
            .all(|w| w[0] < w[1] && w[0].len() == w[1].len())
    );
}

#[actix_web::test]
async fn a_batch_is_published_in_order_in_one_request() {
    let app = spawn_app().await;
    let mut subscriber = app.subscribe("/events").await;
    let reply = app
        .publish(json!([{"payload": 1}, {"data": "two", "event": "n"}, {"payload": 3, "id": "c"}]))
        .await;
    let ids: Vec<&str> = reply["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[2], "c");
    assert_eq!(reply["receivers"], 3);
    assert_eq!(subscriber.next_data(3).await, ["1", "two", "3"]);
}

/// After each refusal nothing has changed: the subscriber's next event is the marker
/// published afterwards, and `published` counts only the markers.
async fn refused(app: &TestApp, subscriber: &mut Subscriber, reply: Value, field: &str) {
    assert_eq!(reply["success"], false, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(error.starts_with(field), "{error:?} should name {field:?}");
    let marker = app
        .publish(json!({"event": "marker", "payload": null}))
        .await;
    let next = subscriber.next().await;
    assert_eq!(
        (next.event.as_str(), next.id.as_str()),
        ("marker", marker["id"].as_str().unwrap())
    );
}

#[actix_web::test]
async fn every_refusal_names_its_field_and_publishes_nothing() {
    let app = spawn_app_with(|c| c.publish.max_body_bytes = 1024).await;
    let mut subscriber = app.subscribe("/events").await;
    let json_cases: Vec<(Value, &str)> = vec![
        (json!({"payload": 1, "bogus": null}), "bogus"),
        (json!({"event": "hub.gap", "payload": 1}), "event"),
        (json!({"event": "a\nb", "payload": 1}), "event"),
        (json!({"event": "x".repeat(129), "payload": 1}), "event"),
        (json!({"payload": 1, "data": "x"}), "payload"),
        (json!({"event": "only"}), "payload"),
        (
            json!({"payload": 1, "topic": "a", "topics": ["b"]}),
            "topics",
        ),
        (json!({"payload": 1, "id": "earliest"}), "id"),
        (json!({"payload": 1, "retry": -5}), "retry"),
        (json!("just a string"), "body"),
        (
            json!([{"payload": 1}, {"payload": 2, "retry": "soon"}]),
            "[1].retry",
        ),
    ];
    let mut expected_published = 0;
    for (body, field) in json_cases {
        let (status, reply) = app.try_publish(body).await;
        assert_eq!(status, 400, "{reply}");
        refused(&app, &mut subscriber, reply, field).await;
        expected_published += 1;
    }
    let (status, reply) = app
        .post(Some("application/json"), b"{\"payload\": ".to_vec())
        .await;
    assert_eq!(status, 400);
    refused(&app, &mut subscriber, reply, "body").await;
    let (status, reply) = app
        .post(Some("text/plain"), b"{\"payload\": 1}".to_vec())
        .await;
    assert_eq!(status, 415);
    refused(&app, &mut subscriber, reply, "Content-Type").await;
    let (status, reply) = app.post(None, b"{\"payload\": 1}".to_vec()).await;
    assert_eq!(status, 415);
    refused(&app, &mut subscriber, reply, "Content-Type").await;
    let big = json!({"data": "x".repeat(2000)}).to_string().into_bytes();
    let (status, reply) = app.post(Some("application/json"), big).await;
    assert_eq!(status, 413);
    refused(&app, &mut subscriber, reply, "body").await;
    expected_published += 4;
    app.wait_for_stats("the accepted events counted", |s| {
        s["published"] == expected_published
    })
    .await;
}

#[actix_web::test]
async fn the_media_type_is_matched_case_insensitively_with_parameters() {
    let app = spawn_app().await;
    let body = br#"{"payload": 1}"#.to_vec();
    let (status, _) = app
        .post(Some("Application/JSON; charset=utf-8"), body)
        .await;
    assert_eq!(status, 200);
}
