//! Subscribing: headers, first bytes, heartbeats, global broadcasts, the registry.

use futures_util::StreamExt;
use serde_json::json;

use crate::helpers::{PATIENCE, spawn_app, spawn_app_with};

#[actix_web::test]
async fn the_stream_has_exactly_the_spec_headers_and_is_never_compressed() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/events"))
        .header("Accept-Encoding", "gzip, br, zstd")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert!(headers.get("content-encoding").is_none());
}

#[actix_web::test]
async fn the_first_bytes_arrive_before_any_event() {
    let app = spawn_app_with(|c| c.sse.retry_ms = 1234).await;
    let response = app.http.get(app.url("/events")).send().await.unwrap();
    let mut body = response.bytes_stream();
    // Nothing is published: whatever arrives came by itself. The transport may split
    // it, so read up to the first blank line.
    let mut first = Vec::new();
    while !first.ends_with(b"\n\n") {
        let chunk = tokio::time::timeout(PATIENCE, body.next())
            .await
            .expect("the first bytes within PATIENCE, with nothing published")
            .expect("the stream is open")
            .expect("the stream is not broken");
        first.extend_from_slice(&chunk);
    }
    assert_eq!(String::from_utf8_lossy(&first), "retry: 1234\n\n");
}

#[actix_web::test]
async fn idle_streams_get_heartbeat_comments() {
    let app = spawn_app_with(|c| c.sse.heartbeat_secs = 1).await;
    let response = app.http.get(app.url("/events")).send().await.unwrap();
    let mut body = response.bytes_stream();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(": keep-alive\n\n") {
        let chunk = tokio::time::timeout(PATIENCE, body.next()).await;
        seen.extend_from_slice(
            &chunk
                .expect("a heartbeat within PATIENCE")
                .unwrap()
                .unwrap(),
        );
    }
}

#[actix_web::test]
async fn a_global_broadcast_reaches_every_client_whatever_it_subscribed_to() {
    let app = spawn_app().await;
    let mut plain = app.subscribe("/events").await;
    let mut topical = app.subscribe("/events?topic=stocks").await;
    let mut everything = app.subscribe("/events?topic=*").await;
    let reply = app.publish(json!({"event": "note", "data": "hello"})).await;
    assert_eq!(reply["receivers"], 3);
    for subscriber in [&mut plain, &mut topical, &mut everything] {
        let event = subscriber.next().await;
        assert_eq!(
            (event.event.as_str(), event.data.as_str()),
            ("note", "hello")
        );
        assert_eq!(event.id, reply["id"].as_str().unwrap());
    }
}

#[actix_web::test]
async fn a_client_that_disconnects_leaves_the_registry_without_any_publish() {
    let app = spawn_app().await;
    let first = app.subscribe("/events?topic=a").await;
    let _second = app.subscribe("/events").await;
    app.wait_for_clients(2).await;
    drop(first);
    app.wait_for_clients(1).await;
    assert_eq!(
        app.stats().await["published"],
        0,
        "nothing was sent to notice it"
    );
}

#[actix_web::test]
async fn a_full_hub_refuses_with_503_retry_after_and_json() {
    let app = spawn_app_with(|c| c.sse.max_clients = 1).await;
    let _only = app.subscribe("/events").await;
    let response = app.get("/events").await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert!(
        body["error"].as_str().unwrap().contains("max_clients"),
        "{body}"
    );
}

#[actix_web::test]
async fn bad_subscriptions_are_400_json_and_change_nothing() {
    let app = spawn_app().await;
    let mut watcher = app.subscribe("/events").await;
    let too_many: String = (0..33).map(|i| format!("topic=t{i}&")).collect();
    for query in [
        too_many.as_str(),
        "topic=",
        "topic=a*b",
        "topic=%07",
        "topic=%zz",
    ] {
        let response = app.get(&format!("/events?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["success"], false);
        assert!(body["error"].as_str().unwrap().starts_with("topic") || query == "topic=%zz");
    }
    app.wait_for_clients(1).await;
    let marker = app
        .publish(json!({"event": "marker", "payload": null}))
        .await;
    assert_eq!(marker["receivers"], 1, "only the watcher is registered");
    let before = watcher.until(marker["id"].as_str().unwrap()).await;
    assert!(before.is_empty(), "refusals sent nothing: {before:?}");
}

#[actix_web::test]
async fn unknown_paths_and_methods_answer_json() {
    let app = spawn_app().await;
    let response = app.get("/nope").await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["success"],
        false
    );
    let wrong = [
        ("DELETE", "/broadcast"),
        ("POST", "/events"),
        ("POST", "/healthz"),
        ("PUT", "/stats"),
        ("POST", "/readyz"),
    ];
    for (method, path) in wrong {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .http
            .request(method, app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["success"], false);
    }
    // Static paths serve GET and HEAD; anything else is refused in the same shape.
    for path in ["/", "/index.html"] {
        let response = app.http.post(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["success"], false);
    }
    assert_eq!(app.get("/index.html").await.status(), 200);
}

#[actix_web::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[actix_web::test]
async fn readyz_answers_200_while_serving() {
    let app = spawn_app().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
}

#[actix_web::test]
async fn stopping_ends_every_stream_cleanly() {
    let app = spawn_app().await;
    let mut a = app.subscribe("/events").await;
    let mut b = app.subscribe("/events?topic=x").await;
    app.stop().await;
    a.ended_cleanly().await;
    b.ended_cleanly().await;
}
