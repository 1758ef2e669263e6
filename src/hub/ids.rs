//! Server-assigned event ids.
//!
//! An id is `<ms>-<seq>`: milliseconds since the Unix epoch (13 digits) and a counter
//! within that millisecond (6 digits), as Redis stream ids are made. Fixed width, so
//! ids compare as plain strings in publish order. A burst within one millisecond only
//! raises the counter, so the millisecond part runs ahead of the clock only past a
//! million ids in one millisecond or while the clock is stepped back; a restarted
//! node, whose clock has moved on, therefore never issues an id it issued before.

use std::time::{SystemTime, UNIX_EPOCH};

/// Ids per millisecond before the millisecond part is bumped: a billion a second,
/// beyond anything one node publishes.
const MAX_SEQ: u32 = 999_999;

#[derive(Debug, Default)]
pub struct IdClock {
    ms: u64,
    seq: u32,
}

impl IdClock {
    pub fn next_id(&mut self) -> Box<str> {
        let now = now_millis();
        if now > self.ms {
            (self.ms, self.seq) = (now, 0);
        } else if self.seq < MAX_SEQ {
            self.seq += 1;
        } else {
            // Also what happens while the clock is stepped back: ids keep rising.
            (self.ms, self.seq) = (self.ms + 1, 0);
        }
        format!("{:013}-{:06}", self.ms, self.seq).into()
    }

    /// Makes every later id follow `id`, one this clock (or its predecessor before a
    /// restart) issued; ignores an id not of that form. Ids keep rising across a
    /// restart even when the clock was stepped back meanwhile.
    pub fn resume_after(&mut self, id: &str) {
        let Some((ms, seq)) = id.split_once('-') else {
            return;
        };
        if ms.len() != 13 || seq.len() != 6 {
            return;
        }
        if let (Ok(ms), Ok(seq)) = (ms.parse::<u64>(), seq.parse::<u32>())
            && (ms, seq) > (self.ms, self.seq)
        {
            (self.ms, self.seq) = (ms, seq);
        }
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fixed_width_and_sort_in_issue_order_even_across_restarts() {
        let mut clock = IdClock::default();
        let mut ids: Vec<Box<str>> = (0..10_000).map(|_| clock.next_id()).collect();
        // A restart takes far longer than a millisecond; here we wait for one to pass.
        let last_ms = clock.ms;
        while now_millis() <= last_ms {
            std::hint::spin_loop();
        }
        ids.push(IdClock::default().next_id());
        assert!(ids.iter().all(|id| id.len() == 20), "{}", ids[0]);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
    }

    #[test]
    fn a_full_millisecond_moves_on_to_the_next() {
        let mut clock = IdClock {
            ms: u64::MAX / 2,
            seq: MAX_SEQ,
        };
        assert_eq!(&*clock.next_id(), format!("{}-000000", u64::MAX / 2 + 1));
    }
}
