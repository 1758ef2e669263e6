//! The publish side of the hub, for `POST /broadcast`: accepts events and answers
//! without waiting for the hub.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use actix::Addr;
use bytes::Bytes;

use crate::error::ApiError;
use crate::event::Publication;
use crate::sse;
use crate::topic::Patterns;

use super::Hub;
use super::clock::Clock;
use super::history::Entry;
use super::index::TopicIndex;
use super::ledger::{Ledger, Retention};
use super::lobby::Lobby;
use super::messages::Publish;

/// What a publisher is told: the events' ids and how many clients they reached.
#[derive(Debug)]
pub struct Accepted {
    pub ids: Vec<Box<str>>,
    /// Clients the events matched when they were accepted (summed over a batch); none
    /// in a cluster, where nodes fan out what they read back (SPEC §4).
    pub receivers: Option<u64>,
}

/// Publishes handed to the hub and not yet fanned out, beyond which a publish is
/// refused with 503: `do_send` ignores the mailbox's capacity, so without this bound a
/// publisher faster than the fan-out would grow the hub's mailbox without limit (and
/// every `send` to the hub, connects included, would wait behind it). At the measured
/// 1M deliveries/s this is seconds of work even for a few subscribers each.
pub const MAX_PENDING_PUBLISHES: usize = 10_000;

/// Bytes of frames handed to the hub and not yet fanned out, beyond which a publish is
/// refused with 503: the count alone would let 10,000 publishes of 1 MiB hold 10 GiB.
/// 64 MiB is as much as the whole default history, and at 1 KiB events still a
/// second of the fan-out's fastest pace to a thousand clients.
pub const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;

/// Publishes waiting for the fan-out, by count and by bytes. Handlers add under the
/// ledger's lock (so the check and the add are one step); the hub subtracts.
#[derive(Debug, Default)]
pub struct Backlog {
    publishes: AtomicUsize,
    bytes: AtomicUsize,
    /// With durable history: bytes of frames the hub has kept and the store's writer
    /// has not yet written. The hub never waits for the disk, so a disk that falls
    /// behind is felt here, as a `503`, rather than as memory that grows.
    pub unwritten: Arc<AtomicUsize>,
}

impl Backlog {
    /// Counts a publish in, or refuses it when either bound would be passed. A single
    /// publish larger than the byte budget still goes through when nothing waits, so
    /// that every publish within `max_body_bytes` can be made.
    fn admit(&self, bytes: usize, max_bytes: usize) -> Result<(), ApiError> {
        let waiting = self.bytes.load(Ordering::Relaxed);
        if self.publishes.load(Ordering::Relaxed) >= MAX_PENDING_PUBLISHES
            || (waiting > 0 && waiting + bytes > max_bytes)
        {
            return Err(ApiError::Unavailable {
                reason: "hub: too many publishes waiting to be fanned out",
                retry_after: 1,
            });
        }
        if self.unwritten.load(Ordering::Relaxed) > max_bytes {
            return Err(ApiError::Unavailable {
                reason: "history store: writing to disk is behind",
                retry_after: 1,
            });
        }
        self.publishes.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Called by the hub for each publish it has handled (or skipped).
    pub fn done(&self, bytes: usize) {
        self.publishes.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The state publish handlers share with the hub.
#[derive(Debug, Default)]
pub struct Intake {
    pub ledger: Mutex<Ledger>,
    pub backlog: Backlog,
    /// Set when the stop begins, under the ledger's lock: from then on nothing is
    /// accepted, and the hub skips what is still queued, so the stop never waits for a
    /// backlog of fan-outs.
    stopping: AtomicBool,
}

impl Intake {
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Refuses every publish from now on. Under the ledger's lock, so a publish is
    /// either refused or was handed to the hub before this returns.
    pub fn stop(&self) {
        // unwrap: the ledger's users never panic while holding it.
        let _ledger = self.ledger.lock().unwrap();
        self.stopping.store(true, Ordering::Relaxed);
    }
}

/// Cheap to clone: one per worker, all sharing the hub's intake and topic index.
#[derive(Clone)]
pub struct Publisher {
    pub(super) hub: Addr<Hub>,
    pub(super) intake: Arc<Intake>,
    /// Read here only to count receivers; the hub alone writes it.
    pub(super) index: Arc<RwLock<TopicIndex>>,
    /// Clients admitted and not yet registered count as receivers too.
    pub(super) lobby: Arc<Lobby>,
    pub(super) retention: Retention,
    pub(super) max_pending_bytes: usize,
    pub(super) private_topics: Arc<Patterns>,
    pub(super) time: Clock,
}

impl Publisher {
    /// Refuses every publish from now on (503), and tells the hub to skip those it
    /// has not fanned out yet.
    pub fn stop(&self) {
        self.intake.stop();
    }

    /// Whether the stop has begun: from then on every publish is refused.
    pub fn stopping(&self) -> bool {
        self.intake.stopping()
    }

    /// Validated events in, ids and receivers out; the hub fans them out afterwards.
    pub fn publish(&self, publication: Publication) -> Result<Accepted, ApiError> {
        // Work that needs no order happens before the lock: encoding, and counting the
        // receivers (a count at acceptance, not a promise of delivery: the clients
        // registered, and those admitted whom the hub has yet to register). The index is
        // read one event at a time, so a batch never holds the hub's writes back.
        let bodies: Vec<Bytes> = publication.events.iter().map(sse::encode_body).collect();
        let receivers = publication
            .events
            .iter()
            .map(|e| {
                // unwrap: the hub never panics while holding the index.
                let registered = || self.index.read().unwrap().count(&e.topics);
                self.lobby.receivers(&e.topics, registered) as u64
            })
            .sum();

        // unwrap: the ledger's users never panic while holding it.
        let mut ledger = self.intake.ledger.lock().unwrap();
        if self.intake.stopping() {
            return Err(ApiError::ShuttingDown);
        }
        let now = self.time.now();
        let reserved = ledger.accept(&publication, self.retention, now)?;
        let entries: Vec<Entry> = publication
            .events
            .into_iter()
            .zip(&reserved.ids)
            .zip(bodies)
            .zip(reserved.first_reservation..)
            .map(|(((event, id), body), reservation)| Entry {
                frame: sse::frame(id, &body),
                id: id.clone(),
                server_id: event.id.is_none(),
                private: self.private_topics.select(&event.topics),
                topics: event.topics,
                at: now,
                reservation,
            })
            .collect();
        let bytes = entries.iter().map(|e| e.frame.len()).sum();
        if let Err(refused) = self.intake.backlog.admit(bytes, self.max_pending_bytes) {
            // Nothing was handed on: the ids go back, as if never asked for.
            for (entry, reservation) in entries.iter().zip(reserved.first_reservation..) {
                ledger.release(&entry.id, reservation);
            }
            return Err(refused);
        }
        // Still under the lock, so the hub's mailbox holds events in id order.
        self.hub.do_send(Publish { entries, bytes });
        drop(ledger);
        Ok(Accepted {
            ids: reserved.ids,
            receivers: Some(receivers),
        })
    }
}
