//! Event ids in flight or in history, shared by the publish handlers and the hub.
//!
//! A publish must not wait for the hub (PERF-NOTES: a publish that awaits the hub's
//! answer queues behind the fan-out's wake-ups and throttles publishers), yet server
//! ids must follow publish order and a publisher's id still in history is a conflict.
//! So a handler takes this small lock, checks and reserves ids, and hands the events to
//! the hub before letting go: mailbox order is id order, and an id is "held" from the
//! moment it is accepted until the hub evicts its event from history.

use std::collections::HashSet;

use crate::error::ApiError;
use crate::event::Event;

use super::ids::IdClock;

#[derive(Debug, Default)]
pub struct Ledger {
    ids: IdClock,
    /// Ids of events accepted and not yet evicted from history.
    held: HashSet<Box<str>>,
    /// Set at shutdown: nothing more is accepted, so nothing accepted is lost.
    closed: bool,
}

impl Ledger {
    /// Checks the events' own ids, assigns the missing ones and reserves them all.
    /// `history_size` 0 keeps nothing, so nothing is held either.
    pub fn accept(
        &mut self,
        events: &[Event],
        batch: bool,
        history_size: usize,
    ) -> Result<Vec<Box<str>>, ApiError> {
        if self.closed {
            return Err(ApiError::Unavailable {
                reason: "shutting down",
                retry_after: 1,
            });
        }
        for (i, event) in events.iter().enumerate() {
            if let Some(id) = event.id.as_ref().filter(|id| self.held.contains(&***id)) {
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
        let ids: Vec<Box<str>> = events
            .iter()
            .map(|event| match &event.id {
                Some(id) => id.clone(),
                None => self.fresh_id(),
            })
            .collect();
        if history_size > 0 {
            self.held.extend(ids.iter().cloned());
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

    /// A server id not held already (a publisher may have chosen the same text).
    fn fresh_id(&mut self) -> Box<str> {
        loop {
            let id = self.ids.next_id();
            if !self.held.contains(&id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut ledger = Ledger::default();
        assert_eq!(
            ledger.accept(&[event(Some("a"))], false, 10).unwrap(),
            vec!["a".into()]
        );
        let err = ledger
            .accept(&[event(None), event(Some("a"))], true, 10)
            .unwrap_err();
        assert_eq!(err.to_string(), "[1].id: \"a\" is already in the history");
        ledger.release("a");
        assert!(ledger.accept(&[event(Some("a"))], false, 10).is_ok());
    }

    #[test]
    fn without_history_nothing_is_held_and_closing_refuses() {
        let mut ledger = Ledger::default();
        ledger.accept(&[event(Some("a"))], false, 0).unwrap();
        assert!(ledger.accept(&[event(Some("a"))], false, 0).is_ok());
        ledger.close();
        assert!(matches!(
            ledger.accept(&[event(None)], false, 10),
            Err(ApiError::Unavailable { .. })
        ));
    }
}
