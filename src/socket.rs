//! Closing the socket of a client the hub dropped as slow.
//!
//! Ending a response body does not disconnect a client that stopped reading:
//! actix-http polls the body only while its write buffer has room, so it would wait
//! forever for the socket to become writable, holding the queue and megabytes of
//! kernel buffer (PERF-NOTES). So each `GET /events` also spawns a small task on its
//! worker that, if the hub says the client was too slow, shuts the socket down with
//! `SO_LINGER 0`: the dispatcher's next write fails, it drops the connection, and the
//! kernel discards the unsent data with a reset.
//!
//! The socket is known by its file descriptor number, which is safe to act on only
//! while the connection that owns it is open. The task runs on the same thread as the
//! connection, and the connection drops the response body before it closes its socket
//! (actix-http's dispatcher declares its body state before its I/O), so "the body is
//! still alive, seen from this thread" means "the descriptor is still this socket".

use std::any::Any;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::rc::{Rc, Weak};
use std::time::Duration;

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use socket2::SockRef;
use tokio::sync::oneshot;

/// The connection's descriptor, recorded when the connection is accepted.
#[derive(Debug, Clone, Copy)]
pub struct ConnSocket(RawFd);

/// The kernel send buffer we ask for on each connection (Linux doubles it). Left to
/// autotuning it grows to `tcp_wmem`'s maximum (4 MiB here) even toward a client that
/// reads nothing, so a stalled client would cost megabytes of kernel memory and of
/// writing before its queue fills and it is dropped. 256 KiB still carries 2.5 MB/s to a
/// client 100 ms away, far more than an event stream needs.
const SEND_BUFFER_BYTES: usize = 128 * 1024;

/// Given to `HttpServer::on_connect`: records the descriptor and bounds the send buffer.
pub fn record(connection: &dyn Any, data: &mut Extensions) {
    if let Some(stream) = connection.downcast_ref::<TcpStream>() {
        // An error leaves the kernel's default, which is only less frugal.
        let _ = SockRef::from(stream).set_send_buffer_size(SEND_BUFFER_BYTES);
        data.insert(ConnSocket(stream.as_raw_fd()));
    }
}

/// Held by the hub for each client; `close` resets the client's connection.
#[derive(Debug)]
pub struct SocketCloser(oneshot::Sender<()>);

impl SocketCloser {
    pub fn close(self) {
        // An error means the connection has already gone: nothing to close.
        let _ = self.0.send(());
    }
}

/// The token a response body holds: while it lives, the descriptor is valid.
pub type BodyAlive = Rc<()>;

/// Spawns, on the current worker, the task that closes `socket` when the hub asks,
/// if the body behind `alive` still exists then. Dropping the closer unasked (the
/// client left, or the server is shutting down cleanly) ends the task.
pub fn watch(socket: ConnSocket, alive: &BodyAlive) -> SocketCloser {
    let (tx, rx) = oneshot::channel();
    let alive: Weak<()> = Rc::downgrade(alive);
    actix_web::rt::spawn(async move {
        if rx.await.is_ok() && alive.upgrade().is_some() {
            reset(socket.0);
        }
    });
    SocketCloser(tx)
}

fn reset(fd: RawFd) {
    // SAFETY: called only while the response body lives on this thread, and the
    // connection closes its socket only after dropping that body (see module doc).
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let socket = SockRef::from(&fd);
    // Errors here mean the peer is gone already, which is the goal.
    let _ = socket.set_linger(Some(Duration::ZERO));
    let _ = socket.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A connected pair: (the server side as actix would hold it, the client side).
    async fn pair() -> (TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (TcpStream::from_std(server).unwrap(), client)
    }

    fn socket_of(stream: &TcpStream) -> ConnSocket {
        let mut data = Extensions::new();
        record(stream, &mut data);
        *data
            .get::<ConnSocket>()
            .expect("a plain TCP connection is recorded")
    }

    /// Lets the spawned closer task run.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[actix_web::test]
    async fn closing_resets_the_connection_while_its_body_lives() {
        let (server, mut client) = pair().await;
        let alive = BodyAlive::default();
        watch(socket_of(&server), &alive).close();
        settle().await;
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 16];
        let read = client.read(&mut buf);
        let ended = match &read {
            Ok(n) => *n == 0,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(ended, "the connection was not ended: {read:?}");
        drop((server, alive));
    }

    #[actix_web::test]
    async fn a_closer_whose_body_is_gone_touches_nothing() {
        // The body is dropped first, as actix-http drops a connection's body before its
        // socket: the descriptor may already belong to another connection.
        let (server, mut client) = pair().await;
        let alive = BodyAlive::default();
        let closer = watch(socket_of(&server), &alive);
        drop(alive);
        closer.close();
        settle().await;
        client.write_all(b"still here").unwrap();
        let mut server = server.into_std().unwrap();
        server.set_nonblocking(false).unwrap();
        let mut buf = [0u8; 10];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"still here");
    }

    #[test]
    fn connections_ask_for_a_bounded_send_buffer() {
        actix_web::rt::System::new().block_on(async {
            let (server, _client) = pair().await;
            socket_of(&server);
            let size = SockRef::from(&server).send_buffer_size().unwrap();
            // Linux doubles what was asked for; autotuning would allow up to 4 MiB.
            assert!(size <= 2 * SEND_BUFFER_BYTES, "{size}");
        });
    }
}
