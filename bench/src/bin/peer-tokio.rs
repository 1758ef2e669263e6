//! `peer-tokio`: the floor of an SSE broadcaster on this machine, with no HTTP framework.
//!
//! A hand-rolled HTTP/1.1 on tokio's `TcpListener`: `GET /events` answers at once and
//! stays open, `POST /broadcast` (keep-alive) fans the event out and answers. One
//! bounded queue per subscriber; each subscriber's task writes everything queued at a
//! wake-up in one write; a subscriber whose queue is full is dropped and its connection
//! closed at once. See `peer.rs` for what it shares with `peer-actix`.
//!
//!   peer-tokio --bind 127.0.0.1:3990 [--workers N]

#[path = "../peer.rs"]
mod peer;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};

use peer::{BACKLOG, Hub, MAX_BODY, PREAMBLE, PeerArgs, QUEUE, Queue, refusal_json};

/// The longest request head read; the generator's are ~150 bytes.
const MAX_HEAD: usize = 8 * 1024;

/// Frames taken from a queue per wake-up, at most: one write of up to this many.
const BATCH: usize = 64;

/// After an accept error (e.g. out of descriptors), wait this long before the next.
const ACCEPT_PAUSE: Duration = Duration::from_millis(10);

/// Response head of an event stream, as ssehub's (chunked; the connection ends with it).
const STREAM_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
cache-control: no-cache\r\nx-accel-buffering: no\r\ntransfer-encoding: chunked\r\n\
connection: close\r\n\r\n";

/// A subscriber as the hub holds it.
struct Client {
    tx: mpsc::Sender<Bytes>,
    /// Dropped with the entry: tells the subscriber's task, even while it waits on a
    /// write that a stalled client never lets finish, to close the connection.
    _gone: oneshot::Sender<()>,
}

impl Queue for Client {
    fn offer(&self, frame: &Bytes) -> bool {
        self.tx.offer(frame)
    }
}

type SharedHub = Arc<Hub<Client>>;

fn main() -> io::Result<()> {
    let args = PeerArgs::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers())
        .enable_all()
        .build()?;
    let hub: SharedHub = Arc::new(Hub::new());
    let served = runtime.block_on(async {
        let listener = listen(args.bind)?;
        tokio::select! {
            () = accept_loop(listener, hub.clone()) => {}
            () = peer::shutdown_signal() => {}
        }
        io::Result::Ok(())
    });
    hub.clear();
    runtime.shutdown_timeout(Duration::from_secs(1));
    served
}

