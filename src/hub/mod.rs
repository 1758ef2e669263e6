//! The hub: the only place that knows who is connected.
//!
//! Handlers never change the registry; they send the hub a message. The hub runs on a
//! thread of its own and never waits on a client: it only `try_send`s, and a client
//! whose queue is full is dropped on the spot.
//!
//! Two pieces of its state are shared, so that a publish can be answered without a
//! round trip through the hub's thread (which would queue the answer behind the
//! fan-out's wake-ups): the [`ledger`] of event ids, and the topic index, which
//! publish handlers read (never write) to count an event's receivers.

mod history;
mod ids;
mod index;
mod ledger;
pub mod messages;
mod publisher;
mod subscription;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use actix::{Actor, Addr, ArbiterHandle, AsyncContext, Context, Handler, MessageResult};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::config::Config;
use crate::error::ApiError;
use crate::event::{EARLIEST, Event};
use crate::socket::SocketCloser;
use crate::sse;
use crate::topic::{Topic, TopicFilter};

use history::{Entry, History};
use index::TopicIndex;
use ledger::{Ledger, Retention};
use messages::{Connect, Disconnect, GetStats, IsReady, Publish, Shutdown, Stats};
pub use publisher::{Accepted, Publisher};
pub use subscription::Subscription;

/// Messages the hub's mailbox holds before `send` waits: room for a burst of 10,000
/// connects (actix's default is 16).
const MAILBOX_CAPACITY: usize = 65_536;

/// How long streams get to finish cleanly at shutdown before the connections of
/// clients still not done are reset.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Seconds a client refused for capacity is asked to wait (`Retry-After`).
const RETRY_AFTER_FULL_SECS: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(u64);

/// What the hub needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub client_buffer: usize,
    pub heartbeat: Duration,
    pub retry_ms: u64,
    pub history_size: usize,
    pub history_ttl: Option<Duration>,
    pub max_clients: usize,
    pub clock: Option<Duration>,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        let secs = |n: u64| (n > 0).then(|| Duration::from_secs(n));
        Self {
            client_buffer: config.sse.client_buffer,
            heartbeat: Duration::from_secs(config.sse.heartbeat_secs),
            retry_ms: config.sse.retry_ms,
            history_size: config.sse.history_size,
            history_ttl: secs(config.sse.history_ttl_secs),
            max_clients: config.sse.max_clients,
            clock: secs(config.demo.clock_secs),
        }
    }
}

struct Client {
    /// The receiver is this client's response body: dropping this sender ends the
    /// stream, so disconnecting a client is removing its entry, nothing more.
    tx: mpsc::Sender<Bytes>,
    filters: Box<[TopicFilter]>,
    /// The `seq` of the last event queued for this client: it gets each event once
    /// even when several of its filters match, and a client whose mark is older than
    /// the last heartbeat round has been idle since.
    mark: u64,
    /// Resets the connection if the client is dropped as slow; `None` where the
    /// connection is not a plain TCP socket.
    closer: Option<SocketCloser>,
}

/// Why a client leaves the registry.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Leave {
    /// Its queue was full: it is not reading.
    Slow,
    /// Its stream is gone already.
    Gone,
}

pub struct Hub {
    settings: Settings,
    clients: HashMap<ClientId, Client>,
    /// Which clients want which topics; shared with the publish handlers, who read it.
    index: Arc<RwLock<TopicIndex>>,
    history: History,
    /// Ids accepted and not yet evicted; the hub releases what it evicts.
    ledger: Arc<Mutex<Ledger>>,
    /// `Publish` messages not yet handled; see [`publisher::MAX_PENDING_PUBLISHES`].
    pending: Arc<AtomicUsize>,
    next_client: u64,
    /// Counts events fanned out; see `Client::mark`.
    seq: u64,
    /// `seq` when the previous heartbeat round ran.
    seq_at_heartbeat: u64,
    /// The stream's first bytes, encoded once.
    preamble: Bytes,
    published: u64,
    delivered: u64,
    dropped_slow: u64,
    /// Reused between publishes, so matching allocates nothing per event.
    scratch: Vec<ClientId>,
    closing: bool,
    started: Instant,
}

