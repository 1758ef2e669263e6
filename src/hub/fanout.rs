//! The fan-out: queueing an event, a batch or a heartbeat for every client it reaches.
//!
//! Nothing here waits: every queue is offered its item with `try_send`, and a client
//! whose queue is full is put on the leaving list, to be dropped by the hub once the
//! round is over. Each event's frame was encoded once; what is queued are clones of
//! it (reference-count bumps), never copies.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::sync::Arc;

use bytes::Bytes;

use crate::topic::Topic;

use super::client::{Client, ClientId, Item, Leave, Selection};
use super::history::Entry;
use super::queue::Refused;
use super::registry::Registry;

#[derive(Default)]
pub struct FanOut {
    /// Counts events fanned out: what `Client::matched` (once per event) and
    /// `Client::mark` (last queued, for heartbeats) record.
    seq: u64,
    /// `seq` when the previous heartbeat round ran.
    seq_at_heartbeat: u64,
    /// Clients found full (or gone) during a round; the hub removes them after it.
    leaving: Vec<(ClientId, Leave)>,
}

impl FanOut {
    /// Queues one event's frame for every client it reaches: everyone when it has no
    /// topic (a global broadcast, never private), else the subscribers of its topics,
    /// once each, that may see its private topics. Answers the number of clients it
    /// was queued for.
    pub fn event(
        &mut self,
        registry: &mut Registry,
        topics: &[Topic],
        private: &[Topic],
        frame: &Bytes,
    ) -> u64 {
        self.seq += 1;
        let (seq, leaving) = (self.seq, &mut self.leaving);
        let item = Item::Frame(frame.clone());
        let mut sent = 0;
        if topics.is_empty() {
            for (&id, client) in registry.iter_mut() {
                sent += u64::from(offer(id, client, &item, seq, leaving));
            }
        } else {
            registry.for_each_reached(topics, seq, |id, client| {
                if client.sees(private) {
                    sent += u64::from(offer(id, client, &item, seq, leaving));
                }
            });
        }
        sent
    }

    /// Queues a batch: each client it reaches gets one item holding, in order, the
    /// events that match it. Which events is a bitset over the batch (128 bytes for
    /// 1000 events), kept only for clients that topic events reach, and shared by the
    /// clients that match the same events; global events go to everyone without being
    /// listed per client. The frames themselves are shared by all. Answers the number
    /// of deliveries (events × clients).
    pub fn batch(&mut self, registry: &mut Registry, entries: &[Entry]) -> u64 {
        let words = entries.len().div_ceil(64);
        let mut everyone = vec![0u64; words];
        let mut picks: HashMap<ClientId, Vec<u64>> = HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            self.seq += 1;
            let (word, bit) = (i / 64, 1u64 << (i % 64));
            if entry.topics.is_empty() {
                everyone[word] |= bit;
                continue;
            }
            registry.for_each_reached(&entry.topics, self.seq, |id, client| {
                if client.sees(&entry.private) {
                    picks.entry(id).or_insert_with(|| vec![0; words])[word] |= bit;
                }
            });
        }

        let frames: Arc<[Bytes]> = entries.iter().map(|e| e.frame.clone()).collect();
        let select = |picks: Vec<u64>| {
            Arc::new(Selection {
                frames: frames.clone(),
                picks: picks.into(),
            })
        };
        let (seq, leaving) = (self.seq, &mut self.leaving);
        let mut sent = 0;
        if everyone.iter().any(|&w| w != 0) {
            let selection = select(everyone.clone());
            let (item, count) = (Item::Batch(selection.clone()), selection.count());
            for (&id, client) in registry.iter_mut() {
                if !picks.contains_key(&id) && offer(id, client, &item, seq, leaving) {
                    sent += count;
                }
            }
        }
        let mut shared: HashMap<Vec<u64>, Arc<Selection>> = HashMap::new();
        for (id, mut bits) in picks {
            bits.iter_mut().zip(&everyone).for_each(|(w, e)| *w |= e);
            let selection = match shared.entry(bits) {
                Slot::Occupied(slot) => slot.get().clone(),
                Slot::Vacant(slot) => {
                    let selection = select(slot.key().clone());
                    slot.insert(selection).clone()
                }
            };
            let count = selection.count();
            if let Some(client) = registry.get_mut(id)
                && offer(id, client, &Item::Batch(selection), seq, leaving)
            {
                sent += count;
            }
        }
        sent
    }

    /// Sends a comment to every client that was sent nothing since the last round.
    pub fn heartbeat(&mut self, registry: &mut Registry, beat: &Bytes) {
        let idle_since = self.seq_at_heartbeat;
        let item = Item::Frame(beat.clone());
        for (&id, client) in registry.iter_mut() {
            if client.mark <= idle_since {
                // A heartbeat is not an event: the client's mark stays, so it is
                // still idle at the next round unless an event reaches it.
                let mark = client.mark;
                offer(id, client, &item, mark, &mut self.leaving);
            }
        }
        self.seq_at_heartbeat = self.seq;
    }

    /// The fan-out's current `seq`: a new client's mark.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The clients found leaving since the last call.
    pub fn take_leaving(&mut self) -> Vec<(ClientId, Leave)> {
        std::mem::take(&mut self.leaving)
    }
}

/// Queues `item` for a client without waiting. A full queue means the client is not
/// reading: it goes on the leaving list, as does a client whose stream is gone.
fn offer(
    id: ClientId,
    client: &mut Client,
    item: &Item,
    seq: u64,
    leaving: &mut Vec<(ClientId, Leave)>,
) -> bool {
    match client.tx.try_send(item.clone()) {
        Ok(()) => {
            client.mark = seq;
            true
        }
        Err(Refused::Full) => {
            leaving.push((id, Leave::Slow));
            false
        }
        Err(Refused::Closed) => {
            leaving.push((id, Leave::Gone));
            false
        }
    }
}
