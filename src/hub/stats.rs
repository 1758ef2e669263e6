//! `/stats`: counters the hub keeps as it works, and the answer built from them at most
//! once a second by whichever handler asks first, never on the hub's thread.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::metrics::Metrics;

use super::index::TopicIndex;

/// Topics listed at most: the answer stays small with a million topics.
pub const MAX_LISTED_TOPICS: usize = 1000;

/// How long an answer is served again before it is rebuilt.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// What `GET /stats` reads; one for the whole server.
#[derive(Clone)]
pub struct StatsBoard {
    metrics: Metrics,
    index: Arc<RwLock<TopicIndex>>,
    started: Instant,
    /// The last answer and when it was built.
    last: Arc<Mutex<Option<(Instant, Bytes)>>>,
    /// A cluster node's id (SPEC §10); `None` for a single node.
    node: Option<Uuid>,
}

impl StatsBoard {
    pub(super) fn new(metrics: Metrics, index: Arc<RwLock<TopicIndex>>) -> Self {
        Self {
            metrics,
            index,
            started: Instant::now(),
            last: Arc::default(),
            node: None,
        }
    }

    /// Names the node in every answer (cluster mode).
    pub fn for_node(self, node: Uuid) -> Self {
        Self {
            node: Some(node),
            ..self
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
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

        let m = &self.metrics;
        let mut stats = json!({
            "clients": m.clients.get(),
            "topics": listed,
            "published": m.published.get(),
            "delivered": m.deliveries.get(),
            "dropped_slow": m.dropped.slow.get(),
            "dropped_stalled": m.dropped.stalled.get(),
            "history": m.history.get(),
            "uptime_secs": self.started.elapsed().as_secs(),
        });
        if total > MAX_LISTED_TOPICS {
            stats["topics_total"] = total.into();
        }
        if let Some(node) = self.node {
            stats["node"] = node.to_string().into();
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
        let board = StatsBoard::new(Metrics::new(), Arc::new(RwLock::new(index)));
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
        let metrics = Metrics::new();
        let board = StatsBoard::new(metrics.clone(), Arc::default());
        let t0 = Instant::now();
        let first = board.answer_at(t0);
        metrics.published.inc_by(5);
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
        assert!(rebuilt.get("node").is_none(), "a single node has no id");
        let node = Uuid::new_v4();
        let named = StatsBoard::new(metrics, Arc::default()).for_node(node);
        let named: Value = serde_json::from_slice(&named.answer()).unwrap();
        assert_eq!(named["node"], node.to_string());
    }
}
