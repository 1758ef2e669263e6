//! A subscriber that stops reading is dropped, its connection really closed, while
//! everyone else keeps receiving everything.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{End, PATIENCE, spawn_app_with};

/// Large enough that a few dozen events overflow the kernel's socket buffers
/// (~2.7 MB on loopback) and then the client's queue.
const EVENT_BYTES: usize = 64 * 1024;
const EVENTS: usize = 200;

#[actix_web::test]
async fn a_stalled_subscriber_is_dropped_and_disconnected_while_others_get_everything() {
    let app = spawn_app_with(|c| c.sse.client_buffer = 8).await;
    let mut healthy = app.subscribe("/events").await;

    // Subscribes over a raw socket, then never reads again.
    let mut stalled = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    stalled
        .write_all(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    app.wait_for_clients(2).await;

    let payload = "x".repeat(EVENT_BYTES);
    let mut ids = Vec::new();
    for i in 0..EVENTS {
        let reply = app
            .publish(json!({"event": "big", "data": format!("{i} {payload}")}))
            .await;
        ids.push(reply["id"].as_str().unwrap().to_owned());
        // Waiting for the healthy subscriber keeps it from ever falling behind, so
        // only the stalled one can be dropped.
        let event = healthy.next().await;
        assert_eq!(event.id, ids[i]);
        assert!(event.data.starts_with(&format!("{i} ")));
    }

    // Both in one answer: the counters are read one by one.
    let stats = app
        .wait_for_stats("the stalled client dropped, the healthy one left", |s| {
            s["dropped_slow"] == 1 && s["clients"] == 1
        })
        .await;
    assert_eq!(stats["published"], EVENTS);

    // The server closed the stalled connection itself, while the client still reads
    // nothing: the kernel no longer lists the server's side of it.
    let client_port = stalled.local_addr().unwrap().port();
    server_side_closes(app.port, client_port).await;
    // And the client sees the end too (a reset, or EOF after what was buffered).
    let mut buf = vec![0u8; 1 << 16];
    let ended = tokio::time::timeout(PATIENCE, async {
        while stalled.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stalled client never saw its connection end"
    );

    // And the healthy subscriber still receives what comes next.
    app.healthy_gets_what_comes_next(&mut healthy).await;
}

/// Waits until the kernel no longer holds the server's side of the connection from
/// `client_port`; fails the test after `PATIENCE`.
pub(crate) async fn server_side_closes(server_port: u16, client_port: u16) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while server_side_open(server_port, client_port) {
        assert!(
            std::time::Instant::now() < deadline,
            "the connection from port {client_port} stayed open on the server's side"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the kernel holds a TCP socket from `server_port` to `client_port` on
/// loopback (the server's side of one connection), from `/proc/net/tcp`.
fn server_side_open(server_port: u16, client_port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("Linux /proc/net/tcp");
    let port =
        |address: &str| u16::from_str_radix(address.rsplit(':').next().unwrap(), 16).unwrap();
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        port(fields[1]) == server_port && port(fields[2]) == client_port
    })
}

#[actix_web::test]
async fn a_dropped_subscriber_that_resumes_with_its_last_id_loses_nothing() {
    let app = spawn_app_with(|c| {
        c.sse.client_buffer = 8;
        c.sse.history_size = EVENTS;
    })
    .await;
    // A real parser over a connection we stop polling: its socket stops being read.
    let mut lagging = app.subscribe("/events?topic=big").await;
    app.wait_for_clients(1).await;
    let payload = "x".repeat(EVENT_BYTES);
    let mut ids = Vec::new();
    for i in 0..EVENTS {
        let body = json!({"topic": "big", "data": format!("{i} {payload}")});
        ids.push(app.publish(body).await["id"].as_str().unwrap().to_owned());
    }
    app.wait_for_stats("the lagging client dropped", |s| s["dropped_slow"] == 1)
        .await;

    // It reads what reached it, sees its stream end, and resumes like a browser.
    let mut got = Vec::new();
    let end = loop {
        match lagging.next_or_end().await {
            Ok(event) => got.push(event.id),
            // The hub cut it mid-stream: the client may see the response finish or the
            // connection reset (`End::Clean` or `End::Broken`), and either will do.
            Err(end @ (End::Clean | End::Broken(_))) => break end,
        }
    };
    assert!(
        got.len() < EVENTS,
        "it was dropped before the end ({end:?} after {} events)",
        got.len()
    );
    let last = got.last().cloned().unwrap_or_else(|| "earliest".into());
    let mut resumed = app.resume("/events?topic=big", &last).await;
    let marker = app.publish(json!({"topic": "big", "data": "marker"})).await;
    for event in resumed.until(marker["id"].as_str().unwrap()).await {
        got.push(event.id);
    }
    assert_eq!(got, ids, "every event exactly once, in order");
}
