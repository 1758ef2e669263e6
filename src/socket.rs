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
