//! The report of a run: one serialisable structure, printed as a table for people and
//! written as JSON for BENCHMARKS.md tooling. The table is printed from the same JSON
//! value, so the two can never disagree.

use std::io::Write;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub target: &'static str,
    /// Where events were published (and subscribers connected, without `sub_urls`).
    pub url: String,
    /// The servers subscribers were spread over, round-robin (`--sub-url`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sub_urls: Vec<String>,
    pub command: String,
    pub wall_secs: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribers: Option<Subscribers>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Deliveries>,
    /// Publish-due → received, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<Percentiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<Publish>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<Connect>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn: Option<Churn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stalled: Option<Stalled>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<Server>,
    pub generator: Generator,
}

#[derive(Debug, Serialize)]
pub struct Subscribers {
    pub requested: u64,
    pub connected: u64,
    pub failed: u64,
    /// Streams the server ended while the run was reading them.
    pub closed_by_server: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Deliveries {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    /// Events that reached fewer subscribers than were connected.
    pub events_short: u64,
    pub duplicates: u64,
    pub per_sec: f64,
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct Publish {
    pub events_offered: u64,
    /// Events cut off because the schedule had slipped past its stop time.
    pub unsent: u64,
    pub ok: u64,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// 0 means "as fast as the publishers go".
    pub rate_offered: f64,
    pub rate_achieved: f64,
    pub publishers: usize,
    pub post_p50_us: u64,
    pub post_p99_us: u64,
    pub post_max_us: u64,
    /// How late requests went out relative to the schedule (none at rate 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag_p99_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag_max_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receivers_min: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receivers_max: Option<u64>,
    pub payload_pad_bytes: usize,
    pub secs: f64,
}

#[derive(Debug, Serialize)]
pub struct Connect {
    /// From the first connect until the last response head.
    pub all_heads_ms: f64,
    /// Per connection: connect start → response head, µs.
    pub head_us: Option<Percentiles>,
}

#[derive(Debug, Serialize)]
pub struct Churn {
    pub cycles: u64,
    /// Cycles run before the "before" sample (not in the other figures).
    pub warmup_cycles: u64,
    pub failed: u64,
    pub cycles_per_sec: f64,
    pub cycle_us: Option<Percentiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Stalled {
    pub stalled: u64,
    pub connect_failed: u64,
    /// Found closed (EOF) by the server at the end.
    pub closed_by_server: u64,
    /// Found reset by the server at the end.
    pub reset_by_server: u64,
    pub still_open: u64,
    /// Bytes that had been waiting in the stalled sockets, in total.
    pub bytes_waiting: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Server {
    /// The (first) process sampled.
    pub pid: u32,
    /// Every process sampled, when there were several: the figures below are their sums.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pids: Vec<u32>,
    /// CPU used during the measured phase (publish + drain, or the connect phase).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries_per_cpu_sec: Option<f64>,
    /// Churn with warm-up: RSS of the server before the warm-up cycles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_kib_fresh: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_kib_before: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_kib_connected: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_kib_after: Option<u64>,
    /// (connected − before) / connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes_per_conn: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fds_before: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fds_connected: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fds_after: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Generator {
    pub threads: usize,
    /// CPU of the generator during the same phase as the server's.
    pub cpu_secs: Option<f64>,
    /// CPU of the generator for the whole run.
    pub cpu_secs_total: Option<f64>,
}

impl Report {
    /// Writes the table to `out`.
    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        let value = serde_json::to_value(self).map_err(std::io::Error::other)?;
        let Value::Object(top) = value else {
            return Ok(());
        };
        for (key, v) in &top {
            match v {
                Value::Object(section) => {
                    writeln!(out, "{key}")?;
                    for (k, v) in section {
                        match v {
                            Value::Object(inner) => {
                                let parts: Vec<String> = inner
                                    .iter()
                                    .map(|(k, v)| format!("{k}={}", fmt(v)))
                                    .collect();
                                writeln!(out, "  {k:<24} {}", parts.join("  "))?;
                            }
                            _ => writeln!(out, "  {k:<24} {}", fmt(v))?,
                        }
                    }
                }
                _ => writeln!(out, "{key:<26} {}", fmt(v))?,
            }
        }
        Ok(())
    }

    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(path, text)
    }
}

fn fmt(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or_default();
            if f.abs() >= 100.0 {
                format!("{f:.0}")
            } else {
                format!("{f:.3}")
            }
        }
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}
