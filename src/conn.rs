//! Each accepted connection, as the hub may act on it from its own thread.
//!
//! Ending a response body does not disconnect a client that stopped reading: actix-http
//! polls the body only while its write buffer has room, so it would wait forever for
//! the socket to become writable, holding the client's queue and megabytes of kernel
//! buffer (PERF-NOTES). So every connection is accepted as a [`ConnIo`]: the socket,
//! plus a [`ConnHandle`] the hub keeps for the client. Tripping the handle wakes the
//! connection's own task, and every read, write and flush it tries from then on fails,
//! so actix-http ends the connection itself, whatever protocol runs on top (HTTP/1,
//! and TLS or HTTP/2 over the same I/O): nothing here knows a file-descriptor number,
//! and nothing acts on the socket from another thread.
//!
//! The same I/O type measures whether the client is reading: the time since a write
//! first found the socket full with nothing written since (see
//! [`ConnHandle::stalled_for`]), so a client that accepts nothing is dropped after
//! `stall_timeout_secs` even when its queue never fills.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::rt::net::{ActixStream, Ready, TcpStream};
use futures_util::task::AtomicWaker;
use socket2::{SockRef, Socket};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The kernel send buffer we ask for on each connection (Linux doubles it). Left to
/// autotuning it grows to `tcp_wmem`'s maximum (4 MiB here) even toward a client that
/// reads nothing, so a stalled client would cost megabytes of kernel memory and of
/// writing before its queue fills and it is dropped. 256 KiB still carries 2.5 MB/s to
/// a client 100 ms away, far more than an event stream needs.
const SEND_BUFFER_BYTES: usize = 128 * 1024;

/// Gives the listening socket the options every connection gets, before it listens:
/// the bounded send buffer and, as `TCP_USER_TIMEOUT`, the stall timeout (unacknowledged
/// data older than it makes the kernel abort the connection: a reader that stopped with
/// less than the send buffer waiting, which no write of ours would ever notice). Linux
/// gives each accepted connection a copy of its listener's options, so setting them
/// here rather than on each connection saves two system calls per connect (a test below
/// pins the inheritance).
pub fn prepare_listener(socket: &Socket, stall_timeout: Duration) -> io::Result<()> {
    socket.set_send_buffer_size(SEND_BUFFER_BYTES)?;
    socket.set_tcp_user_timeout(Some(stall_timeout))
}

/// Every open connection, so that the stop can close those still open once its grace
/// is over: idle keep-alive connections above all, which actix's graceful stop would
/// otherwise wait for until its timeout. Also where connections are accepted.
#[derive(Debug, Clone, Default)]
pub struct ConnSet(Arc<SetInner>);

#[derive(Debug, Default)]
struct SetInner {
    open: Mutex<OpenSet>,
}

#[derive(Debug, Default)]
struct OpenSet {
    next: u64,
    handles: HashMap<u64, Weak<Shared>>,
}

impl ConnSet {
    /// Takes over an accepted connection (its socket options come from the listener,
    /// see [`prepare_listener`]) and counts it among the open ones until dropped.
    pub fn accept(&self, stream: TcpStream) -> ConnIo {
        let handle = ConnHandle::default();
        let key = {
            let mut open = self.lock();
            let key = open.next;
            open.next += 1;
            open.handles.insert(key, Arc::downgrade(&handle.0));
            key
        };
        ConnIo {
            stream,
            handle,
            reset: AtomicBool::new(false),
            set: (self.clone(), key),
        }
    }

    /// Closes every connection still open.
    pub fn trip_all(&self) {
        let open: Vec<Weak<Shared>> = self.lock().handles.values().cloned().collect();
        for shared in open.iter().filter_map(Weak::upgrade) {
            ConnHandle(shared).trip();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OpenSet> {
        // unwrap: nothing panics while holding it.
        self.0.open.lock().unwrap()
    }
}

/// What the hub holds for a client's connection: cheap to clone, and safe to use after
/// the connection has gone (tripping it then does nothing). `default()` makes a handle
/// no connection watches, for clients without a socket (benchmarks, unit tests).
#[derive(Debug, Clone, Default)]
pub struct ConnHandle(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    tripped: AtomicBool,
    /// The connection's task, as last seen waiting on the socket.
    waker: AtomicWaker,
    /// Milliseconds on [`clock`] (plus one, so 0 means "not blocked") since a write
    /// first found the socket full, reset by any write that makes progress.
    blocked_since: AtomicU64,
    /// Set when the kernel aborted the connection for its `TCP_USER_TIMEOUT`.
    timed_out: AtomicBool,
}

impl ConnHandle {
    /// Closes the connection: its task is woken and its next read or write fails. The
    /// connection resets rather than closes, so the kernel frees what it still holds
    /// for a client that never read it.
    pub fn trip(&self) {
        self.0.tripped.store(true, Ordering::SeqCst);
        self.0.waker.wake();
    }

    /// How long the connection has had bytes to write that the socket would not take,
    /// with nothing written since; `None` while it is keeping up.
    pub fn stalled_for(&self, now: Instant) -> Option<Duration> {
        match self.0.blocked_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(millis(now).saturating_sub(since - 1))),
        }
    }

