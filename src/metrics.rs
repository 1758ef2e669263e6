//! Prometheus metrics (SPEC §8) through prometheus-client: typed handles, registered
//! once. Every label value is resolved at start, so updating a counter or a gauge is
//! one atomic operation, without a lock or an allocation, and the hub updates them once
//! per fan-out, not per delivery. The histogram takes a short lock, once per publish.
//! `/stats` reads the same values.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

/// Every status a publish can be refused with (SPEC §4), and the label it is counted
/// under. A status missing here is counted as "other".
const REFUSALS: [(u16, &str); 9] = [
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (408, "408"),
    (409, "409"),
    (413, "413"),
    (415, "415"),
    (503, "503"),
    (0, "other"),
];

/// Upper bounds (seconds) of the fan-out histogram: from a single subscriber (tens of
/// microseconds) to a backlog of seconds.
const FANOUT_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// Why a client left, as `ssehub_clients_dropped_total{reason}` counts it.
#[derive(Debug, Clone)]
pub struct Dropped {
    pub slow: Counter,
    pub stalled: Counter,
    pub admin: Counter,
    pub shutdown: Counter,
}

#[derive(Debug, Clone)]
pub struct Metrics {
    pub clients: Gauge,
    pub published: Counter,
    pub deliveries: Counter,
    pub dropped: Dropped,
    pub history: Gauge,
    /// From a publish's acceptance to its last enqueue, per publish (a batch once).
    pub fanout: Histogram,
    rejected: Arc<[Counter; REFUSALS.len()]>,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ssehub");
        let clients = Gauge::default();
        registry.register("clients", "Connected subscribers", clients.clone());
        let published = Counter::default();
        registry.register(
            "events_published",
            "Events published (each event of a batch counts)",
            published.clone(),
        );
        let deliveries = Counter::default();
        registry.register(
            "deliveries",
            "Events queued for subscribers (one per event and subscriber)",
            deliveries.clone(),
        );
        let dropped_family = Family::<Labels, Counter>::default();
        registry.register(
            "clients_dropped",
            "Subscribers the server disconnected, by reason",
            dropped_family.clone(),
        );
        let reason = |r: &'static str| dropped_family.get_or_create(&vec![("reason", r)]).clone();
        let dropped = Dropped {
            slow: reason("slow"),
            stalled: reason("stalled"),
            admin: reason("admin"),
            shutdown: reason("shutdown"),
        };
        let rejected_family = Family::<Labels, Counter>::default();
        registry.register(
            "publish_rejected",
            "Publish requests refused, by HTTP status",
            rejected_family.clone(),
        );
        let rejected = REFUSALS.map(|(_, label)| {
            rejected_family
                .get_or_create(&vec![("status", label)])
                .clone()
        });
        let history = Gauge::default();
        registry.register("history_events", "Events held for replay", history.clone());
        let fanout = Histogram::new(FANOUT_BUCKETS);
        registry.register(
            "publish_fanout_seconds",
            "Time from a publish being accepted to its last enqueue",
            fanout.clone(),
        );
        registry.register(
            "build",
            "The running build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Self {
            clients,
            published,
            deliveries,
            dropped,
            history,
            fanout,
            rejected: Arc::new(rejected),
            registry: Arc::new(registry),
        }
    }

    /// Counts a refused publish.
    pub fn rejected(&self, status: StatusCode) {
        let i = REFUSALS
            .iter()
            .position(|(code, _)| *code == status.as_u16())
            .unwrap_or(REFUSALS.len() - 1);
        self.rejected[i].inc();
    }

    pub fn observe_fanout(&self, took: Duration) {
        self.fanout.observe(took.as_secs_f64());
    }

    /// The Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // unwrap: writing to a String cannot fail.
        encode(&mut text, &self.registry).unwrap();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_spec_names_is_there_with_its_value() {
        let metrics = Metrics::new();
        metrics.clients.set(3);
        metrics.published.inc_by(5);
        metrics.deliveries.inc_by(15);
        metrics.dropped.slow.inc();
        metrics.rejected(StatusCode::CONFLICT);
        metrics.rejected(StatusCode::IM_A_TEAPOT);
        metrics.history.set(5);
        metrics.observe_fanout(Duration::from_micros(70));
        let text = metrics.encode();
        for line in [
            "ssehub_clients 3",
            "ssehub_events_published_total 5",
            "ssehub_deliveries_total 15",
            "ssehub_clients_dropped_total{reason=\"slow\"} 1",
            "ssehub_clients_dropped_total{reason=\"stalled\"} 0",
            "ssehub_publish_rejected_total{status=\"409\"} 1",
            "ssehub_publish_rejected_total{status=\"other\"} 1",
            "ssehub_publish_rejected_total{status=\"400\"} 0",
            "ssehub_history_events 5",
            "ssehub_publish_fanout_seconds_count 1",
            "ssehub_publish_fanout_seconds_bucket{le=\"0.0001\"} 1",
            "ssehub_publish_fanout_seconds_bucket{le=\"0.00005\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from:\n{text}"
            );
        }
        assert!(text.contains("ssehub_build_info{version=\""), "{text}");
    }
}
