//! The hub: the only place that knows who is connected.
//!
//! Handlers never change the registry; they send the hub a message. The hub runs on a
//! thread of its own and never waits on a client: it only `try_send`s, and a client
//! whose queue is full is dropped on the spot.
//!
//! - [`registry`]: the clients and the topic index, changed only together.
//! - [`fanout`]: one event, batch or heartbeat queued for every client it reaches.
//! - [`history`]: what a reconnecting client is replayed.
//! - [`publisher`] and [`ledger`]: the publish side, answered without a round trip
//!   through the hub's thread (which would queue the answer behind the fan-out's
//!   wake-ups): ids are reserved in the shared ledger, and receivers counted from the
//!   shared topic index, which publish handlers read and only the registry writes.
//! - [`stats`]: `/stats`, built from the metrics the hub keeps, off the hub's thread.
//! - [`subscription`]: the stream a client's response body reads, fed by its [`queue`].
//! - [`lobby`]: clients admitted by their handlers without a round trip through the
//!   hub's thread, and streams that ended, for the hub to take whenever it runs.
//! - [`store`]: with `history_path`, the history also on disk, written off the hub's
//!   thread and loaded back at start.
//! - In cluster mode (SPEC §10) events reach the hub from the cluster's reader instead
//!   ([`messages::Relay`]), in the stream's order, with their ids already final.

mod client;
mod clock;
mod fanout;
mod history;
mod ids;
mod index;
mod ledger;
mod lobby;
pub mod messages;
mod publisher;
mod queue;
mod registry;
mod stats;
mod store;
mod subscription;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix::{Actor, Addr, ArbiterHandle, AsyncContext, Context, Handler, MessageResult};
use bytes::Bytes;

use crate::config::Config;
use crate::error::ApiError;
use crate::event::{EARLIEST, Event};
use crate::metrics::Metrics;
use crate::sse;
use crate::topic::{Patterns, Topic, TopicFilter};

use client::{Client, ClientId, Leave};
use clock::Clock;
use fanout::FanOut;
use history::{Entry, History, Limits};
use index::TopicIndex;
use ledger::Retention;
use lobby::{Arrival, Lobby};
use messages::{
    Arrived, ClientInfo, Connect, Holds, IsReady, Kick, ListClients, Load, Publish, Relay, Shutdown,
};
use publisher::Intake;
use registry::Registry;

pub use publisher::{Accepted, MAX_PENDING_BYTES, MAX_PENDING_PUBLISHES, Publisher};

use crate::auth::Sight;
use crate::conn::ConnHandle;
pub use stats::StatsBoard;
use std::net::SocketAddr;
pub use store::{OpenError, Store};
pub use subscription::Subscription;
use uuid::Uuid;

/// Messages the hub's mailbox holds before `send` waits: room for a burst of 10,000
/// connects (actix's default is 16).
const MAILBOX_CAPACITY: usize = 65_536;

/// Seconds a client refused for capacity is asked to wait (`Retry-After`).
const RETRY_AFTER_FULL_SECS: u64 = 5;

/// How often the hub looks for stalled clients (and, with a TTL, expires history
/// that nothing else has touched).
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

/// What the hub needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub client_buffer: usize,
    pub heartbeat: Duration,
    pub retry_ms: u64,
    pub history: Limits,
    pub stall_timeout: Duration,
    pub max_clients: usize,
    pub max_pending_bytes: usize,
    pub demo_clock: Option<Duration>,
    /// `auth.private_topics`: an event with any of these topics is private.
    pub private_topics: Arc<Patterns>,
    time: Clock,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        let secs = |n: u64| (n > 0).then(|| Duration::from_secs(n));
        Self {
            client_buffer: config.sse.client_buffer,
            heartbeat: Duration::from_secs(config.sse.heartbeat_secs),
            retry_ms: config.sse.retry_ms,
            history: Limits {
                events: config.sse.history_size,
                bytes: config.sse.history_max_bytes,
                ttl: secs(config.sse.history_ttl_secs),
            },
            stall_timeout: Duration::from_secs(config.sse.stall_timeout_secs),
            max_clients: config.sse.max_clients,
            max_pending_bytes: MAX_PENDING_BYTES,
            demo_clock: secs(config.demo.clock_secs),
            private_topics: Arc::new(
                Patterns::parse(&config.auth.private_topics)
                    .expect("Config::check refuses private_topics that do not parse"),
            ),
            time: Clock::System,
        }
    }
}

