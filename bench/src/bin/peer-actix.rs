//! `peer-actix`: the plainest idiomatic SSE broadcaster on actix-web, the floor of the
//! framework ssehub is built on (memory per idle connection, connect cost).
//!
//! `GET /events` streams from a bounded tokio mpsc receiver per client; `POST
//! /broadcast` offers the encoded `Bytes` to every client (`try_send`, a full queue
//! drops the client) under one `Mutex`. As in any plain actix-web streaming endpoint,
//! dropping a client ends its body stream, but a client that stopped reading keeps its
//! connection until it reads again (PERF-NOTES; ssehub closes those itself). See
//! `peer.rs` for what it shares with `peer-tokio`.
//!
//!   peer-actix --bind 127.0.0.1:3990 [--workers N]

#[path = "../peer.rs"]
mod peer;

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::http::header::{CACHE_CONTROL, ContentType};
use actix_web::{App, HttpResponse, HttpServer, web};
use bytes::Bytes;
use clap::Parser;
use futures_core::Stream;
use tokio::sync::mpsc;

use peer::{BACKLOG, Hub, MAX_BODY, PREAMBLE, PeerArgs, QUEUE, refusal_json};

type SharedHub = Hub<mpsc::Sender<Bytes>>;

/// Seconds actix waits for open connections at shutdown, after the streams are ended.
const SHUTDOWN_TIMEOUT_SECS: u64 = 1;

fn main() -> io::Result<()> {
    let args = PeerArgs::parse();
    let hub = web::Data::new(SharedHub::new());
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new({
            let hub = hub.clone();
            move || {
                App::new()
                    .app_data(hub.clone())
                    .app_data(web::PayloadConfig::new(MAX_BODY))
                    .route("/events", web::get().to(events))
                    .route("/broadcast", web::post().to(broadcast))
            }
        })
        .workers(args.workers())
        .backlog(BACKLOG)
        // A client that goes away must be noticed, or its descriptor stays (PERF-NOTES).
        .h1_allow_half_closed(false)
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .bind(args.bind)?
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(async move {
            peer::shutdown_signal().await;
            // SSE bodies never end by themselves: end them, then stop.
            hub.clear();
            handle.stop(true).await;
        });
        server.await
    })
}

/// `GET /events`: the preamble is queued first, so it is written at once.
async fn events(hub: web::Data<SharedHub>) -> HttpResponse {
    let (tx, rx) = mpsc::channel(QUEUE);
    // Cannot fail: the queue is new and has QUEUE > 0 free places.
    let _ = tx.try_send(Bytes::from_static(PREAMBLE));
    let id = hub.insert(tx);
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(ClientStream {
            rx,
            hub: hub.into_inner(),
            id,
        })
}

/// `POST /broadcast`: answered after the fan-out, which only queues.
async fn broadcast(hub: web::Data<SharedHub>, body: Bytes) -> HttpResponse {
    match hub.publish(&body) {
        Ok(published) => HttpResponse::Ok()
            .insert_header(ContentType::json())
            .body(published.json()),
        Err(reason) => HttpResponse::BadRequest()
            .insert_header(ContentType::json())
            .body(refusal_json(reason)),
    }
}

/// A client's response body: its queue, until the hub drops the sender. Dropped with
/// the connection, it takes the client out of the hub.
struct ClientStream {
    rx: mpsc::Receiver<Bytes>,
    hub: Arc<SharedHub>,
    id: u64,
}

impl Stream for ClientStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        self.hub.remove(self.id);
    }
}
