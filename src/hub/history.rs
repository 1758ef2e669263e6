//! The replay history: the newest events, bounded by count (`history_size`), by the
//! bytes of their frames (`history_max_bytes`) and by age (`history_ttl_secs`), each
//! with its topics and its encoded frame, found by id in O(1).
//!
//! Entries sit in a ring in publish order; each carries a sequence number, and a map
//! from id to sequence number gives an entry's position as `seq - first_seq`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::topic::Topic;

/// An event as the hub keeps it: its id assigned and its bytes encoded once.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: Box<str>,
    pub topics: Box<[Topic]>,
    /// Those of `topics` that are private (SPEC §7): only a client whose token covers
    /// all of them gets the event.
    pub private: Box<[Topic]>,
    pub frame: Bytes,
    /// When it was accepted: its age for the TTL.
    pub at: Instant,
    /// The ledger's reservation of `id`, released when the entry leaves history (and
    /// its key in the durable store: reservations rise in publish order).
    pub reservation: u64,
    /// Whether the server chose `id`: after a restart, the id clock resumes after the
    /// newest such id.
    pub server_id: bool,
}

/// How much history is kept.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub events: usize,
    pub bytes: usize,
    pub ttl: Option<Duration>,
}

#[derive(Debug)]
pub struct History {
    entries: VecDeque<Entry>,
    positions: HashMap<Box<str>, u64>,
    /// Sequence number of `entries[0]`.
    first_seq: u64,
    /// Sum of the entries' frame lengths.
    bytes: usize,
    limits: Limits,
}

impl History {
    pub fn new(limits: Limits) -> Self {
        Self {
            entries: VecDeque::with_capacity(limits.events.min(4096)),
            positions: HashMap::with_capacity(limits.events.min(4096)),
            first_seq: 0,
            bytes: 0,
            limits,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn newest_id(&self) -> Option<&str> {
        self.entries.back().map(|e| &*e.id)
    }

    /// Keeps `entry`, passing to `evicted` every entry that leaves to make room (or
    /// `entry` itself, when its frame alone is over the byte bound).
    ///
    /// Entries past the TTL at `entry.at` leave first. That is what keeps ids unique:
    /// the ledger frees an id once its entry is past the TTL, so an entry that reuses
    /// it always finds the old one gone, whenever the hub last ran its expiry.
    pub fn push(&mut self, entry: Entry, mut evicted: impl FnMut(Entry)) {
        self.expire(entry.at, &mut evicted);
        if self.limits.events == 0 || entry.frame.len() > self.limits.bytes {
            evicted(entry);
            return;
        }
        while self.entries.len() >= self.limits.events
            || self.bytes + entry.frame.len() > self.limits.bytes
        {
            // unwrap: the bounds above hold for an empty history.
            evicted(self.pop_oldest().unwrap());
        }
        // An id still held is refused before it gets here, except in a cluster whose
        // nodes keep different `history_size`s: there the newer entry wins the id.
        let seq = self.first_seq + self.entries.len() as u64;
        self.positions.insert(entry.id.clone(), seq);
        self.bytes += entry.frame.len();
        self.entries.push_back(entry);
    }

    /// Drops events past the TTL at `now`, passing each to `evicted`.
    pub fn expire(&mut self, now: Instant, mut evicted: impl FnMut(Entry)) {
        let Some(ttl) = self.limits.ttl else { return };
        while self
            .entries
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) >= ttl)
        {
            // unwrap: the loop condition saw a front entry.
            evicted(self.pop_oldest().unwrap());
        }
    }

    /// Every event after `id`, oldest first; `None` when `id` is not held.
    pub fn after(&self, id: &str) -> Option<impl Iterator<Item = &Entry>> {
        let seq = *self.positions.get(id)?;
        Some(self.entries.range((seq - self.first_seq + 1) as usize..))
    }