pub struct Hub {
    settings: Settings,
    registry: Registry,
    fanout: FanOut,
    history: History,
    /// Shared with the publish handlers: the ledger (the hub releases what history
    /// evicts), the backlog (the hub counts handled publishes out) and the stop flag.
    intake: Arc<Intake>,
    metrics: Metrics,
    /// The stream's first bytes, encoded once.
    preamble: Bytes,
    closing: bool,
    /// With `history_path`: told of every event kept and evicted, which it writes to
    /// disk on its own thread. Closed (everything written) at shutdown.
    store: Option<store::Writer>,
    /// In cluster mode: whether the reader is connected to Redis (part of being ready).
    link: Option<Arc<AtomicBool>>,
    /// Whether history holds what it should: at once in memory or from a file; in
    /// cluster mode, once the reader has loaded it from the stream. Until then a
    /// subscriber is refused, as its replay (or its gap) would be wrong.
    loaded: bool,
    /// Clients admitted by their handlers, and streams that ended, for the hub to take
    /// whenever it runs.
    lobby: Arc<Lobby>,
}

/// A started hub, and what the handlers use to reach it.
pub struct Handles {
    pub hub: Addr<Hub>,
    pub publisher: Publisher,
    pub connector: Connector,
    pub stats: StatsBoard,
}

/// `GET /events` without a position: admits the client in the [`Lobby`] and answers at
/// once, without waiting for the hub's thread. Cheap to clone, one per worker.
#[derive(Clone)]
pub struct Connector {
    lobby: Arc<Lobby>,
    time: Clock,
    preamble: Bytes,
    client_buffer: usize,
    max_clients: usize,
}

/// Who is subscribing, as the handler knows it.
pub struct Joining {
    pub filters: Vec<TopicFilter>,
    pub sight: Sight,
    pub conn: ConnHandle,
    pub uuid: Uuid,
    pub peer: Option<SocketAddr>,
}

impl Connector {
    /// The client's stream: the preamble and its position (the newest id) first, then
    /// everything fanned out from the moment it was admitted. Refused as the hub would
    /// (stopping, not loaded, `max_clients`).
    pub fn join(&self, joining: Joining) -> Result<Subscription, ApiError> {
        let (tx, rx) = queue::bounded(self.client_buffer);
        let (id, head) = self
            .lobby
            .join(&self.preamble, self.max_clients, |id| Arrival {
                id,
                since: self.time.now(),
                uuid: joining.uuid,
                peer: joining.peer,
                filters: joining.filters,
                sight: joining.sight,
                conn: joining.conn,
                tx,
            })?;
        Ok(Subscription::new(id, head, rx, self.lobby.clone()))
    }
}

/// Starts the hub on `thread`; it keeps `metrics` up to date.
pub fn start(settings: Settings, metrics: Metrics, thread: &ArbiterHandle) -> Handles {
    let history = History::new(settings.history);
    launch(settings, metrics, thread, history, None, None)
}

/// Starts the hub of a cluster node: events come from the cluster's reader, which
/// loads history first and reports whether it is connected in `link`.
pub fn start_clustered(
    settings: Settings,
    metrics: Metrics,
    thread: &ArbiterHandle,
    link: Arc<AtomicBool>,
) -> Handles {
    let history = History::new(settings.history);
    launch(settings, metrics, thread, history, None, Some(link))
}

/// Starts the hub with durable history: loads what `store` holds (within the history's
/// limits now in force), then keeps it up to date, writing every `flush`.
pub fn start_with_store(
    settings: Settings,
    metrics: Metrics,
    thread: &ArbiterHandle,
    store: Store,
    flush: Duration,
) -> Result<Handles, OpenError> {
    let records = store.load()?;
    let shown = store.path().display().to_string();
    let unwritten = Arc::new(AtomicUsize::new(0));
    let writer = store
        .writer(flush, unwritten.clone())
        .map_err(|e| OpenError::new(&shown, format!("cannot start its writer: {e}")))?;
    let mut history = History::new(settings.history);
    let mut evicted = Vec::new();
    let stored = records.len();
    for record in records {
        let entry = Entry {
            private: settings.private_topics.select(&record.topics),
            id: record.id,
            topics: record.topics,
            frame: record.frame,
            at: store::instant_of(record.at_unix_ms),
            reservation: record.key,
            server_id: record.server_id,
        };
        history.push(entry, |e| evicted.push(e));
    }
    history.expire(settings.time.now(), |e| evicted.push(e));
    // Limits lowered since, or a TTL passed while stopped: the file follows.
    for entry in &evicted {
        writer.evict(entry);
    }
    log::info!(
        "history: {} events loaded from {shown} ({} of {stored} past the limits dropped)",
        history.len(),
        evicted.len()
    );
    Ok(launch(
        settings,
        metrics,
        thread,
        history,
        Some((writer, unwritten)),
        None,
    ))
}