/// Starts the hub on `thread`; answers its address and the handle publishers use.
pub fn start(settings: Settings, thread: &ArbiterHandle) -> (Addr<Hub>, Publisher) {
    let index = Arc::new(RwLock::new(TopicIndex::default()));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let pending = Arc::new(AtomicUsize::new(0));
    let retention = Retention {
        size: settings.history_size,
        ttl: settings.history_ttl,
    };
    let hub = Hub {
        preamble: sse::preamble(settings.retry_ms),
        history: History::new(settings.history_size, settings.history_ttl),
        settings,
        clients: HashMap::new(),
        index: index.clone(),
        ledger: ledger.clone(),
        pending: pending.clone(),
        next_client: 0,
        seq: 0,
        seq_at_heartbeat: 0,
        published: 0,
        delivered: 0,
        dropped_slow: 0,
        scratch: Vec::new(),
        closing: false,
        started: Instant::now(),
    };
    let hub = Hub::start_in_arbiter(thread, move |_| hub);
    let publisher = Publisher {
        hub: hub.clone(),
        ledger,
        index,
        pending,
        retention,
    };
    (hub, publisher)
}

impl Hub {
    fn index(&self) -> RwLockReadGuard<'_, TopicIndex> {
        // unwrap: only the hub writes the index, and it does not panic while doing so.
        self.index.read().unwrap()
    }

    fn index_mut(&self) -> RwLockWriteGuard<'_, TopicIndex> {
        // unwrap: as above.
        self.index.write().unwrap()
    }

    /// Keeps published events for replay, releasing the ids of those evicted.
    fn remember(&mut self, entries: impl IntoIterator<Item = Entry>) {
        let evicted: Vec<Entry> = entries
            .into_iter()
            .filter_map(|e| self.history.push(e))
            .collect();
        self.release(evicted);
    }

    /// Drops history past its TTL.
    fn expire_history(&mut self) {
        let mut evicted = Vec::new();
        self.history.expire(Instant::now(), |e| evicted.push(e));
        self.release(evicted);
    }

    fn release(&self, evicted: Vec<Entry>) {
        if evicted.is_empty() {
            return;
        }
        // unwrap: the ledger's users never panic while holding it.
        let mut ledger = self.ledger.lock().unwrap();
        for entry in &evicted {
            ledger.release(&entry.id);
        }
    }

    /// The first items of a new stream: the preamble, then every held event after
    /// `last_event_id` that the filters match, or a `hub.gap` if that id is not held.
    /// Replayed events are the history's own shared frames, so replaying the whole
    /// history to many clients at once costs pointers, not copies.
    fn replay(&self, filters: &[TopicFilter], last_event_id: Option<&str>) -> Vec<Bytes> {
        let mut head = vec![self.preamble.clone()];
        let Some(asked) = last_event_id else {
            return head;
        };
        let matching = |e: &&Entry| wants(filters, &e.topics);
        if asked == EARLIEST {
            head.extend(self.history.all().filter(matching).map(|e| e.frame.clone()));
        } else if let Some(later) = self.history.after(asked) {
            head.extend(later.filter(matching).map(|e| e.frame.clone()));
        } else {
            head.push(sse::gap(self.history.newest_id(), asked));
        }
        head
    }

    /// Starts a new event (a new `seq`) and, unless it is a global broadcast, collects
    /// into `scratch`, once each, the clients its topics reach.
    fn next_event(&mut self, topics: &[Topic]) {
        self.seq += 1;
        let seq = self.seq;
        self.scratch.clear();
        // unwrap: only the hub writes the index, and it does not panic while doing so.
        let index = self.index.read().unwrap();
        let (clients, scratch) = (&mut self.clients, &mut self.scratch);
        for topic in topics {
            index.for_each_match(topic, |id| {
                if let Some(client) = clients.get_mut(&id)
                    && client.mark != seq
                {
                    client.mark = seq;
                    scratch.push(id);
                }
            });
        }
    }

    /// Fans one event out, then keeps it.
    fn publish_one(&mut self, entry: Entry) {
        self.next_event(&entry.topics);
        self.published += 1;
        self.fan_out(&entry.frame, entry.topics.is_empty());
        self.remember([entry]);
    }

    /// Queues `frame` for every client when `global`, else for those `next_event`
    /// collected; clients whose queue is full are dropped.
    fn fan_out(&mut self, frame: &Bytes, global: bool) {
        let mut leaving = Vec::new();
        let mut sent = 0;
        if global {
            for (&id, client) in &mut self.clients {
                sent += offer(id, client, frame, self.seq, &mut leaving);
            }
        } else {
            for &id in &self.scratch {
                if let Some(client) = self.clients.get_mut(&id) {
                    sent += offer(id, client, frame, self.seq, &mut leaving);
                }
            }
        }
        self.delivered += sent;
        self.remove_all(leaving);
    }

    /// Publishes a batch: each client gets one queue item holding, in order, the
    /// events that match it, and clients that match the same events share one buffer.
    /// Which events a client gets is a bitset over the batch (128 bytes for 1000
    /// events), kept only for clients that topic events reach; global events go to
    /// everyone without being listed per client. So a batch costs memory in proportion
    /// to the clients it reaches, not to clients × events.
    fn publish_batch(&mut self, entries: Vec<Entry>) {
        let words = entries.len().div_ceil(64);
        let mut everyone = vec![0u64; words];
        let mut picks: HashMap<ClientId, Vec<u64>> = HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            self.next_event(&entry.topics);
            let bit = (i / 64, 1u64 << (i % 64));
            if entry.topics.is_empty() {
                everyone[bit.0] |= bit.1;
            }
            for &id in &self.scratch {
                picks.entry(id).or_insert_with(|| vec![0; words])[bit.0] |= bit.1;
            }
        }
        self.published += entries.len() as u64;

        let mut chunks: HashMap<Vec<u64>, (Bytes, u64)> = HashMap::new();
        let chunk = |bits: &Vec<u64>| {
            let mut chunk = BytesMut::new();
            let mut count = 0;
            for (i, entry) in entries.iter().enumerate() {
                if bits[i / 64] & (1 << (i % 64)) != 0 {
                    chunk.extend_from_slice(&entry.frame);
                    count += 1;
                }
            }
            (chunk.freeze(), count)
        };
        let mut leaving = Vec::new();
        if everyone.iter().any(|&w| w != 0) {
            let (frame, count) = chunk(&everyone);
            for (&id, client) in &mut self.clients {
                if !picks.contains_key(&id) {
                    let sent = offer(id, client, &frame, self.seq, &mut leaving);
                    self.delivered += sent * count;
                }
            }
        }
        for (id, mut bits) in picks {
            bits.iter_mut().zip(&everyone).for_each(|(w, e)| *w |= e);
            let (frame, count) = chunks.entry(bits).or_insert_with_key(|bits| chunk(bits));
            if let Some(client) = self.clients.get_mut(&id) {
                let sent = offer(id, client, frame, self.seq, &mut leaving);
                self.delivered += sent * *count;
            }
        }
        self.remove_all(leaving);
        self.remember(entries);
    }

    fn remove_all(&mut self, leaving: Vec<(ClientId, Leave)>) {
        for (id, why) in leaving {
            self.remove(id, why);
        }
    }

    fn remove(&mut self, id: ClientId, why: Leave) {
        let Some(client) = self.clients.remove(&id) else {
            return;
        };
        self.index_mut().remove(id, &client.filters);
        if why == Leave::Slow {
            self.dropped_slow += 1;
            log::debug!("client {} dropped: too slow", id.0);
            if let Some(closer) = client.closer {
                closer.close();
            }
        }
    }

    /// Publishes the demo clock: like any event, but without an id and not kept in
    /// history, so it never evicts real events.
    fn tick_clock(&mut self) {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let event = Event {
            event: Some("time".into()),
            data: now.into(),
            topics: Box::new([Topic::parse("time").expect("a valid topic")]),
            id: None,
            retry: None,
        };
        self.next_event(&event.topics);
        self.published += 1;
        self.fan_out(&sse::encode_body(&event), false);
    }

    /// Sends a comment to every client that was sent nothing since the last round.
    fn heartbeat(&mut self) {
        let idle_since = self.seq_at_heartbeat;
        let beat = Bytes::from_static(sse::HEARTBEAT);
        let mut leaving = Vec::new();
        for (&id, client) in &mut self.clients {
            if client.mark <= idle_since {
                // A heartbeat is not an event: the client's mark stays, so it is
                // still idle at the next round unless an event reaches it.
                let mark = client.mark;
                offer(id, client, &beat, mark, &mut leaving);
            }
        }
        self.remove_all(leaving);
        self.seq_at_heartbeat = self.seq;
    }
}

