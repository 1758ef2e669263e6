//! Where clients arrive and leave without a round trip through the hub's thread.
//!
//! A round trip costs thread wake-ups on every connect (the hub's, then the handler's
//! for the answer), and a disconnect another: `strace` of 5,000 connect/disconnect
//! cycles counted 2 eventfd writes and 2.3 `epoll_wait` returns per cycle, against 0.5
//! for a bare actix-web stream. So a subscriber that connects without a position is
//! admitted here by its handler, under this small lock, and answered at once; a stream
//! that ends leaves its id here. Neither wakes the hub: it takes both lists whenever it
//! runs anyway, before any fan-out, heartbeat, listing or stop, and at least once a
//! second (its housekeeping). Waking it for each (tried first) cost as much as the
//! round trip: 10,000 connects took 1.16-1.26 s of server CPU either way, 0.94-0.96 s
//! without.
//!
//! What the delay changes: the client count (`/stats`, `ssehub_clients`) includes a
//! client once the hub has taken it, within a second; a publish counts it among its
//! `receivers` at once ([`Lobby::receivers`]); a closed stream's client leaves the
//! registry within a second, or before the next fan-out, never at a failed send.
//!
//! No gap, no duplicate (SPEC §1): a client joins with the newest id as its position,
//! read under this lock; before fanning an event out, the hub takes the arrivals and
//! sets the newest id to that event's, under the same lock. So a client either arrived
//! before (it is registered, and gets the event) or after (its position is the event's
//! id, which it need not get).

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use uuid::Uuid;

use crate::auth::Sight;
use crate::conn::ConnHandle;
use crate::error::ApiError;
use crate::topic::{Topic, TopicFilter};

use super::RETRY_AFTER_FULL_SECS;
use super::client::ClientId;
use super::queue;

/// A client admitted by its handler, for the hub to register.
pub struct Arrival {
    pub id: ClientId,
    /// When it was admitted (its place in `/clients`, most recent first).
    pub since: std::time::Instant,
    pub uuid: Uuid,
    pub peer: Option<SocketAddr>,
    pub filters: Vec<TopicFilter>,
    pub sight: Sight,
    pub conn: ConnHandle,
    pub tx: queue::Sender,
}

#[derive(Default)]
pub struct Lobby(Mutex<Waiting>);

#[derive(Default)]
struct Waiting {
    arrivals: Vec<Arrival>,
    leavers: Vec<ClientId>,
    /// The position a client joining now is given: the newest id in history, or that
    /// of the event being fanned out.
    newest: Option<Box<str>>,
    next_id: u64,
    /// Clients admitted and not yet removed from the registry: what `max_clients`
    /// bounds, on both ways in.
    admitted: usize,
    /// Whether the hub takes clients: not before a cluster node has loaded its history,
    /// and not once the stop has begun.
    open: bool,
    closing: bool,
}

impl Lobby {
    pub fn new(open: bool) -> Self {
        Self(Mutex::new(Waiting {
            open,
            ..Waiting::default()
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        // Nothing panics while holding it; a poisoned lock still holds whole lists.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a client without a position: its id and first bytes (`preamble`, then
    /// the newest id as its position), or the refusal the hub would have made.
    pub fn join(
        &self,
        preamble: &Bytes,
        max_clients: usize,
        make: impl FnOnce(ClientId) -> Arrival,
    ) -> Result<(ClientId, Vec<Bytes>), ApiError> {
        let mut waiting = self.lock();
        waiting.admit(max_clients)?;
        let id = waiting.new_id();
        let mut head = vec![preamble.clone()];
        head.extend(waiting.newest.as_deref().map(crate::sse::position));
        waiting.arrivals.push(make(id));
        Ok((id, head))
    }

    /// Admits a client that the hub registers itself (one with a position, whose
    /// replay the hub makes): called by the hub.
    pub fn admit(&self, max_clients: usize) -> Result<ClientId, ApiError> {
        let mut waiting = self.lock();
        waiting.admit(max_clients)?;
        Ok(waiting.new_id())
    }

    /// A client's stream has ended.
    pub fn leave(&self, id: ClientId) {
        self.lock().leavers.push(id);
    }

    /// Called by the hub when it looks: `register` is given every client that arrived
    /// since, under this lock (so that a publisher counting receivers finds each client
    /// either here or in the topic index, never in neither); answers those that left.
    /// `newest`: the id of an event about to be fanned out, the position of later joins.
    pub fn take(&self, newest: Option<&str>, register: impl FnOnce(Vec<Arrival>)) -> Vec<ClientId> {
        let mut waiting = self.lock();
        if let Some(id) = newest {
            waiting.newest = Some(id.into());
        }
        register(std::mem::take(&mut waiting.arrivals));
        std::mem::take(&mut waiting.leavers)
    }

    /// The receivers of an event published to `topics`: those `registered` counts (read
    /// from the topic index, under this lock: see [`take`](Self::take)) and the clients
    /// not yet registered whose filters match, who will get the event too.
    pub fn receivers(&self, topics: &[Topic], registered: impl FnOnce() -> usize) -> usize {
        let waiting = self.lock();
        let arriving = waiting
            .arrivals
            .iter()
            .filter(|a| super::wants(&a.filters, topics))
            .count();
        registered() + arriving
    }

    /// Called by the hub when its history changed otherwise (loaded, expired).
    pub fn set_newest(&self, newest: Option<&str>) {
        self.lock().newest = newest.map(Into::into);
    }

    /// Called by the hub for each client it removes from the registry.
    pub fn removed(&self, count: usize) {
        let mut waiting = self.lock();
        waiting.admitted = waiting.admitted.saturating_sub(count);
    }

    /// Called by the hub once it takes clients (a cluster node, history loaded).
    pub fn open(&self) {
        self.lock().open = true;
    }

    /// Called by the hub at the stop: nobody is admitted from now on.
    pub fn close(&self) {
        self.lock().closing = true;
    }
}

impl Waiting {
    fn admit(&mut self, max_clients: usize) -> Result<(), ApiError> {
        if self.closing {
            return Err(ApiError::ShuttingDown);
        }
        if !self.open {
            return Err(ApiError::Unavailable {
                reason: "cluster: history not loaded from Redis yet",
                retry_after: 1,
            });
        }
        if self.admitted >= max_clients {
            return Err(ApiError::Unavailable {
                reason: "too many clients (max_clients reached)",
                retry_after: RETRY_AFTER_FULL_SECS,
            });
        }
        self.admitted += 1;
        Ok(())
    }

    fn new_id(&mut self) -> ClientId {
        let id = ClientId(self.next_id);
        self.next_id += 1;
        id
    }
}