/// A listener with address reuse and [`BACKLOG`] (tokio's `bind` uses 1024).
fn listen(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

async fn accept_loop(listener: TcpListener, hub: SharedHub) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, hub.clone()));
            }
            Err(e) => {
                eprintln!("peer-tokio: accept: {e}");
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

/// What a request head says, as far as this peer cares.
struct Request {
    subscribe: bool,
    publish: bool,
    content_length: usize,
    close: bool,
}

/// Serves one connection: requests until it closes, or its one event stream.
async fn serve(mut stream: TcpStream, hub: SharedHub) {
    let mut buf = Vec::with_capacity(1024);
    // Bounded: each pass handles one request; the client decides how many it sends.
    loop {
        let Some((request, head_len)) = read_head(&mut stream, &mut buf).await else {
            return;
        };
        if request.subscribe {
            drop(buf);
            return subscribe(stream, hub).await;
        }
        if !request.publish {
            let _ = stream
                .write_all(&answer(404, r#"{"success":false}"#, true))
                .await;
            return;
        }
        if request.content_length > MAX_BODY {
            let _ = stream
                .write_all(&answer(413, &refusal_json("body too large"), true))
                .await;
            return;
        }
        let end = head_len + request.content_length;
        // Bounded by MAX_BODY.
        while buf.len() < end {
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let reply = match hub.publish(&buf[head_len..end]) {
            Ok(published) => answer(200, &published.json(), request.close),
            Err(reason) => answer(400, &refusal_json(reason), request.close),
        };
        if stream.write_all(&reply).await.is_err() || request.close {
            return;
        }
        buf.drain(..end);
    }
}

/// Reads until `buf` holds a whole request head; parses it. `None`: the client went
/// away, or sent something this peer does not serve (it is answered `400` first).
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(Request, usize)> {
    // Bounded by MAX_HEAD.
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let parsed = parse_head(&buf[..end]);
            if parsed.is_none() {
                let _ = stream
                    .write_all(&answer(400, &refusal_json("bad request"), true))
                    .await;
            }
            return parsed.map(|r| (r, end + 4));
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// The request line and the headers that matter; chunked request bodies are refused.
fn parse_head(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let mut request = Request {
        subscribe: method == "GET" && path == "/events",
        publish: method == "POST" && path == "/broadcast",
        content_length: 0,
        close: version == "HTTP/1.0",
    };
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            request.content_length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return None;
        } else if name.eq_ignore_ascii_case("connection") {
            request.close = value.eq_ignore_ascii_case("close");
        }
    }
    Some(request)
}

/// A whole JSON response.
fn answer(status: u16, json: &str, close: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Payload Too Large",
    };
    let connection = if close { "connection: close\r\n" } else { "" };
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n{connection}\r\n{json}",
        json.len()
    )
    .into_bytes()
}

/// Appends `data` as one chunk of a chunked body.
fn put_chunk(out: &mut Vec<u8>, data: &[u8]) {
    use std::io::Write;
    let _ = write!(out, "{:X}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Removes the subscriber from the hub however its task ends.
struct Registered {
    hub: SharedHub,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.hub.remove(self.id);
    }
}

/// The event stream: registered first, so a client that has its response head gets
/// every event published after; then the head and the preamble in one write; then,
/// per wake-up, everything queued in one write.
async fn subscribe(mut stream: TcpStream, hub: SharedHub) {
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let (gone_tx, mut gone) = oneshot::channel();
    let id = hub.insert(Client { tx, _gone: gone_tx });
    let _registered = Registered { hub, id };
    let mut out = STREAM_HEAD.to_vec();
    put_chunk(&mut out, PREAMBLE);
    if stream.write_all(&out).await.is_err() {
        return;
    }
    let (mut rd, mut wr) = stream.split();
    let mut batch = Vec::new();
    // A client sends nothing after its request: a read returns only at EOF or reset.
    let mut ignored = [0u8; 16];
    // Ends when the client goes, a write fails, or the hub drops the subscriber.
    loop {
        tokio::select! {
            biased;
            _ = &mut gone => return,
            read = rd.read(&mut ignored) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return;
                }
            }
            taken = rx.recv_many(&mut batch, BATCH) => {
                if taken == 0 {
                    return;
                }
                out.clear();
                for frame in batch.drain(..) {
                    put_chunk(&mut out, &frame);
                }
                tokio::select! {
                    biased;
                    _ = &mut gone => return,
                    written = wr.write_all(&out) => if written.is_err() { return },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads() {
        let r = parse_head(b"GET /events?topic=bench HTTP/1.1\r\nHost: x").unwrap();
        assert!(r.subscribe && !r.publish && !r.close);
        let r = parse_head(b"POST /broadcast HTTP/1.1\r\nContent-Length: 12\r\nConnection: close")
            .unwrap();
        assert!(r.publish && r.close && r.content_length == 12);
        assert!(parse_head(b"POST /broadcast HTTP/1.1\r\nTransfer-Encoding: chunked").is_none());
        assert!(!parse_head(b"GET /other HTTP/1.1").unwrap().subscribe);
    }

    #[test]
    fn chunks_are_hex_sized() {
        let mut out = Vec::new();
        put_chunk(&mut out, PREAMBLE);
        assert_eq!(out, b"D\r\nretry: 3000\n\n\r\n");
    }
}