/// Queues `frame` for a client without waiting: 1 if queued, else 0 and the client
/// goes on the leaving list (a full queue means it is not reading).
fn offer(
    id: ClientId,
    client: &mut Client,
    frame: &Bytes,
    seq: u64,
    leaving: &mut Vec<(ClientId, Leave)>,
) -> u64 {
    match client.tx.try_send(frame.clone()) {
        Ok(()) => {
            client.mark = seq;
            1
        }
        Err(TrySendError::Full(_)) => {
            leaving.push((id, Leave::Slow));
            0
        }
        Err(TrySendError::Closed(_)) => {
            leaving.push((id, Leave::Gone));
            0
        }
    }
}

/// Whether a client with `filters` gets an event published to `topics`.
fn wants(filters: &[TopicFilter], topics: &[Topic]) -> bool {
    topics.is_empty() || topics.iter().any(|t| filters.iter().any(|f| f.matches(t)))
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Connects (sent with `send`, which waits while the mailbox is over capacity)
        // arrive in bursts of thousands; the mailbox must not be what limits them.
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        // Rounds at half the period, each reaching the clients sent nothing since the
        // round before, so no stream is silent for longer than `heartbeat_secs`.
        ctx.run_interval(self.settings.heartbeat / 2, |hub, _| hub.heartbeat());
        if self.settings.history_ttl.is_some() {
            // Frees expired events' memory even when nothing else reaches the hub.
            ctx.run_interval(Duration::from_secs(1), |hub, _| hub.expire_history());
        }
        if let Some(every) = self.settings.clock {
            ctx.run_interval(every, |hub, _| hub.tick_clock());
        }
    }
}

