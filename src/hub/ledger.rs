//! Event ids in flight or in history, shared by the publish handlers and the hub.
//!
//! A publish must not wait for the hub (PERF-NOTES: a publish that awaits the hub's
//! answer queues behind the fan-out's wake-ups and throttles publishers), yet server
//! ids must follow publish order and a publisher's id still in history is a conflict.
//! So a handler takes this small lock, checks and reserves ids, and hands the events to
//! the hub before letting go: mailbox order is id order, and an id is "held" from the
//! moment it is accepted until the hub evicts its event from history (or its TTL ends).
//!
//! Each acceptance of an id is a numbered reservation, and the hub releases the
//! reservation its entry carries, not the id: an id reused past its TTL, before the hub
//! has expired the old entry, keeps its new reservation when the old one is released.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::error::ApiError;
use crate::event::Publication;

use super::ids::IdClock;

#[derive(Debug, Default)]
pub struct Ledger {
    ids: IdClock,
    /// Ids of events accepted and not yet evicted from history.
    held: HashMap<Box<str>, Held>,
    /// The number of the next reservation.
    next_reservation: u64,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    /// When it was accepted: an id past the history's TTL is free again even before
    /// the hub has run its expiry.
    at: Instant,
    reservation: u64,
}

/// Ids given to accepted events, in order, and the number of the first one's
/// reservation (the others follow it).
#[derive(Debug)]
pub struct Reserved {
    pub ids: Vec<Box<str>>,
    pub first_reservation: u64,
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
        publication: &Publication,
        retention: Retention,
        now: Instant,
    ) -> Result<Reserved, ApiError> {
        let events = &publication.events;
        for (i, event) in events.iter().enumerate() {
            if let Some(id) = event
                .id
                .as_ref()
                .filter(|id| self.holds(id, retention, now))
            {
                let field = if publication.batch {
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
        let first_reservation = self.next_reservation;
        self.next_reservation += ids.len() as u64;
        if retention.size > 0 {
            let reservations = first_reservation..;
            self.held
                .extend(ids.iter().zip(reservations).map(|(id, reservation)| {
                    (
                        id.clone(),
                        Held {
                            at: now,
                            reservation,
                        },
                    )
                }));
        }
        Ok(Reserved {
            ids,
            first_reservation,
        })
    }

    /// Called at start for each event loaded from the durable store, oldest first:
    /// holds its id under its stored reservation (so it is still a conflict), makes
    /// later reservations follow it, and, for an id the server chose, makes later
    /// server ids follow it.
    pub fn restore(&mut self, id: &str, at: Instant, reservation: u64, server_id: bool) {
        self.held.insert(id.into(), Held { at, reservation });
        self.next_reservation = self.next_reservation.max(reservation + 1);
        if server_id {
            self.ids.resume_after(id);
        }
    }

    /// Called by the hub for each event that leaves history: frees its id, unless the
    /// id has been accepted again since (past the TTL) under a newer reservation.
    pub fn release(&mut self, id: &str, reservation: u64) {
        if self
            .held
            .get(id)
            .is_some_and(|held| held.reservation == reservation)
        {
            self.held.remove(id);
        }
    }

    fn holds(&self, id: &str, retention: Retention, now: Instant) -> bool {
        self.held.get(id).is_some_and(|held| {
            retention
                .ttl
                .is_none_or(|ttl| now.saturating_duration_since(held.at) < ttl)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    const KEEP: Retention = Retention {
        size: 10,
        ttl: None,
    };

    fn one(event: Event) -> Publication {
        Publication {
            events: vec![event],
            batch: false,
        }
    }

    fn batch(events: Vec<Event>) -> Publication {
        Publication {
            events,
            batch: true,
        }
    }

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
        let reserved = ledger.accept(&one(event(Some("a"))), KEEP, now).unwrap();
        assert_eq!(reserved.ids, ["a"].map(Box::from));
        let err = ledger
            .accept(&batch(vec![event(None), event(Some("a"))]), KEEP, now)
            .unwrap_err();
        assert_eq!(err.to_string(), "[1].id: \"a\" is already in the history");
        ledger.release("a", reserved.first_reservation);
        assert!(ledger.accept(&one(event(Some("a"))), KEEP, now).is_ok());
    }

    #[test]
    fn an_id_past_the_ttl_is_free_again() {
        let (mut ledger, now) = (Ledger::default(), Instant::now());
        let ttl = Retention {
            size: 10,
            ttl: Some(Duration::from_secs(1)),
        };
        ledger.accept(&one(event(Some("a"))), ttl, now).unwrap();
        assert!(ledger.accept(&one(event(Some("a"))), ttl, now).is_err());
        let later = now + Duration::from_secs(2);
        assert!(ledger.accept(&one(event(Some("a"))), ttl, later).is_ok());
    }

    #[test]
    fn releasing_an_old_reservation_keeps_the_id_reused_past_the_ttl() {
        let (mut ledger, t0) = (Ledger::default(), Instant::now());
        let ttl = Retention {
            size: 10,
            ttl: Some(Duration::from_secs(1)),
        };
        let old = ledger.accept(&one(event(Some("a"))), ttl, t0).unwrap();
        let t1 = t0 + Duration::from_secs(1);
        let new = ledger.accept(&one(event(Some("a"))), ttl, t1).unwrap();
        assert_ne!(old.first_reservation, new.first_reservation);
        // The hub now expires the old entry: the new reservation must stay.
        ledger.release("a", old.first_reservation);
        assert!(ledger.accept(&one(event(Some("a"))), ttl, t1).is_err());
        ledger.release("a", new.first_reservation);
        assert!(ledger.accept(&one(event(Some("a"))), ttl, t1).is_ok());
    }

    #[test]
    fn a_server_id_never_repeats_a_publisher_id_of_the_same_batch() {
        let (mut ledger, now) = (Ledger::default(), Instant::now());
        // Publisher ids that are exactly what the server would issue next.
        let mut probe = IdClock::default();
        let guesses: Vec<Box<str>> = (0..50).map(|_| probe.next_id()).collect();
        let mut list = vec![event(None)];
        list.extend(guesses.iter().map(|g| event(Some(g))));
        let ids = ledger.accept(&batch(list), KEEP, now).unwrap().ids;
        assert!(
            !guesses.contains(&ids[0]),
            "{} was chosen by a publisher",
            ids[0]
        );
    }

    #[test]
    fn restored_ids_conflict_and_what_follows_them_comes_after() {
        let (mut ledger, now) = (Ledger::default(), Instant::now());
        ledger.restore("mine", now, 41, false);
        ledger.restore("9999999999990-000005", now, 42, true);
        let err = ledger.accept(&one(event(Some("mine"))), KEEP, now);
        assert!(err.is_err(), "still in the history");
        let next = ledger.accept(&one(event(None)), KEEP, now).unwrap();
        assert_eq!(next.first_reservation, 43);
        assert_eq!(&*next.ids[0], "9999999999990-000006");
    }

    #[test]
    fn without_history_nothing_is_held() {
        let (mut ledger, now) = (Ledger::default(), Instant::now());
        let none = Retention { size: 0, ttl: None };
        ledger.accept(&one(event(Some("a"))), none, now).unwrap();
        assert!(ledger.accept(&one(event(Some("a"))), none, now).is_ok());
    }
}