fn launch(
    settings: Settings,
    metrics: Metrics,
    thread: &ArbiterHandle,
    history: History,
    store: Option<(store::Writer, Arc<AtomicUsize>)>,
    link: Option<Arc<AtomicBool>>,
) -> Handles {
    let index = Arc::new(RwLock::new(TopicIndex::default()));
    let (store, unwritten) = store.unzip();
    let mut intake = Intake::default();
    if let Some(unwritten) = unwritten {
        intake.backlog.unwritten = unwritten;
    }
    let intake = Arc::new(intake);
    metrics.history.set(history.len() as i64);
    {
        // unwrap: nobody else has the ledger yet.
        let mut ledger = intake.ledger.lock().unwrap();
        for e in history.all() {
            ledger.restore(&e.id, e.at, e.reservation, e.server_id);
        }
    }
    let retention = Retention {
        size: settings.history.events,
        ttl: settings.history.ttl,
    };
    let time = settings.time.clone();
    let max_pending_bytes = settings.max_pending_bytes;
    let private_topics = settings.private_topics.clone();
    let lobby = Arc::new(Lobby::new(link.is_none()));
    lobby.set_newest(history.newest_id());
    let (client_buffer, max_clients) = (settings.client_buffer, settings.max_clients);
    let preamble = sse::preamble(settings.retry_ms);
    let hub = Hub {
        lobby: lobby.clone(),
        preamble: sse::preamble(settings.retry_ms),
        history,
        store,
        registry: Registry::new(index.clone()),
        fanout: FanOut::default(),
        intake: intake.clone(),
        metrics: metrics.clone(),
        closing: false,
        loaded: link.is_none(),
        link,
        settings,
    };
    let hub = Hub::start_in_arbiter(thread, move |_| hub);
    Handles {
        connector: Connector {
            lobby: lobby.clone(),
            time: time.clone(),
            preamble,
            client_buffer,
            max_clients,
        },
        publisher: Publisher {
            hub: hub.clone(),
            intake,
            index: index.clone(),
            lobby: lobby.clone(),
            retention,
            max_pending_bytes,
            private_topics,
            time,
        },
        stats: StatsBoard::new(metrics, index),
        hub,
    }
}

impl Hub {
    fn now(&self) -> Instant {
        self.settings.time.now()
    }

    /// Registers the clients that arrived in the lobby since it last looked and removes
    /// those whose streams ended; `newest`: the id of an event about to be fanned out,
    /// the position of clients who join from now on (see [`lobby`]).
    fn tidy(&mut self, newest: Option<&str>) {
        let seq = self.fanout.seq();
        let registry = &mut self.registry;
        let leavers = self.lobby.take(newest, |arrivals| {
            for arrival in arrivals {
                let (uuid, peer) = (arrival.uuid, arrival.peer);
                registry.insert(
                    arrival.id,
                    Client {
                        uuid,
                        peer,
                        since: arrival.since,
                        tx: arrival.tx,
                        filters: arrival.filters.into(),
                        sight: arrival.sight,
                        matched: seq,
                        mark: seq,
                        conn: arrival.conn,
                    },
                );
                log::debug!(
                    "client {uuid} connected from {}",
                    peer.map_or("?".into(), |p| p.to_string())
                );
            }
        });
        for id in leavers {
            self.remove(id, Leave::Gone);
        }
        self.metrics.clients.set(self.registry.len() as i64);
    }

    /// Fans events out (the [`fanout`] step), drops whoever it found not reading, and
    /// keeps the events for replay.
    fn publish(&mut self, entries: Vec<Entry>) {
        self.expire_history();
        // Kept events (history keeps any) become the position of later joins.
        let kept = self.settings.history.events > 0;
        let newest = entries.last().filter(|_| kept).map(|e| e.id.clone());
        self.tidy(newest.as_deref());
        let delivered = match &entries[..] {
            [event] => self.fanout.event(
                &mut self.registry,
                &event.topics,
                &event.private,
                &event.frame,
            ),
            batch => self.fanout.batch(&mut self.registry, batch),
        };
        self.metrics.published.inc_by(entries.len() as u64);
        self.metrics.deliveries.inc_by(delivered);
        // unwrap: a publish holds one event at least.
        let accepted = entries.first().unwrap().at;
        self.metrics
            .observe_fanout(self.now().saturating_duration_since(accepted));
        self.remove_leaving();
        self.remember(entries);
        // What history actually kept (an event over the byte bound is not).
        if newest.as_deref() != self.history.newest_id() {
            self.lobby.set_newest(self.history.newest_id());
        }
    }

