//! The publish side of the hub, for `POST /broadcast`: accepts events and answers
//! without waiting for the hub.

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
use super::ledger::Ledger;
use super::messages::Publish;

/// What a publisher is told: the events' ids and how many clients they reached.
#[derive(Debug)]
pub struct Accepted {
    pub ids: Vec<Box<str>>,
    /// Clients the events matched when they were accepted (summed over a batch).
    pub receivers: u64,
}

/// Cheap to clone: one per worker, all sharing the hub's ledger and topic index.
#[derive(Clone)]
pub struct Publisher {
    pub(super) hub: Addr<Hub>,
    pub(super) ledger: Arc<Mutex<Ledger>>,
    /// Read here only to count receivers; the hub alone writes it.
    pub(super) index: Arc<RwLock<TopicIndex>>,
    pub(super) history_size: usize,
}

impl Publisher {
    /// Validated events in, ids and receivers out; the hub fans them out afterwards.
    pub fn publish(&self, events: Vec<Event>, batch: bool) -> Result<Accepted, ApiError> {
        // The expensive part, encoding, happens before the lock.
        let bodies: Vec<Bytes> = events.iter().map(sse::encode_body).collect();

        // unwrap: the ledger's users never panic while holding it.
        let mut ledger = self.ledger.lock().unwrap();
        let ids = ledger.accept(&events, batch, self.history_size)?;
        let receivers = {
            // unwrap: the hub never panics while holding the index.
            let index = self.index.read().unwrap();
            events.iter().map(|e| index.count(&e.topics) as u64).sum()
        };
        let at = Instant::now();
        let entries = events
            .into_iter()
            .zip(&ids)
            .zip(bodies)
            .map(|((event, id), body)| Entry {
                frame: sse::frame(id, &body),
                id: id.clone(),
                topics: event.topics,
                at,
            })
            .collect();
        // Still under the lock, so the hub's mailbox holds events in id order.
        self.hub.do_send(Publish { entries });
        drop(ledger);
        Ok(Accepted { ids, receivers })
    }
}
