//! The replay history: the last `history_size` events, each with its topics and its
//! encoded frame, found by id in O(1).
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
    pub frame: Bytes,
    pub at: Instant,
}

#[derive(Debug)]
pub struct History {
    entries: VecDeque<Entry>,
    positions: HashMap<Box<str>, u64>,
    /// Sequence number of `entries[0]`.
    first_seq: u64,
    capacity: usize,
    ttl: Option<Duration>,
}

impl History {
    /// `ttl` of `None` keeps events until they are evicted by size.
    pub fn new(capacity: usize, ttl: Option<Duration>) -> Self {
        Self {
            entries: VecDeque::with_capacity(capacity.min(4096)),
            positions: HashMap::with_capacity(capacity.min(4096)),
            first_seq: 0,
            capacity,
            ttl,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn newest_id(&self) -> Option<&str> {
        self.entries.back().map(|e| &*e.id)
    }

    /// Keeps `entry`; answers the event evicted to make room, if any.
    pub fn push(&mut self, entry: Entry) -> Option<Entry> {
        if self.capacity == 0 {
            return None;
        }
        let evicted = if self.entries.len() == self.capacity {
            self.pop_oldest()
        } else {
            None
        };
        let seq = self.first_seq + self.entries.len() as u64;
        self.positions.insert(entry.id.clone(), seq);
        self.entries.push_back(entry);
        evicted
    }

    /// Drops events older than the TTL, passing each to `evicted`.
    pub fn expire(&mut self, now: Instant, mut evicted: impl FnMut(Entry)) {
        let Some(ttl) = self.ttl else { return };
        while self
            .entries
            .front()
            .is_some_and(|e| now.duration_since(e.at) >= ttl)
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
        self.positions.remove(&old.id);
        self.first_seq += 1;
        Some(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, at: Instant) -> Entry {
        Entry {
            id: id.into(),
            topics: Box::default(),
            frame: Bytes::new(),
            at,
        }
    }

    fn ids<'a>(entries: impl Iterator<Item = &'a Entry>) -> Vec<&'a str> {
        entries.map(|e| &*e.id).collect()
    }

    #[test]
    fn keeps_the_newest_events_and_finds_what_follows_an_id() {
        let now = Instant::now();
        let mut history = History::new(3, None);
        let evicted: Vec<_> = ["a", "b", "c", "d"]
            .into_iter()
            .filter_map(|id| history.push(entry(id, now)))
            .collect();
        assert_eq!(ids(evicted.iter()), ["a"]);
        assert_eq!(ids(history.all()), ["b", "c", "d"]);
        assert!(history.after("a").is_none(), "evicted");
        assert_eq!(ids(history.after("b").unwrap()), ["c", "d"]);
        assert_eq!(ids(history.after("d").unwrap()), Vec::<&str>::new());
        assert_eq!(history.newest_id(), Some("d"));
    }

    #[test]
    fn expires_by_age() {
        let start = Instant::now();
        let mut history = History::new(10, Some(Duration::from_secs(5)));
        history.push(entry("old", start));
        history.push(entry("new", start + Duration::from_secs(3)));
        let mut evicted = Vec::new();
        history.expire(start + Duration::from_secs(6), |e| evicted.push(e));
        assert_eq!(ids(evicted.iter()), ["old"]);
        assert_eq!(ids(history.all()), ["new"]);
        assert_eq!(ids(history.after("new").unwrap()), Vec::<&str>::new());
    }

    #[test]
    fn a_zero_capacity_keeps_nothing() {
        let mut history = History::new(0, None);
        assert!(history.push(entry("a", Instant::now())).is_none());
        assert_eq!(history.len(), 0);
        assert!(history.newest_id().is_none());
    }
}
