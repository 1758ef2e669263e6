//! `/stats`: counters the hub keeps as it works, and the answer built from them at most
//! once a second by whichever handler asks first, never on the hub's thread.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::index::TopicIndex;

/// Topics listed at most: the answer stays small with a million topics.
pub const MAX_LISTED_TOPICS: usize = 1000;

/// How long an answer is served again before it is rebuilt.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// Written by the hub only (one store or add per fan-out, not per delivery); read by
/// anyone.
#[derive(Debug, Default)]
pub struct Counters {
    pub clients: AtomicUsize,
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub dropped_slow: AtomicU64,
    pub dropped_stalled: AtomicU64,
    pub history: AtomicUsize,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// What `GET /stats` reads; one for the whole server.
#[derive(Clone)]
pub struct StatsBoard {
    counters: Arc<Counters>,
    index: Arc<RwLock<TopicIndex>>,
    started: Instant,
    /// The last answer and when it was built.
    last: Arc<Mutex<Option<(Instant, Bytes)>>>,
}

impl StatsBoard {
    pub(super) fn new(counters: Arc<Counters>, index: Arc<RwLock<TopicIndex>>) -> Self {
        Self {
            counters,
            index,
            started: Instant::now(),
            last: Arc::default(),
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The JSON answer, rebuilt when the last one is older than a second. Requests that
    /// arrive while it is being rebuilt wait for that one rather than build their own.
    pub fn answer(&self) -> Bytes {
        self.answer_at(Instant::now())
    }

    fn answer_at(&self, now: Instant) -> Bytes {
        // unwrap: nothing panics while holding it.
        let mut last = self.last.lock().unwrap();
        if let Some((at, answer)) = &*last
            && now.saturating_duration_since(*at) < FRESH_FOR
        {
            return answer.clone();
        }
        let answer = Bytes::from(self.build().to_string());
        *last = Some((now, answer.clone()));
        answer
    }

    fn build(&self) -> Value {
        // unwrap: the hub never panics while holding the index.
        let (topics, total) = self
            .index
            .read()
            .unwrap()
            .most_subscribed(MAX_LISTED_TOPICS);
        let listed: Map<String, Value> = topics.into_iter().map(|(t, n)| (t, n.into())).collect();

        let c = &self.counters;
        let mut stats = json!({
            "clients": c.clients.load(Ordering::Relaxed),
            "topics": listed,
            "published": c.published.load(Ordering::Relaxed),
            "delivered": c.delivered.load(Ordering::Relaxed),
            "dropped_slow": c.dropped_slow.load(Ordering::Relaxed),
            "dropped_stalled": c.dropped_stalled.load(Ordering::Relaxed),
            "history": c.history.load(Ordering::Relaxed),
            "uptime_secs": self.started.elapsed().as_secs(),
        });
        if total > MAX_LISTED_TOPICS {
            stats["topics_total"] = total.into();
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::client::ClientId;
    use crate::topic::TopicFilter;

    #[test]
    fn lists_the_most_subscribed_topics_and_how_many_there_are() {
        let mut index = TopicIndex::default();
        let mut id = 0;
        // Topic t{i} has i + 1 subscribers.
        for i in 0..MAX_LISTED_TOPICS + 5 {
            for _ in 0..=i {
                let filter = TopicFilter::parse(&format!("t{i}")).unwrap();
                index.add(ClientId(id), &[filter]);
                id += 1;
            }
        }
        let board = StatsBoard::new(Arc::default(), Arc::new(RwLock::new(index)));
        let stats: Value = serde_json::from_slice(&board.answer()).unwrap();
        let topics = stats["topics"].as_object().unwrap();
        assert_eq!(topics.len(), MAX_LISTED_TOPICS);
        assert_eq!(stats["topics_total"], MAX_LISTED_TOPICS + 5);
        assert_eq!(
            topics.keys().next().unwrap(),
            &format!("t{}", MAX_LISTED_TOPICS + 4)
        );
        assert!(!topics.contains_key("t4"), "the least subscribed are cut");
        assert!(topics.contains_key("t5"));
    }

    #[test]
    fn an_answer_is_served_again_within_the_second() {
        let counters = Arc::new(Counters::default());
        let board = StatsBoard::new(counters.clone(), Arc::default());
        let t0 = Instant::now();
        let first = board.answer_at(t0);
        Counters::add(&counters.published, 5);
        let soon = t0 + Duration::from_millis(999);
        assert_eq!(
            board.answer_at(soon),
            first,
            "not rebuilt within the second"
        );
        let rebuilt = board.answer_at(t0 + FRESH_FOR);
        let rebuilt: Value = serde_json::from_slice(&rebuilt).unwrap();
        assert_eq!(rebuilt["published"], 5);
        assert!(rebuilt.get("topics_total").is_none());
    }
}