    pub fn all(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    fn pop_oldest(&mut self) -> Option<Entry> {
        let old = self.entries.pop_front()?;
        // Unless a newer entry has taken the id since (see `push`).
        if self.positions.get(&old.id) == Some(&self.first_seq) {
            self.positions.remove(&old.id);
        }
        self.first_seq += 1;
        self.bytes -= old.frame.len();
        Some(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP_3: Limits = Limits {
        events: 3,
        bytes: usize::MAX,
        ttl: None,
    };

    fn entry(id: &str, at: Instant, bytes: usize) -> Entry {
        Entry {
            id: id.into(),
            topics: Box::default(),
            private: Box::default(),
            frame: Bytes::from(vec![b'x'; bytes]),
            at,
            reservation: 0,
            server_id: false,
        }
    }

    fn ids<'a>(entries: impl Iterator<Item = &'a Entry>) -> Vec<&'a str> {
        entries.map(|e| &*e.id).collect()
    }

    fn push_all(history: &mut History, entries: Vec<Entry>) -> Vec<Entry> {
        let mut evicted = Vec::new();
        for e in entries {
            history.push(e, |e| evicted.push(e));
        }
        evicted
    }

    #[test]
    fn keeps_the_newest_events_and_finds_what_follows_an_id() {
        let now = Instant::now();
        let mut history = History::new(KEEP_3);
        let list = ["a", "b", "c", "d"].map(|id| entry(id, now, 1));
        let evicted = push_all(&mut history, list.into());
        assert_eq!(ids(evicted.iter()), ["a"]);
        assert_eq!(ids(history.all()), ["b", "c", "d"]);
        assert!(history.after("a").is_none(), "evicted");
        assert_eq!(ids(history.after("b").unwrap()), ["c", "d"]);
        assert_eq!(ids(history.after("d").unwrap()), Vec::<&str>::new());
        assert_eq!(history.newest_id(), Some("d"));
    }

    #[test]
    fn the_frames_bytes_are_bounded_whatever_the_count() {
        let now = Instant::now();
        let limits = Limits {
            events: 1000,
            bytes: 1000,
            ttl: None,
        };
        let mut history = History::new(limits);
        let evicted = push_all(
            &mut history,
            (0..10).map(|i| entry(&i.to_string(), now, 300)).collect(),
        );
        assert_eq!(ids(history.all()), ["7", "8", "9"], "900 bytes kept");
        assert_eq!(history.bytes, 900);
        assert_eq!(evicted.len(), 7);
        // One frame over the whole bound is not kept at all.
        let evicted = push_all(&mut history, vec![entry("huge", now, 1001)]);
        assert_eq!(ids(evicted.iter()), ["huge"]);
        assert_eq!(ids(history.all()), ["7", "8", "9"]);
    }

    #[test]
    fn expires_by_age() {
        let start = Instant::now();
        let limits = Limits {
            ttl: Some(Duration::from_secs(5)),
            ..KEEP_3
        };
        let mut history = History::new(limits);
        push_all(
            &mut history,
            vec![
                entry("old", start, 1),
                entry("new", start + Duration::from_secs(3), 1),
            ],
        );
        let mut evicted = Vec::new();
        history.expire(start + Duration::from_secs(6), |e| evicted.push(e));
        assert_eq!(ids(evicted.iter()), ["old"]);
        assert_eq!(ids(history.all()), ["new"]);
        assert_eq!(ids(history.after("new").unwrap()), Vec::<&str>::new());
    }

    #[test]
    fn an_id_reused_past_the_ttl_replaces_the_expired_entry_before_any_expiry_ran() {
        let start = Instant::now();
        let ttl = Duration::from_secs(5);
        let mut history = History::new(Limits {
            ttl: Some(ttl),
            ..KEEP_3
        });
        let evicted = push_all(
            &mut history,
            vec![entry("a", start, 1), entry("a", start + ttl, 1)],
        );
        assert_eq!(evicted.len(), 1, "the old 'a' left as the new one came");
        assert_eq!(evicted[0].at, start);
        assert_eq!(history.len(), 1);
        assert_eq!(history.all().next().unwrap().at, start + ttl);
    }

    #[test]
    fn an_id_held_twice_names_the_newer_entry_until_it_leaves() {
        let now = Instant::now();
        let mut history = History::new(KEEP_3);
        push_all(
            &mut history,
            ["a", "b", "a"].map(|id| entry(id, now, 1)).into(),
        );
        assert_eq!(history.after("a").unwrap().count(), 0, "the newer 'a'");
        // The older 'a' leaves first; the id still names the newer one.
        push_all(&mut history, vec![entry("c", now, 1)]);
        assert_eq!(ids(history.after("a").unwrap()), ["c"]);
        push_all(&mut history, ["d", "e"].map(|id| entry(id, now, 1)).into());
        assert!(history.after("a").is_none(), "gone with the newer 'a'");
    }

    #[test]
    fn a_zero_capacity_keeps_nothing() {
        let mut history = History::new(Limits {
            events: 0,
            ..KEEP_3
        });
        let evicted = push_all(&mut history, vec![entry("a", Instant::now(), 1)]);
        assert_eq!(evicted.len(), 1);
        assert_eq!(history.len(), 0);
        assert!(history.newest_id().is_none());
    }
}
