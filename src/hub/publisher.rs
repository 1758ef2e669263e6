//! The publish side of the hub, for `POST /broadcast`: accepts events and answers
//! without waiting for the hub.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use actix::Addr;
use bytes::Bytes;

use crate::error::ApiError;
use crate::event::Event;
use crate::sse;

use super::Hub;
use super::history::Entry;
use super::index::TopicIndex;
use super::ledger::{Ledger, Retention};
use super::messages::Publish;

/// What a publisher is told: the events' ids and how many clients they reached.
#[derive(Debug)]
pub struct Accepted {
    pub ids: Vec<Box<str>>,
    /// Clients the events matched when they were accepted (summed over a batch).
    pub receivers: u64,
}

/// Publishes handed to the hub and not yet fanned out, beyond which a publish is
/// refused with 503: `do_send` ignores the mailbox's capacity, so without this bound a
/// publisher faster than the fan-out would grow the hub's mailbox without limit (and
/// every `send` to the hub, connects included, would wait behind it). At the measured
/// 1M deliveries/s this is seconds of work even for a few subscribers each.
pub const MAX_PENDING_PUBLISHES: usize = 10_000;

/// Cheap to clone: one per worker, all sharing the hub's ledger and topic index.
#[derive(Clone)]
pub struct Publisher {
    pub(super) hub: Addr<Hub>,
    pub(super) ledger: Arc<Mutex<Ledger>>,
    /// Read here only to count receivers; the hub alone writes it.
    pub(super) index: Arc<RwLock<TopicIndex>>,
    /// `Publish` messages in the hub's mailbox; the hub counts them down.
    pub(super) pending: Arc<AtomicUsize>,
    pub(super) retention: Retention,
}

impl Publisher {
    /// Validated events in, ids and receivers out; the hub fans them out afterwards.
    pub fn publish(&self, events: Vec<Event>, batch: bool) -> Result<Accepted, ApiError> {
        if self.pending.load(Ordering::Relaxed) >= MAX_PENDING_PUBLISHES {
            return Err(ApiError::Unavailable {
                reason: "hub: too many publishes waiting to be fanned out",
                retry_after: 1,
            });
        }
        // Work that needs no order happens before the lock: encoding, and counting the
        // receivers (a count at acceptance, not a promise of delivery).
        let bodies: Vec<Bytes> = events.iter().map(sse::encode_body).collect();
        let receivers = {
            // unwrap: the hub never panics while holding the index.
            let index = self.index.read().unwrap();
            events.iter().map(|e| index.count(&e.topics) as u64).sum()
        };

        // unwrap: the ledger's users never panic while holding it.
        let mut ledger = self.ledger.lock().unwrap();
        let now = Instant::now();
        let ids = ledger.accept(&events, batch, self.retention, now)?;
        let entries = events
            .into_iter()
            .zip(&ids)
            .zip(bodies)
            .map(|((event, id), body)| Entry {
                frame: sse::frame(id, &body),
                id: id.clone(),
                topics: event.topics,
                at: now,
            })
            .collect();
        // Still under the lock, so the hub's mailbox holds events in id order.
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.hub.do_send(Publish { entries });
        drop(ledger);
        Ok(Accepted { ids, receivers })
    }
}