impl Handler<Connect> for Hub {
    type Result = Result<Subscription, ApiError>;

    fn handle(&mut self, msg: Connect, ctx: &mut Self::Context) -> Self::Result {
        if self.closing {
            return Err(ApiError::shutting_down());
        }
        if self.clients.len() >= self.settings.max_clients {
            return Err(ApiError::Unavailable {
                reason: "too many clients (max_clients reached)",
                retry_after: RETRY_AFTER_FULL_SECS,
            });
        }
        self.expire_history();
        let head = self.replay(&msg.filters, msg.last_event_id.as_deref());
        let (tx, rx) = mpsc::channel(self.settings.client_buffer);
        let id = ClientId(self.next_client);
        self.next_client += 1;
        self.index_mut().add(id, &msg.filters);
        self.clients.insert(
            id,
            Client {
                tx,
                filters: msg.filters.into(),
                mark: self.seq,
                closer: msg.closer,
            },
        );
        log::debug!("client {} connected ({} now)", id.0, self.clients.len());
        Ok(Subscription::new(id, head, rx, ctx.address()))
    }
}

impl Handler<Disconnect> for Hub {
    type Result = ();

    fn handle(&mut self, Disconnect(id): Disconnect, _: &mut Self::Context) {
        self.remove(id, Leave::Gone);
        log::debug!("client {} disconnected ({} now)", id.0, self.clients.len());
    }
}