    /// Keeps published events for replay, releasing the ids of those evicted.
    fn remember(&mut self, entries: Vec<Entry>) {
        let mut evicted = Vec::new();
        for entry in entries {
            if let Some(store) = &self.store {
                store.keep(&entry);
            }
            self.history.push(entry, |e| evicted.push(e));
        }
        self.release(evicted);
    }

    /// Drops history past its TTL.
    fn expire_history(&mut self) {
        let mut evicted = Vec::new();
        self.history.expire(self.now(), |e| evicted.push(e));
        if self.history.len() == 0 && !evicted.is_empty() {
            self.lobby.set_newest(None);
        }
        self.release(evicted);
    }

    fn release(&self, evicted: Vec<Entry>) {
        self.metrics.history.set(self.history.len() as i64);
        if evicted.is_empty() {
            return;
        }
        if let Some(store) = &self.store {
            for entry in &evicted {
                store.evict(entry);
            }
        }
        // unwrap: the ledger's users never panic while holding it.
        let mut ledger = self.intake.ledger.lock().unwrap();
        for entry in &evicted {
            ledger.release(&entry.id, entry.reservation);
        }
    }

    /// The first items of a new stream: the preamble, then every held event after
    /// `last_event_id` that the filters match, or a `hub.gap` if that id is not held.
    /// A client that connects without a position is told the newest id instead, so
    /// that if it is cut off before its first event it resumes from where it
    /// connected rather than silently missing what followed (SPEC §3).
    /// Replayed events are the history's own shared frames, so replaying the whole
    /// history to many clients at once costs pointers, not copies.
    fn replay(
        &self,
        filters: &[TopicFilter],
        sight: &Patterns,
        last_event_id: Option<&str>,
    ) -> Vec<Bytes> {
        let mut head = vec![self.preamble.clone()];
        let matching = |e: &&Entry| wants(filters, &e.topics) && sight.covers(&e.private);
        match last_event_id {
            None => head.extend(self.history.newest_id().map(sse::position)),
            Some(EARLIEST) => {
                head.extend(self.history.all().filter(matching).map(|e| e.frame.clone()))
            }
            Some(asked) => match self.history.after(asked) {
                Some(later) => head.extend(later.filter(matching).map(|e| e.frame.clone())),
                None => head.push(sse::gap(self.history.newest_id(), asked)),
            },
        }
        head
    }

    fn remove_leaving(&mut self) {
        for (id, why) in self.fanout.take_leaving() {
            self.remove(id, why);
        }
    }

    fn remove(&mut self, id: ClientId, why: Leave) {
        let Some(client) = self.registry.remove(id) else {
            return;
        };
        self.lobby.removed(1);
        self.metrics.clients.set(self.registry.len() as i64);
        let uuid = client.uuid;
        match why {
            Leave::Slow => {
                self.metrics.dropped.slow.inc();
                log::debug!("client {uuid} dropped: slow (its queue was full)");
            }
            Leave::Stalled => {
                self.metrics.dropped.stalled.inc();
                log::debug!("client {uuid} dropped: stalled (its socket took nothing)");
            }
            Leave::Admin => {
                self.metrics.dropped.admin.inc();
                log::debug!("client {uuid} dropped: admin (DELETE /clients)");
            }
            // The kernel gave up on a client that acknowledged nothing for the stall
            // timeout (TCP_USER_TIMEOUT, set at accept): stalled, below the socket
            // buffer's fill level where no write of ours would notice.
            Leave::Gone if client.conn.timed_out() => {
                self.metrics.dropped.stalled.inc();
                log::debug!(
                    "client {uuid} dropped: stalled (unacknowledged for the stall timeout)"
                );
            }
            Leave::Gone => log::debug!("client {uuid} disconnected"),
        }
        // An admin's kick of a client that reads its stream just ends the stream (on
        // HTTP/2 its connection carries others); one that is not reading would never
        // see the end, so its connection is closed like a slow client's.
        let stuck = why == Leave::Admin && client.conn.stalled_for(self.now()).is_some();
        if why.closes_connection() || stuck {
            client.conn.trip();
        }
    }

