//! Event ids in flight or in history, shared by the publish handlers and the hub.
//!
//! A publish must not wait for the hub (PERF-NOTES: a publish that awaits the hub's
//! answer queues behind the fan-out's wake-ups and throttles publishers), yet server
//! ids must follow publish order and a publisher's id still in history is a conflict.
//! So a handler takes this small lock, checks and reserves ids, and hands the events to
//! the hub before letting go: mailbox order is id order, and an id is "held" from the
//! moment it is accepted until the hub evicts its event from history (or its TTL ends).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::error::ApiError;
use crate::event::Event;

use super::ids::IdClock;

#[derive(Debug, Default)]
pub struct Ledger {
    ids: IdClock,
    /// Ids of events accepted and not yet evicted from history, with when they were
    /// accepted: an id past the history's TTL is free again even before the hub has
    /// run its expiry.
    held: HashMap<Box<str>, Instant>,
    /// Set at shutdown: nothing more is accepted, so nothing accepted is lost.
    closed: bool,
}

/// What the ledger needs to know of the history.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// `history_size` 0 keeps nothing, so nothing is held either.
    pub size: usize,
    pub ttl: Option<Duration>,
}

impl Ledger {
    /// Checks the events' own ids, assigns the missing ones and reserves them all.
    pub fn accept(
        &mut self,
        events: &[Event],
        batch: bool,
        retention: Retention,
        now: Instant,
    ) -> Result<Vec<Box<str>>, ApiError> {
        if self.closed {
            return Err(ApiError::shutting_down());
        }
        for (i, event) in events.iter().enumerate() {
            if let Some(id) = event
                .id
                .as_ref()
                .filter(|id| self.holds(id, retention, now))
            {
                let field = if batch {
                    format!("[{i}].id")
                } else {
                    "id".into()
                };
                return Err(ApiError::Conflict {
                    field,
                    reason: format!("{id:?} is already in the history"),
                });
            }
        }
        // A server id must not collide with a publisher's id in the same batch either.
        let chosen: HashSet<&str> = events.iter().filter_map(|e| e.id.as_deref()).collect();
        let mut ids = Vec::with_capacity(events.len());
        for event in events {
            ids.push(match &event.id {
                Some(id) => id.clone(),
                None => loop {
                    let id = self.ids.next_id();
                    if !chosen.contains(&*id) && !self.holds(&id, retention, now) {
                        break id;
                    }
                },
            });
        }
        if retention.size > 0 {
            self.held.extend(ids.iter().map(|id| (id.clone(), now)));
        }
        Ok(ids)
    }

    /// Called by the hub for each event it evicts from history.
    pub fn release(&mut self, id: &str) {
        self.held.remove(id);
    }

    pub fn close(&mut self) {
        self.closed = true;
    }

    fn holds(&self, id: &str, retention: Retention, now: Instant) -> bool {
        self.held.get(id).is_some_and(|at| {
            retention
                .ttl
                .is_none_or(|ttl| now.duration_since(*at) < ttl)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Retention = Retention {
        size: 10,
        ttl: None,
    };

    fn event(id: Option<&str>) -> Event {
        Event {
            event: None,
            data: "x".into(),
            topics: Box::default(),
            id: id.map(Into::into),
            retry: None,
        }
    }

    #[test]
    fn a_held_id_conflicts_until_released() {
        let (mut ledger, now) = (Ledger::default(), Instant::now());
        assert_eq!(
            ledger
                .accept(&[event(Some("a"))], false, KEEP, now)
                .unwrap(),
            vec!["a".into()]
        );
        let err = ledger
            .accept(&[event(None), event(Some("a"))], true, KEEP, now)
            .unwrap_err();
        assert_eq!(err.to_string(), "[1].id: \"a\" is already in the history");
        ledger.release("a");
        assert!(ledger.accept(&[event(Some("a"))], false, KEEP, now).is_ok());
    }

    #[test]
    fn an_id_past_the_ttl_is_free_again() {
        let (mut ledger, now) = (Ledger::default(), Instant::now());
        let ttl = Retention {
            size: 10,
            ttl: Some(Duration::from_secs(1)),
        };
        ledger.accept(&[event(Some("a"))], false, ttl, now).unwrap();
        assert!(ledger.accept(&[event(Some("a"))], false, ttl, now).is_err());
        let later = now + Duration::from_secs(2);
        assert!(
            ledger
                .accept(&[event(Some("a"))], false, ttl, later)
                .is_ok()
        );
    }

    #[test]
    fn a_server_id_never_repeats_a_publisher_id_of_the_same_batch() {
        let (mut ledger, now) = (Ledger::default(), Instant::now());
        // Publisher ids that are exactly what the server would issue next.
        let mut probe = IdClock::default();
        let guesses: Vec<Box<str>> = (0..50).map(|_| probe.next_id()).collect();
        let mut batch = vec![event(None)];
        batch.extend(guesses.iter().map(|g| event(Some(g))));
        let ids = ledger.accept(&batch, true, KEEP, now).unwrap();
        assert!(
            !guesses.contains(&ids[0]),
            "{} was chosen by a publisher",
            ids[0]
        );
    }

    #[test]
    fn without_history_nothing_is_held_and_closing_refuses() {
        let (mut ledger, now) = (Ledger::default(), Instant::now());
        let none = Retention { size: 0, ttl: None };
        ledger
            .accept(&[event(Some("a"))], false, none, now)
            .unwrap();
        assert!(ledger.accept(&[event(Some("a"))], false, none, now).is_ok());
        ledger.close();
        assert!(matches!(
            ledger.accept(&[event(None)], false, KEEP, now),
            Err(ApiError::Unavailable { .. })
        ));
    }
}