    /// Whether the kernel aborted the connection because the client acknowledged
    /// nothing for the stall timeout (a stalled client the kernel dropped for us).
    pub fn timed_out(&self) -> bool {
        self.0.timed_out.load(Ordering::Relaxed)
    }

    fn tripped(&self) -> bool {
        self.0.tripped.load(Ordering::SeqCst)
    }
}

/// An accepted TCP connection with its [`ConnHandle`]; actix-http (and, with TLS,
/// rustls) does its I/O through this.
pub struct ConnIo {
    stream: TcpStream,
    handle: ConnHandle,
    /// Set once the trip has been acted on (the socket set to reset on close). Atomic
    /// only so that the readiness polls, which take `&self`, can set it too: the
    /// connection's own task is its only user.
    reset: AtomicBool,
    /// Where it is counted among the open connections, and its key there.
    set: (ConnSet, u64),
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        let (set, key) = &self.set;
        set.lock().handles.remove(key);
    }
}

impl ConnIo {
    pub fn handle(&self) -> &ConnHandle {
        &self.handle
    }

    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.stream.peer_addr().ok()
    }

    /// The error every operation answers once the handle is tripped. The first time,
    /// the socket is set to reset on close (`SO_LINGER` 0), on this connection's own
    /// thread, while this value still owns it.
    fn closed(&self) -> io::Error {
        if !self.reset.swap(true, Ordering::Relaxed) {
            let socket = SockRef::from(&self.stream);
            // Errors mean the peer is gone already, which is the goal.
            let _ = socket.set_linger(Some(Duration::ZERO));
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        io::Error::new(io::ErrorKind::ConnectionAborted, "closed by the hub")
    }

    /// Runs one operation on the socket unless the handle is tripped. When the socket
    /// is not ready, remembers the task for [`ConnHandle::trip`] to wake, then looks at
    /// the flag again, so a trip between the first look and the registration is seen.
    fn guarded<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if self.handle.tripped() {
            return Poll::Ready(Err(self.closed()));
        }
        match op(Pin::new(&mut self.stream), cx) {
            Poll::Pending => self.pending(cx),
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
                self.handle.0.timed_out.store(true, Ordering::Relaxed);
                Poll::Ready(Err(e))
            }
            ready => ready,
        }
    }

    /// [`guarded`](Self::guarded) for the readiness polls, which take `&self`.
    fn guarded_ready(
        &self,
        cx: &mut Context<'_>,
        op: impl FnOnce(&TcpStream, &mut Context<'_>) -> Poll<io::Result<Ready>>,
    ) -> Poll<io::Result<Ready>> {
        if self.handle.tripped() {
            return Poll::Ready(Err(self.closed()));
        }
        match op(&self.stream, cx) {
            Poll::Pending => self.pending(cx),
            ready => ready,
        }
    }

    /// The socket is not ready: the task waits for it or for a trip, whichever comes
    /// first.
    fn pending<T>(&self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        self.handle.0.waker.register(cx.waker());
        if self.handle.tripped() {
            Poll::Ready(Err(self.closed()))
        } else {
            Poll::Pending
        }
    }

    /// A guarded write that also keeps `blocked_since`: set when the socket first
    /// refuses bytes, cleared by any write that makes progress.
    fn guarded_write(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let result = self.guarded(cx, op);
        let blocked = &self.handle.0.blocked_since;
        match result {
            Poll::Pending if blocked.load(Ordering::Relaxed) == 0 => {
                blocked.store(millis(Instant::now()) + 1, Ordering::Relaxed);
            }
            Poll::Ready(Ok(n)) if n > 0 && blocked.load(Ordering::Relaxed) != 0 => {
                blocked.store(0, Ordering::Relaxed);
            }
            _ => {}
        }
        result
    }
}

