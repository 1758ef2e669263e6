//! Operations (SPEC §4, §8): `/metrics` against a known sequence, `/clients` and
//! `DELETE /clients/<id>`, and `X-Request-Id` on every answer.

use serde_json::{Value, json};

use crate::helpers::{End, TestApp, spawn_app, spawn_app_with};

async fn metrics(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain"), "{kind}");
    response.text().await.unwrap()
}

/// The value of the sample named exactly `name` (with its labels).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
        .parse()
        .unwrap()
}

#[actix_web::test]
async fn metrics_count_a_known_sequence_of_connects_publishes_refusals_and_drops() {
    let app = spawn_app().await;
    let mut a = app.subscribe("/events?topic=a").await;
    let _b = app.subscribe("/events?topic=b").await;
    app.wait_for_clients(2).await;

    app.publish(json!({"id": "one", "topic": "a", "data": "1"}))
        .await;
    app.publish(json!([{"topic": "a", "data": "2"}, {"data": "3"}]))
        .await;
    // Refusals: 400, 409, 415, 413.
    assert_eq!(app.try_publish(json!({"bogus": 1})).await.0, 400);
    assert_eq!(
        app.try_publish(json!({"id": "one", "data": "x"})).await.0,
        409
    );
    assert_eq!(app.post(Some("text/plain"), b"{}".to_vec()).await.0, 415);
    let huge = vec![b' '; 2 * 1024 * 1024];
    assert_eq!(app.post(Some("application/json"), huge).await.0, 413);
    // Every event reached a before it is disconnected by an admin.
    assert_eq!(a.next_data(3).await, ["1", "2", "3"]);
    let clients: Value = app.get("/clients").await.json().await.unwrap();
    let a_id = clients[1]["id"].as_str().unwrap().to_owned();
    let deleted = app
        .http
        .delete(app.url(&format!("/clients/{a_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    app.wait_for_clients(1).await;

    let text = metrics(&app).await;
    let expect = [
        ("ssehub_clients", 1.0),
        ("ssehub_events_published_total", 3.0),
        // "1" and "2" to a; "3" (global) to a and b.
        ("ssehub_deliveries_total", 4.0),
        ("ssehub_clients_dropped_total{reason=\"admin\"}", 1.0),
        ("ssehub_clients_dropped_total{reason=\"slow\"}", 0.0),
        ("ssehub_publish_rejected_total{status=\"400\"}", 1.0),
        ("ssehub_publish_rejected_total{status=\"409\"}", 1.0),
        ("ssehub_publish_rejected_total{status=\"413\"}", 1.0),
        ("ssehub_publish_rejected_total{status=\"415\"}", 1.0),
        ("ssehub_publish_rejected_total{status=\"503\"}", 0.0),
        ("ssehub_history_events", 3.0),
        // One observation per publish: the single event and the batch.
        ("ssehub_publish_fanout_seconds_count", 2.0),
    ];
    for (name, value) in expect {
        assert_eq!(sample(&text, name), value, "{name}");
    }
    assert!(text.contains("ssehub_build_info{version="), "{text}");
}

#[actix_web::test]
async fn clients_are_listed_newest_first_and_one_can_be_disconnected() {
    let app = spawn_app().await;
    let mut first = app.subscribe("/events?topic=stocks&topic=news.*").await;
    app.wait_for_clients(1).await;
    let _second = app.subscribe("/events").await;
    app.wait_for_clients(2).await;

    let listed: Value = app.get("/clients").await.json().await.unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["topics"], json!([]), "the newest first");
    assert_eq!(listed[1]["topics"], json!(["stocks", "news.*"]));
    for client in listed {
        assert!(uuid::Uuid::parse_str(client["id"].as_str().unwrap()).is_ok());
        assert!(client["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(client["connected_secs"].is_u64() && client["queued"].is_u64());
    }
    let one: Value = app.get("/clients?limit=1").await.json().await.unwrap();
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(app.get("/clients?limit=0").await.status(), 400);

    let id = listed[1]["id"].as_str().unwrap();
    let delete = |id: String| app.http.delete(app.url(&format!("/clients/{id}"))).send();
    assert_eq!(delete(id.to_owned()).await.unwrap().status(), 204);
    // Its stream ends, as a slow client's would, and it may come back.
    assert!(matches!(
        first.next_or_end().await,
        Err(End::Clean | End::Broken(_))
    ));
    app.wait_for_clients(1).await;
    let again = delete(id.to_owned()).await.unwrap();
    assert_eq!(again.status(), 404);
    let body: Value = again.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().starts_with("id: no client"),
        "{body}"
    );
    assert_eq!(delete("not-a-uuid".into()).await.unwrap().status(), 404);
    let _back = app.subscribe("/events?topic=stocks").await;
    app.wait_for_clients(2).await;
}

#[actix_web::test]
async fn the_clients_view_is_an_admin_endpoint() {
    let app = spawn_app_with(|c| c.auth.publish_token = "t0ken".into()).await;
    assert_eq!(app.get("/clients").await.status(), 401);
    let with = |path: &str| {
        app.http
            .get(app.url(path))
            .header("Authorization", "Bearer t0ken")
            .send()
    };
    assert_eq!(with("/clients").await.unwrap().status(), 200);
    let delete = app
        .http
        .delete(app.url(&format!("/clients/{}", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(
        delete.status(),
        401,
        "no token, no answer about who is connected"
    );
}

#[actix_web::test]
async fn every_answer_carries_a_request_id_the_callers_own_when_sane() {
    let app = spawn_app().await;
    let id_of = |response: &reqwest::Response| {
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let post = |body: &str, id: Option<&str>| {
        let mut request = app
            .http
            .post(app.url("/broadcast"))
            .header("Content-Type", "application/json")
            .body(body.to_owned());
        if let Some(id) = id {
            request = request.header("X-Request-Id", id);
        }
        request.send()
    };
    let ok = post(r#"{"data": "x"}"#, None).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(uuid::Uuid::parse_str(&id_of(&ok)).is_ok(), "a new uuid");
    let refused = post("{", Some("trace-42.a_b")).await.unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(id_of(&refused), "trace-42.a_b", "a sane id is echoed");
    let long = "x".repeat(129);
    let replaced = post("{", Some(&long)).await.unwrap();
    assert!(
        uuid::Uuid::parse_str(&id_of(&replaced)).is_ok(),
        "over 128: replaced"
    );
    let spaced = post("{", Some("a b")).await.unwrap();
    assert!(
        uuid::Uuid::parse_str(&id_of(&spaced)).is_ok(),
        "not [A-Za-z0-9._-]"
    );
    let missing = app.get("/nowhere").await;
    assert_eq!(missing.status(), 404);
    assert!(uuid::Uuid::parse_str(&id_of(&missing)).is_ok());
    let events = app.get("/events").await;
    assert!(
        uuid::Uuid::parse_str(&id_of(&events)).is_ok(),
        "streams too"
    );
}

#[actix_web::test]
async fn refusals_for_credentials_are_counted_by_status() {
    let app = spawn_app_with(|c| {
        c.auth.jwt_secret = "a-jwt-secret-of-at-least-32-bytes-for-tests".into();
    })
    .await;
    assert_eq!(app.try_publish(json!({"data": "x"})).await.0, 401);
    let token = ssehub::auth::mint(
        "a-jwt-secret-of-at-least-32-bytes-for-tests",
        std::time::Duration::from_secs(60),
        ssehub::auth::Claims {
            publish: vec!["stocks".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let refused = app
        .http
        .post(app.url("/broadcast"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(r#"{"topic": "weather", "data": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let text = metrics(&app).await;
    assert_eq!(
        sample(&text, "ssehub_publish_rejected_total{status=\"401\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "ssehub_publish_rejected_total{status=\"403\"}"),
        1.0
    );
    assert_eq!(sample(&text, "ssehub_events_published_total"), 0.0);
}