    /// Drops every client whose connection has had bytes waiting, and taken none of
    /// them, for `stall_timeout`: its queue may never fill (a quiet topic, or a replay
    /// that is written before the queue), yet it holds memory it will not read.
    fn drop_stalled(&mut self) {
        let (now, limit) = (self.now(), self.settings.stall_timeout);
        let stalled: Vec<ClientId> = self
            .registry
            .iter_mut()
            .filter(|(_, c)| c.conn.stalled_for(now).is_some_and(|d| d >= limit))
            .map(|(&id, _)| id)
            .collect();
        for id in stalled {
            self.remove(id, Leave::Stalled);
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
        let frame = sse::encode_body(&event);
        let private = self.settings.private_topics.select(&event.topics);
        self.tidy(None);
        let delivered = self
            .fanout
            .event(&mut self.registry, &event.topics, &private, &frame);
        self.metrics.published.inc();
        self.metrics.deliveries.inc_by(delivered);
        self.remove_leaving();
    }

    /// A cluster event as the hub keeps it. Its reservation is never held in the
    /// ledger (Redis checks ids in a cluster), so releasing it is a no-op.
    fn entry(&self, arrived: Arrived) -> Entry {
        Entry {
            private: self.settings.private_topics.select(&arrived.topics),
            id: arrived.id,
            topics: arrived.topics,
            frame: arrived.frame,
            at: store::instant_of(arrived.at_unix_ms),
            reservation: u64::MAX,
            server_id: arrived.server_id,
        }
    }

    fn heartbeat(&mut self) {
        self.tidy(None);
        let beat = Bytes::from_static(sse::HEARTBEAT);
        self.fanout.heartbeat(&mut self.registry, &beat);
        self.remove_leaving();
    }
}

/// Whether a client with `filters` gets an event published to `topics`.
fn wants(filters: &[TopicFilter], topics: &[Topic]) -> bool {
    topics.is_empty() || topics.iter().any(|t| filters.iter().any(|f| f.matches(t)))
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Nothing can take over the hub's work: a panic here must end the process.
        crate::fatal::mark_this_thread();
        // Connects (sent with `send`, which waits while the mailbox is over capacity)
        // arrive in bursts of thousands; the mailbox must not be what limits them.
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        // Rounds at half the period, each reaching the clients sent nothing since the
        // round before, so no stream is silent for longer than `heartbeat_secs`.
        ctx.run_interval(self.settings.heartbeat / 2, |hub, _| hub.heartbeat());
        ctx.run_interval(HOUSEKEEPING_EVERY, |hub, _| {
            hub.tidy(None);
            hub.drop_stalled();
            // Frees expired events' memory even when nothing else reaches the hub.
            hub.expire_history();
        });
        if let Some(every) = self.settings.demo_clock {
            ctx.run_interval(every, |hub, _| hub.tick_clock());
        }
    }
}

impl Handler<Connect> for Hub {
    type Result = Result<Subscription, ApiError>;

    fn handle(&mut self, msg: Connect, _: &mut Self::Context) -> Self::Result {
        self.tidy(None);
        // Refused as in the lobby (stopping, not loaded, max_clients), counted there.
        let id = self.lobby.admit(self.settings.max_clients)?;
        self.expire_history();
        let head = self.replay(&msg.filters, &msg.sight, msg.last_event_id.as_deref());
        let (tx, rx) = queue::bounded(self.settings.client_buffer);
        let (uuid, peer) = (msg.uuid, msg.peer);
        self.registry.insert(
            id,
            Client {
                uuid,
                peer,
                since: self.now(),
                tx,
                filters: msg.filters.into(),
                sight: msg.sight,
                matched: self.fanout.seq(),
                mark: self.fanout.seq(),
                conn: msg.conn,
            },
        );
        self.metrics.clients.set(self.registry.len() as i64);
        log::debug!(
            "client {uuid} connected from {} ({} now)",
            peer.map_or("?".into(), |p| p.to_string()),
            self.registry.len()
        );
        Ok(Subscription::new(id, head, rx, self.lobby.clone()))
    }
}

impl Handler<Publish> for Hub {
    type Result = ();