/// Milliseconds since the first call: a clock whose readings fit an atomic.
fn millis(now: Instant) -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    now.saturating_duration_since(start).as_millis() as u64
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.guarded(cx, |stream, cx| stream.poll_read(cx, buf))
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.guarded_write(cx, |stream, cx| stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.guarded_write(cx, |stream, cx| stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guarded(cx, |stream, cx| stream.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guarded(cx, |stream, cx| stream.poll_shutdown(cx))
    }
}

/// What rustls's acceptor (actix-tls) asks of the I/O under it. Tripped, these fail
/// like every other operation; waiting, they are woken by a trip too. They do not
/// touch the stall clock, which only writes keep.
impl ActixStream for ConnIo {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        self.guarded_ready(cx, ActixStream::poll_read_ready)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        self.guarded_ready(cx, ActixStream::poll_write_ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connected pair: (the server side as actix would hold it, the client side).
    const STALL: Duration = Duration::from_secs(30);

    fn pair() -> (ConnIo, std::net::TcpStream) {
        let socket = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        prepare_listener(&socket, STALL).unwrap();
        let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&addr.into()).unwrap();
        socket.listen(8).unwrap();
        let listener: std::net::TcpListener = socket.into();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let set = ConnSet::default();
        (set.accept(TcpStream::from_std(server).unwrap()), client)
    }

    /// Writes until the socket takes no more (the client reads nothing); answers how
    /// much it took.
    async fn fill(io: &mut ConnIo) -> usize {
        let chunk = vec![b'x'; 64 * 1024];
        let mut written = 0;
        loop {
            match tokio::time::timeout(Duration::from_millis(100), io.write(&chunk)).await {
                Ok(Ok(n)) => written += n,
                Ok(Err(e)) => panic!("{e}"),
                Err(_) => return written,
            }
        }
    }

    #[actix_web::test]
    async fn tripping_wakes_a_task_waiting_to_read() {
        /// A waker that records being woken.
        struct Flag(AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let (mut io, _client) = pair();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = std::task::Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0u8; 16];
        let mut read = || Pin::new(&mut io).poll_read(&mut cx, &mut ReadBuf::new(&mut buf));
        // Nothing to read: the read waits.
        assert!(read().is_pending());
        assert!(!flag.0.load(Ordering::SeqCst));
        io.handle().trip();
        assert!(
            flag.0.load(Ordering::SeqCst),
            "the trip woke the waiting task"
        );
        let again = Pin::new(&mut io).poll_read(&mut cx, &mut ReadBuf::new(&mut buf));
        assert!(
            matches!(again, Poll::Ready(Err(ref e)) if e.kind() == io::ErrorKind::ConnectionAborted),
            "{again:?}"
        );
    }

    #[actix_web::test]
    async fn a_stuck_writer_is_woken_and_its_connection_reset_dropping_what_was_unsent() {
        let (mut io, mut client) = pair();
        let handle = io.handle().clone();
        fill(&mut io).await;
        let writer = actix_web::rt::spawn(async move {
            let result = io.write_all(b"never sent").await.map_err(|e| e.kind());
            (result, io)
        });
        tokio::task::yield_now().await;
        handle.trip();
        let (result, io) = tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("the trip woke the writer")
            .unwrap();
        assert_eq!(result, Err(io::ErrorKind::ConnectionAborted));
        drop(io);
        // The client, reading at last, gets a reset: the kernel discarded what it held.
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let end = loop {
            match client.read(&mut buf) {
                Ok(0) => break Ok(0),
                Ok(_) => continue,
                Err(e) => break Err(e.kind()),
            }
        };
        assert_eq!(end, Err(io::ErrorKind::ConnectionReset));
    }

    #[actix_web::test]
    async fn tripping_wakes_a_task_waiting_for_readiness_as_tls_does() {
        let (io, _client) = pair();
        let handle = io.handle().clone();
        let waiter = actix_web::rt::spawn(async move {
            // Nothing to read: rustls's acceptor would wait here for the handshake.
            let ready = std::future::poll_fn(|cx| io.poll_read_ready(cx)).await;
            (ready.map(|_| ()).map_err(|e| e.kind()), io)
        });
        tokio::task::yield_now().await;
        handle.trip();
        let (ready, io) = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the trip woke the waiting task")
            .unwrap();
        assert_eq!(ready, Err(io::ErrorKind::ConnectionAborted));
        // A socket that is writable fails too, once tripped.
        let write = std::future::poll_fn(|cx| io.poll_write_ready(cx)).await;
        assert_eq!(
            write.map(|_| ()).map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionAborted)
        );
    }

    #[actix_web::test]
    async fn every_operation_fails_once_tripped_and_a_handle_outlives_its_connection() {
        let (mut io, _client) = pair();
        let handle = io.handle().clone();
        io.write_all(b"fine").await.unwrap();
        handle.trip();
        assert!(io.write_all(b"x").await.is_err());
        assert!(io.flush().await.is_err());
        assert!(io.read(&mut [0u8; 4]).await.is_err());
        drop(io);
        handle.trip();
    }

    #[actix_web::test]
    async fn a_connection_whose_socket_takes_nothing_is_stalled_until_a_write_progresses() {
        let (mut io, mut client) = pair();
        let handle = io.handle().clone();
        assert_eq!(handle.stalled_for(Instant::now()), None);
        let written = fill(&mut io).await;
        let later = Instant::now() + Duration::from_secs(3);
        let stalled = handle.stalled_for(later).expect("a write is waiting");
        assert!(stalled >= Duration::from_secs(3), "{stalled:?}");

        // The client reads everything: the next write makes progress.
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; written];
            client.read_exact(&mut buf).unwrap();
            client
        });
        io.write_all(b"more").await.unwrap();
        assert_eq!(handle.stalled_for(Instant::now()), None);
        drop(reader.join().unwrap());
    }

    #[test]
    fn accepted_connections_inherit_the_listeners_send_buffer_and_stall_timeout() {
        actix_web::rt::System::new().block_on(async {
            let (io, _client) = pair();
            let socket = SockRef::from(&io.stream);
            // Linux doubles what was asked for; autotuning would allow up to 4 MiB.
            assert_eq!(socket.send_buffer_size().unwrap(), 2 * SEND_BUFFER_BYTES);
            assert_eq!(socket.tcp_user_timeout().unwrap(), Some(STALL));
        });
    }
}
