//! Memory is bounded in bytes (SPEC §1, §6, §11): the history by the size of its
//! frames, and a client that takes no bytes by the stall timeout.

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{TestApp, spawn_app_with};
use crate::slow::server_side_closes;

/// An event whose frame is exactly `FRAME_BYTES` long: `id: <20>\n`, `data: <2000>\n`,
/// and the blank line.
const FRAME_BYTES: usize = 25 + 2007 + 1;

/// A raw subscriber with a tiny receive buffer that asks for the whole history and then
/// never reads; answers its socket once the hub has registered it.
async fn replay_to_a_client_that_reads_nothing(app: &TestApp) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket
        .connect(([127, 0, 0, 1], app.port).into())
        .await
        .unwrap();
    stalled
        .write_all(b"GET /events?lastEventId=earliest HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    app.wait_for_clients(1).await;
    stalled
}

#[actix_web::test]
async fn history_keeps_only_what_fits_in_history_max_bytes() {
    let app = spawn_app_with(|c| {
        c.sse.history_size = 1000;
        c.sse.history_max_bytes = 4 * FRAME_BYTES + 100;
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let data = format!("{i}{}", "x".repeat(1999));
        let reply = app.publish(json!({"data": data})).await;
        ids.push(reply["id"].as_str().unwrap().to_owned());
    }
    app.wait_for_stats("four events in history", |s| s["history"] == 4)
        .await;

    // The whole history is the four newest, in order; the older ones are gone.
    let mut replay = app.subscribe("/events?lastEventId=earliest").await;
    let marker = app.publish(json!({"data": "marker"})).await;
    let got: Vec<String> = replay
        .until(marker["id"].as_str().unwrap())
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(got, ids[6..]);
    let mut gap = app.resume("/events", &ids[5]).await;
    assert_eq!(gap.next().await.event, "hub.gap", "evicted for its bytes");
}

#[actix_web::test]
async fn a_client_that_takes_no_bytes_is_dropped_after_the_stall_timeout_though_its_queue_never_fills()
 {
    let app = spawn_app_with(|c| {
        c.sse.stall_timeout_secs = 1;
        c.sse.history_size = 100;
    })
    .await;
    // 6 MB of history: far more than the sockets between us hold.
    let payload = "x".repeat(64 * 1024);
    for i in 0..100 {
        app.publish(json!({"data": format!("{i} {payload}")})).await;
    }

    // A client asks for all of it and reads nothing; nothing is published from now on,
    // so its queue stays empty: only the stall timeout can drop it.
    let stalled = replay_to_a_client_that_reads_nothing(&app).await;

    let stats = app
        .wait_for_stats("the stalled client dropped", |s| s["dropped_stalled"] == 1)
        .await;
    assert_eq!(stats["dropped_slow"], 0, "its queue never filled");
    app.wait_for_clients(0).await;
    // Its connection is gone from the server's side while the client still reads
    // nothing: what the kernel held for it is freed.
    let client_port = stalled.local_addr().unwrap().port();
    server_side_closes(app.port, client_port).await;
}

#[actix_web::test]
async fn a_client_that_stops_reading_with_less_than_a_socket_buffer_waiting_is_dropped_too() {
    let app = spawn_app_with(|c| {
        c.sse.stall_timeout_secs = 1;
        c.sse.history_size = 100;
    })
    .await;
    // 100 KB of history: less than the server's socket send buffer, so no write of the
    // server ever waits, and only the kernel sees that nothing is acknowledged.
    let payload = "x".repeat(1024);
    for i in 0..100 {
        app.publish(json!({"data": format!("{i} {payload}")})).await;
    }
    let stalled = replay_to_a_client_that_reads_nothing(&app).await;
    let stats = app
        .wait_for_stats("the stalled client dropped", |s| {
            s["dropped_stalled"] == 1 && s["clients"] == 0
        })
        .await;
    assert_eq!(stats["dropped_slow"], 0);
    let client_port = stalled.local_addr().unwrap().port();
    server_side_closes(app.port, client_port).await;
}
