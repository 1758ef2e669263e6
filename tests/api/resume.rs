//! A client cut off before its first event loses nothing (SPEC §3): the first bytes of
//! a stream opened without a position carry the newest id, so the reconnect resumes
//! from where the client connected.

use futures_util::StreamExt;
use serde_json::json;

use crate::browser::Browser;
use crate::helpers::{PATIENCE, spawn_app_with};
use crate::proxy::Proxy;

#[actix_web::test]
async fn a_client_cut_off_before_its_first_event_resumes_from_where_it_connected() {
    let app = spawn_app_with(|c| c.sse.retry_ms = 1234).await;
    let before = app.publish(json!({"data": "before"})).await;
    let before = before["id"].as_str().unwrap().to_owned();

    // The first bytes, read raw: the retry, then the newest id alone in a block, which
    // dispatches no event (eventsource-stream 0.2, like npm eventsource 4, does not
    // expose the id of a block without data, hence the raw read).
    let response = app.http.get(app.url("/events")).send().await.unwrap();
    let mut body = response.bytes_stream();
    let expected = format!("retry: 1234\n\nid: {before}\n\n");
    let mut first = Vec::new();
    while first.len() < expected.len() {
        let chunk = tokio::time::timeout(PATIENCE, body.next())
            .await
            .expect("the first bytes within PATIENCE")
            .expect("the stream is open")
            .expect("the stream is not broken");
        first.extend_from_slice(&chunk);
    }
    assert_eq!(String::from_utf8_lossy(&first), expected);

    // Cut off before any event: what is published meanwhile comes with the resume.
    drop(body);
    app.wait_for_clients(0).await;
    let mut ids = Vec::new();
    for data in ["missed 1", "missed 2"] {
        let reply = app.publish(json!({"data": data})).await;
        ids.push(reply["id"].as_str().unwrap().to_owned());
    }
    let mut resumed = app.resume("/events", &before).await;
    let marker = app.publish(json!({"data": "marker"})).await;
    let got = resumed.until(marker["id"].as_str().unwrap()).await;
    let got: Vec<(String, String)> = got.into_iter().map(|e| (e.id, e.data)).collect();
    assert_eq!(
        got,
        [
            (ids[0].clone(), "missed 1".to_owned()),
            (ids[1].clone(), "missed 2".to_owned())
        ]
    );
}

#[actix_web::test]
async fn a_browser_cut_off_before_its_first_event_gets_what_it_missed_on_reconnect() {
    let app = spawn_app_with(|c| c.sse.retry_ms = 200).await;
    app.publish(json!({"event": "note", "data": "before the page"}))
        .await;
    let proxy = Proxy::start(app.port).await;
    let Some(page) = Browser::open_url(&proxy.url("/")).await else {
        return;
    };
    page.wait_for_text("#state", "open").await;
    app.wait_for_clients(1).await;

    // The network goes; while the browser cannot reach the server, events are
    // published. The browser never saw an event, only the id in the first bytes.
    proxy.cut_and_hold();
    app.wait_for_clients(0).await;
    let mut ids = Vec::new();
    for data in ["missed 1", "missed 2"] {
        let reply = app.publish(json!({"event": "note", "data": data})).await;
        ids.push(reply["id"].as_str().unwrap().to_owned());
    }
    proxy.release();

    // EventSource reconnects with Last-Event-ID: the events it missed are replayed,
    // then a marker shows that nothing else came.
    let marker = app
        .publish(json!({"event": "note", "data": "marker"}))
        .await;
    let script = "return [...document.querySelectorAll('#events li')].map(li => \
                  [li.dataset.id, li.querySelector('.data').textContent])";
    let listed = page
        .poll("the marker listed", script, |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|e| e[1] == "marker"))
        })
        .await;
    // Newest first: exactly the missed events before the marker, nothing from
    // before the page.
    assert_eq!(
        listed,
        json!([
            [marker["id"], "marker"],
            [ids[1], "missed 2"],
            [ids[0], "missed 1"]
        ])
    );
    page.close().await;
}
