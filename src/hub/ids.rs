//! Server-assigned event ids.
//!
//! An id is the time in microseconds since the Unix epoch, as 16 decimal digits, made
//! strictly increasing: so ids compare as plain strings in publish order (fixed
//! width), and a restarted node starts above every id it issued before, because its
//! clock has moved on. Ids run ahead of the clock only while more than a million
//! events a second are published, far beyond one node's rate.

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug)]
pub struct IdClock {
    last: u64,
}

impl IdClock {
    pub fn new() -> Self {
        Self { last: now_micros() }
    }

    pub fn next_id(&mut self) -> Box<str> {
        self.last = now_micros().max(self.last + 1);
        format!("{:016}", self.last).into()
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fixed_width_and_sort_in_issue_order_even_across_restarts() {
        let mut clock = IdClock::new();
        let mut ids: Vec<Box<str>> = (0..10_000).map(|_| clock.next_id()).collect();
        let restarted = IdClock::new().next_id();
        ids.push(restarted);
        assert!(ids.iter().all(|id| id.len() == 16));
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
    }
}