    fn handle(&mut self, Publish { entries, bytes }: Publish, _: &mut Self::Context) {
        self.intake.backlog.done(bytes);
        // Once the stop has begun, what is still queued is skipped: the stop must not
        // wait for a backlog of fan-outs (nothing new was accepted since).
        if self.closing || self.intake.stopping() {
            // Accepted all the same: a durable history keeps them, so that a clean stop
            // loses nothing (keeping costs no fan-out).
            if self.store.is_some() {
                self.remember(entries);
            }
            return;
        }
        self.publish(entries);
    }
}

impl Handler<Relay> for Hub {
    type Result = ();

    fn handle(&mut self, Relay(events): Relay, _: &mut Self::Context) {
        if self.closing || self.intake.stopping() || events.is_empty() {
            return;
        }
        let entries = events.into_iter().map(|a| self.entry(a)).collect();
        self.publish(entries);
    }
}

impl Handler<Load> for Hub {
    type Result = ();

    fn handle(&mut self, Load(events): Load, _: &mut Self::Context) {
        let entries: Vec<Entry> = events.into_iter().map(|a| self.entry(a)).collect();
        log::info!("history: {} events loaded from the stream", entries.len());
        self.remember(entries);
        self.expire_history();
        self.loaded = true;
        self.lobby.set_newest(self.history.newest_id());
        self.lobby.open();
    }
}

impl Handler<Holds> for Hub {
    type Result = bool;

    fn handle(&mut self, Holds(id): Holds, _: &mut Self::Context) -> bool {
        self.history.after(&id).is_some()
    }
}

impl Handler<ListClients> for Hub {
    type Result = MessageResult<ListClients>;

    fn handle(
        &mut self,
        ListClients { limit }: ListClients,
        _: &mut Self::Context,
    ) -> Self::Result {
        self.tidy(None);
        let now = self.now();
        let mut newest: Vec<(&ClientId, &Client)> = self.registry.iter().collect();
        // Ids rise in admission order: they break ties (clients admitted together).
        type Listed<'a> = (&'a ClientId, &'a Client);
        let order = |(a_id, a): &Listed, (b_id, b): &Listed| (b.since, b_id).cmp(&(a.since, a_id));
        if newest.len() > limit && limit > 0 {
            newest.select_nth_unstable_by(limit - 1, order);
        }
        newest.truncate(limit);
        newest.sort_unstable_by(order);
        MessageResult(
            newest
                .into_iter()
                .map(|(_, c)| ClientInfo {
                    id: c.uuid,
                    peer: c.peer.map(|p| p.to_string()),
                    topics: c.filters.iter().map(ToString::to_string).collect(),
                    connected_secs: now.saturating_duration_since(c.since).as_secs(),
                    queued: c.tx.queued(),
                })
                .collect(),
        )
    }
}

impl Handler<Kick> for Hub {
    type Result = bool;

    fn handle(&mut self, Kick(uuid): Kick, _: &mut Self::Context) -> bool {
        self.tidy(None);
        // A scan: an admin's occasional request is not worth an index kept on every
        // connect and disconnect.
        let found = self.registry.iter().find(|(_, c)| c.uuid == uuid);
        match found.map(|(&id, _)| id) {
            Some(id) => {
                self.remove(id, Leave::Admin);
                true
            }
            None => false,
        }
    }
}

impl Handler<IsReady> for Hub {
    type Result = bool;

    fn handle(&mut self, _: IsReady, _: &mut Self::Context) -> bool {
        self.tidy(None);
        let linked = self.link.as_ref().is_none_or(|l| l.load(Ordering::Relaxed));
        !self.closing && !self.intake.stopping() && self.loaded && linked
    }
}

impl Handler<Shutdown> for Hub {
    type Result = ();

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) {
        self.closing = true;
        self.intake.stop();
        // Nobody is admitted from now on; those admitted meanwhile are registered, so
        // that their streams end with everyone else's.
        self.lobby.close();
        self.tidy(None);
        // Dropping the senders ends every stream. A client that is not reading never
        // lets its stream finish (its socket never becomes writable): the stop closes
        // every connection still open after its grace (`startup::Stopper`).
        let mut gone = 0;
        for client in self.registry.drain() {
            gone += 1;
            self.metrics.dropped.shutdown.inc();
            log::debug!("client {} dropped: shutdown", client.uuid);
        }
        self.lobby.removed(gone);
        self.metrics.clients.set(0);
        // Publishes still queued were handled before this (the stop refused new ones
        // before sending it): everything accepted is written before the file closes.
        if let Some(store) = self.store.take() {
            store.close();
        }
    }
}

#[cfg(test)]
mod tests;