impl Handler<Publish> for Hub {
    type Result = ();

    fn handle(&mut self, Publish { mut entries }: Publish, _: &mut Self::Context) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
        if self.closing {
            return;
        }
        self.expire_history();
        match entries.len() {
            // unwrap: the length was just matched.
            1 => self.publish_one(entries.pop().unwrap()),
            _ => self.publish_batch(entries),
        }
    }
}

impl Handler<GetStats> for Hub {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> Self::Result {
        self.expire_history();
        MessageResult(Stats {
            clients: self.clients.len(),
            topics: self.index().counts().collect(),
            published: self.published,
            delivered: self.delivered,
            dropped_slow: self.dropped_slow,
            history: self.history.len(),
            uptime_secs: self.started.elapsed().as_secs(),
        })
    }
}

impl Handler<IsReady> for Hub {
    type Result = bool;

    fn handle(&mut self, _: IsReady, _: &mut Self::Context) -> bool {
        !self.closing
    }
}

impl Handler<Shutdown> for Hub {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.closing = true;
        // unwrap: the ledger's users never panic while holding it.
        self.ledger.lock().unwrap().close();
        *self.index_mut() = TopicIndex::default();
        // Dropping the senders ends every stream. A client that is not reading never
        // lets its stream finish (its socket never becomes writable), so whoever is
        // still connected after a grace period has their connection reset; a closer
        // whose stream has ended does nothing.
        let closers: Vec<SocketCloser> =
            self.clients.drain().filter_map(|(_, c)| c.closer).collect();
        ctx.run_later(SHUTDOWN_GRACE, move |_, _| {
            closers.into_iter().for_each(SocketCloser::close);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use actix::Arbiter;

    fn event() -> Event {
        Event {
            event: None,
            data: "x".into(),
            topics: Box::default(),
            id: None,
            retry: None,
        }
    }

    #[actix_web::test]
    async fn publishes_beyond_what_the_hub_has_pending_are_refused_not_queued() {
        // The hub runs on this test's thread, so it handles nothing until we await.
        let (hub, publisher) = start(
            Settings::from_config(&Config::default()),
            &Arbiter::current(),
        );
        for _ in 0..publisher::MAX_PENDING_PUBLISHES {
            publisher.publish(vec![event()], false).unwrap();
        }
        let refused = publisher.publish(vec![event()], false).unwrap_err();
        assert!(
            matches!(refused, ApiError::Unavailable { .. }),
            "{refused:?}"
        );
        let stats = hub.send(GetStats).await.unwrap();
        assert_eq!(stats.published, publisher::MAX_PENDING_PUBLISHES as u64);
        assert!(
            publisher.publish(vec![event()], false).is_ok(),
            "accepted again once handled"
        );
    }

    #[actix_web::test]
    async fn after_shutdown_nothing_is_accepted_that_could_be_lost() {
        let (hub, publisher) = start(
            Settings::from_config(&Config::default()),
            &Arbiter::current(),
        );
        assert!(hub.send(IsReady).await.unwrap());
        assert!(publisher.publish(vec![event()], false).is_ok());
        hub.send(Shutdown).await.unwrap();
        assert!(!hub.send(IsReady).await.unwrap());
        let refused = publisher.publish(vec![event()], false).unwrap_err();
        assert!(
            matches!(refused, ApiError::Unavailable { .. }),
            "{refused:?}"
        );
        let connect = Connect {
            filters: Vec::new(),
            last_event_id: None,
            closer: None,
        };
        let refused = hub.send(connect).await.unwrap().err().unwrap();
        assert!(
            matches!(refused, ApiError::Unavailable { .. }),
            "{refused:?}"
        );
    }
}
