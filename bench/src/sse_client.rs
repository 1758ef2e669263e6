//! SSE subscribers over raw HTTP/1.1 on tokio `TcpStream`s.
//!
//! Per connection the generator keeps only the socket, a few bytes of parser state and
//! (while a line spans two reads) a short line prefix: reads go into one buffer per
//! worker thread, and a whole read is parsed before the next await. Counters and
//! histograms are shared, and a histogram shard is locked once per read, not per event.

use std::cell::RefCell;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use crate::wire::{Dechunker, SseScanner, WireError, parse_head};

/// Client source addresses are 127.0.0.2 ..= 127.0.0.254: 253 addresses, each with its
/// own ephemeral port range, so tens of thousands of connections (and the TIME_WAITs
/// churn leaves behind) never run out of ports.
const SOURCE_ADDRS: usize = 253;

/// Latency histograms are sharded by connection so two worker threads rarely contend.
const LATENCY_SHARDS: usize = 16;

/// Largest latency recorded exactly (µs); anything slower is clamped to it.
const MAX_LATENCY_US: u64 = 600_000_000;

thread_local! {
    /// The read buffer of this worker thread, shared by all its connections: a read is
    /// parsed completely before the task awaits again, so no connection owns a buffer.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

/// A microsecond latency histogram, 3 significant figures, up to [`MAX_LATENCY_US`].
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Microseconds since the Unix epoch: the clock the payload's `t` is written in.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Connects from 127.0.0.(2 + idx mod 253) to `addr`.
pub async fn connect_from(addr: SocketAddrV4, idx: usize) -> io::Result<TcpStream> {
    connect_with(TcpSocket::new_v4()?, addr, idx).await
}

/// Connects `socket` (options already set) from 127.0.0.(2 + idx mod 253) to `addr`.
async fn connect_with(socket: TcpSocket, addr: SocketAddrV4, idx: usize) -> io::Result<TcpStream> {
    // Let connect() pick the port for the (source, destination) pair instead of bind()
    // reserving one per source address: far more connections fit per source address.
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a pointer to a c_int that outlives the call.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let source = Ipv4Addr::new(127, 0, 0, 2 + (idx % SOURCE_ADDRS) as u8);
    socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
    let stream = socket.connect(SocketAddr::V4(addr)).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Puts the socket in delayed-ACK ("pingpong") mode until its delayed-ACK timer next
/// fires. By default Linux ACKs at once when a read empties a buffer that held a small
/// pushed segment, i.e. once per event for a server that writes each event on its own;
/// on loopback that ACK and the server socket's processing of it both run on the
/// generator's thread, about half its CPU. A browser does not do this, hence opt-in.
fn delay_acks(stream: &TcpStream) {
    let zero: libc::c_int = 0;
    // SAFETY: a valid socket fd and a pointer to a c_int that outlives the call; a
    // failure only leaves the kernel's default ACK behaviour in place.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&raw const zero).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Where and how to subscribe.
#[derive(Debug)]
pub struct SubTarget {
    pub addr: SocketAddrV4,
    /// The complete `GET` request, built once and shared by every connection.
    pub request: Vec<u8>,
    /// Re-arm delayed ACKs after every read (see [`delay_acks`]).
    pub delayed_acks: bool,
}

impl SubTarget {
    pub fn new(addr: SocketAddrV4, host: &str, path: &str, delayed_acks: bool) -> Self {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        );
        SubTarget {
            addr,
            request: request.into_bytes(),
            delayed_acks,
        }
    }
}

/// The servers of a run's subscribers: subscriber `idx` goes to server `idx mod n`,
/// so each of n nodes gets an even share (SPEC §10's cluster fan-out).
#[derive(Debug)]
pub struct SubTargets(Vec<Arc<SubTarget>>);

impl SubTargets {
    /// `targets` must not be empty.
    pub fn new(targets: Vec<SubTarget>) -> Self {
        assert!(!targets.is_empty(), "at least one subscribe target");
        SubTargets(targets.into_iter().map(Arc::new).collect())
    }

    /// Where subscriber `idx` connects.
    pub fn for_index(&self, idx: usize) -> &Arc<SubTarget> {
        &self.0[idx % self.0.len()]
    }
}

/// Figures shared by all subscribers of a run.
pub struct SubStats {
    epoch: Instant,
    /// Streams that got a `200` head.
    pub connected: AtomicU64,
    /// Connects that failed (refused, reset, non-200, timeout of the whole phase aside).
    pub failed: AtomicU64,
    /// Established streams that ended (EOF, reset, end of chunked body) while reading.
    pub closed: AtomicU64,
    /// Benchmark events received, over all streams.
    pub received: AtomicU64,
    /// Microseconds after `epoch` of the latest read that held an event.
    last_rx_us: AtomicU64,
    /// Microseconds after `epoch` at which the latest response head arrived.
    last_head_us: AtomicU64,
    /// Deliveries per sequence number, to find lost and duplicated events.
    per_seq: Vec<AtomicU32>,
    latency: Vec<Mutex<Histogram<u64>>>,
    /// Connect start → response head, µs.
    head_latency: Mutex<Histogram<u64>>,
    first_error: Mutex<Option<String>>,
}

impl SubStats {
    /// `events`: how many sequence numbers the run publishes (0, 1, .. events-1).
    pub fn new(epoch: Instant, events: u64) -> Arc<Self> {
        Arc::new(SubStats {
            epoch,
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            received: AtomicU64::new(0),
            last_rx_us: AtomicU64::new(0),
            last_head_us: AtomicU64::new(0),
            per_seq: (0..events).map(|_| AtomicU32::new(0)).collect(),
            latency: (0..LATENCY_SHARDS)
                .map(|_| Mutex::new(new_histogram()))
                .collect(),
            head_latency: Mutex::new(new_histogram()),
            first_error: Mutex::new(None),
        })
    }

    pub fn fail(&self, error: impl FnOnce() -> String) {
        self.failed.fetch_add(1, Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(error);
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Time from `epoch` until the last response head arrived.
    pub fn last_head(&self) -> Duration {
        Duration::from_micros(self.last_head_us.load(Relaxed))
    }

    /// Time from `epoch` until the last read that held an event.
    pub fn last_rx(&self) -> Duration {
        Duration::from_micros(self.last_rx_us.load(Relaxed))
    }

    pub fn head_latency(&self) -> Histogram<u64> {
        self.head_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// All latency shards merged.
    pub fn latency(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for shard in &self.latency {
            all.add(&*shard.lock().unwrap_or_else(|e| e.into_inner()))
                .expect("same bounds");
        }
        all
    }

    /// (events delivered fewer than `subscribers` times, deliveries beyond `subscribers`
    /// per event), over the first `published` sequence numbers.
    pub fn gaps_and_duplicates(&self, published: u64, subscribers: u64) -> (u64, u64) {
        let (mut short, mut extra) = (0, 0);
        for count in self.per_seq.iter().take(published as usize) {
            let count = u64::from(count.load(Relaxed));
            short += u64::from(count < subscribers);
            extra += count.saturating_sub(subscribers);
        }
        (short, extra)
    }

    fn record_head(&self, started: Instant) {
        let now = Instant::now();
        let us = now.duration_since(started).as_micros() as u64;
        self.head_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record(us.max(1));
        self.last_head_us
            .fetch_max(now.duration_since(self.epoch).as_micros() as u64, Relaxed);
    }
}

/// Body decoding state of one stream.
struct Body {
    chunks: Option<Dechunker>,
    scanner: SseScanner,
}

impl Body {
    /// Parses one read; returns `Ok(true)` when the (chunked) body has ended.
    fn consume(&mut self, data: &[u8], shard: usize, stats: &SubStats) -> Result<bool, WireError> {
        let now_us = unix_micros();
        let mut hist = None;
        let mut count = 0u64;
        let scanner = &mut self.scanner;
        let mut on_data = |bytes: &[u8]| {
            scanner.feed(bytes, |sample| {
                count += 1;
                if let Some(c) = stats.per_seq.get(sample.seq as usize) {
                    c.fetch_add(1, Relaxed);
                }
                let h = hist.get_or_insert_with(|| {
                    stats.latency[shard]
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                });
                h.saturating_record(now_us.saturating_sub(sample.due_us).max(1));
            })
        };
        let ended = match &mut self.chunks {
            Some(d) => d.feed(data, &mut on_data)?,
            None => {
                on_data(data);
                false
            }
        };
        drop(hist);
        if count > 0 {
            stats.received.fetch_add(count, Relaxed);
            stats
                .last_rx_us
                .fetch_max(stats.epoch.elapsed().as_micros() as u64, Relaxed);
        }
        Ok(ended)
    }
}

/// Connects, sends the request and reads the response head. Returns the stream, the
/// body decoder and whatever body bytes came with the head.
async fn open(target: &SubTarget, idx: usize) -> Result<(TcpStream, Body, Vec<u8>), String> {
    let mut stream = connect_from(target.addr, idx)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(&target.request)
        .await
        .map_err(|e| format!("send request: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    // Bounded: parse_head fails once the head exceeds MAX_HEAD without ending.
    loop {
        if stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("read head: {e}"))?
            == 0
        {
            return Err("closed before the response head".into());
        }
        if let Some((head, len)) = parse_head(&buf).map_err(|e| e.to_string())? {
            if head.status != 200 {
                return Err(format!(
                    "HTTP {} from {}",
                    head.status,
                    String::from_utf8_lossy(&buf[..12])
                ));
            }
            let body = Body {
                chunks: head.chunked.then(Dechunker::default),
                scanner: SseScanner::default(),
            };
            buf.drain(..len);
            return Ok((stream, body, buf));
        }
    }
}

/// One subscriber: connects (holding a `gate` permit so connects are paced), then
/// reads and records events until the server closes the stream or the task is aborted.
pub async fn subscribe(
    target: Arc<SubTarget>,
    idx: usize,
    stats: Arc<SubStats>,
    gate: Arc<Semaphore>,
) {
    let Ok(permit) = gate.acquire().await else {
        return;
    };
    let started = Instant::now();
    let opened = open(&target, idx).await;
    drop(permit);
    let (stream, mut body, early) = match opened {
        Ok(x) => x,
        Err(e) => return stats.fail(|| e),
    };
    stats.record_head(started);
    stats.connected.fetch_add(1, Relaxed);
    let shard = idx % LATENCY_SHARDS;
    if body.consume(&early, shard, &stats) != Ok(false) {
        stats.closed.fetch_add(1, Relaxed);
        return;
    }
    drop(early);
    // Ends when the server closes the stream; otherwise the scenario aborts the task.
    loop {
        if stream.readable().await.is_err() {
            break;
        }
        let mut open = true;
        let read = stream.try_io(Interest::READABLE, || {
            READ_BUF.with_borrow_mut(|buf| {
                let n = stream.try_read(buf)?;
                if target.delayed_acks {
                    delay_acks(&stream);
                }
                open = n > 0 && body.consume(&buf[..n], shard, &stats) == Ok(false);
                // A read that did not fill the buffer drained the socket: report
                // WouldBlock so tokio clears the readiness now, instead of paying one
                // more recv() per wake-up to learn it (tokio's own poll_read does this).
                if n < buf.len() {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(())
                }
            })
        });
        if !open || read.is_err_and(|e| e.kind() != io::ErrorKind::WouldBlock) {
            break;
        }
    }
    stats.closed.fetch_add(1, Relaxed);
}

/// Connects and sends the subscribe request, then never reads: a stalled client.
///
/// `rcvbuf` (bytes, 0 = kernel default) caps the receive buffer before the handshake,
/// so the window the client advertises stays small. On loopback a non-reading socket
/// otherwise soaks up ~4 MB (the server's send buffer grows to `tcp_wmem` max), and
/// overflowing that for every stalled client means gigabytes for the healthy ones; a
/// small window keeps the server's send buffer small, as a slow mobile link would.
pub async fn open_stalled(target: &SubTarget, idx: usize, rcvbuf: u32) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if rcvbuf > 0 {
        socket.set_recv_buffer_size(rcvbuf)?;
    }
    let mut stream = connect_with(socket, target.addr, idx).await?;
    stream.write_all(&target.request).await?;
    Ok(stream)
}

/// What reading a stalled connection at the end showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The server had closed it: EOF after the buffered bytes.
    Closed,
    /// The server had reset it (e.g. `SO_LINGER 0`).
    Reset,
    /// Still open: data stopped coming without EOF.
    Open,
}

/// Drains a stalled connection until EOF, reset, `idle` without data, or `deadline`.
/// Returns what it saw and how many bytes had been waiting.
pub async fn probe_stalled(
    mut stream: TcpStream,
    idle: Duration,
    deadline: Instant,
) -> (Probe, u64) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    // Bounded by `deadline`.
    loop {
        let wait = idle.min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Err(_) => return (Probe::Open, total),
            Ok(Ok(0)) => return (Probe::Closed, total),
            Ok(Ok(n)) => total += n as u64,
            Ok(Err(_)) => return (Probe::Reset, total),
        }
    }
}

/// One churn cycle: connect, read the response head (and whatever came with it), close.
pub async fn connect_read_close(target: &SubTarget, idx: usize) -> Result<Duration, String> {
    let started = Instant::now();
    let (stream, _, _) = open(target, idx).await?;
    drop(stream);
    Ok(started.elapsed())
}
