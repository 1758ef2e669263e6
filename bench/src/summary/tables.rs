//! Per-scenario tables: each figure for ssehub and Nchan side by side, with the ratio,
//! then the reference peers' figures if the results have them.

use std::fmt::Write;

use super::{Results, SWEEP_PREFIX, case, fmt_num, ratio};

/// One figure of a report: where it is in the JSON, and the factor that turns it into
/// the unit of its label.
struct Row(&'static str, &'static str, f64);

const US_TO_MS: f64 = 1e-3;

const DELIVERY: &[Row] = &[
    Row("subscribers connected", "subscribers.connected", 1.0),
    Row("dropped by the server", "subscribers.closed_by_server", 1.0),
    Row("deliveries expected", "deliveries.expected", 1.0),
    Row("deliveries received", "deliveries.received", 1.0),
    Row("deliveries lost", "deliveries.lost", 1.0),
    Row("deliveries/s", "deliveries.per_sec", 1.0),
    Row("latency p50 (ms)", "latency_us.p50", US_TO_MS),
    Row("latency p99 (ms)", "latency_us.p99", US_TO_MS),
    Row("latency max (ms)", "latency_us.max", US_TO_MS),
    Row("publish rate achieved (/s)", "publish.rate_achieved", 1.0),
    Row("POST p99 (ms)", "publish.post_p99_us", US_TO_MS),
    Row("server CPU (s)", "server.cpu_secs", 1.0),
    Row(
        "deliveries per server-CPU-s",
        "server.deliveries_per_cpu_sec",
        1.0,
    ),
    Row("generator CPU (s)", "generator.cpu_secs", 1.0),
    Row(
        "server RSS connected (KiB)",
        "server.rss_kib_connected",
        1.0,
    ),
    Row("server RSS after (KiB)", "server.rss_kib_after", 1.0),
];

const SLOW: &[Row] = &[
    Row("healthy subscribers", "subscribers.connected", 1.0),
    Row(
        "healthy dropped by the server",
        "subscribers.closed_by_server",
        1.0,
    ),
    Row("healthy deliveries lost", "deliveries.lost", 1.0),
    Row("healthy latency p50 (ms)", "latency_us.p50", US_TO_MS),
    Row("healthy latency p99 (ms)", "latency_us.p99", US_TO_MS),
    Row("healthy latency max (ms)", "latency_us.max", US_TO_MS),
    Row("events published", "publish.ok", 1.0),
    Row("publish rate achieved (/s)", "publish.rate_achieved", 1.0),
    Row("stalled subscribers", "stalled.stalled", 1.0),
    Row(
        "stalled closed by the server",
        "stalled.closed_by_server",
        1.0,
    ),
    Row(
        "stalled reset by the server",
        "stalled.reset_by_server",
        1.0,
    ),
    Row("stalled still open", "stalled.still_open", 1.0),
    Row("server CPU (s)", "server.cpu_secs", 1.0),
    Row(
        "server RSS connected (KiB)",
        "server.rss_kib_connected",
        1.0,
    ),
    Row("server RSS after (KiB)", "server.rss_kib_after", 1.0),
    Row("server fds after", "server.fds_after", 1.0),
];

const IDLE: &[Row] = &[
    Row("subscribers connected", "subscribers.connected", 1.0),
    Row("server RSS before (KiB)", "server.rss_kib_before", 1.0),
    Row(
        "server RSS connected (KiB)",
        "server.rss_kib_connected",
        1.0,
    ),
    Row(
        "RSS per connection (bytes)",
        "server.rss_bytes_per_conn",
        1.0,
    ),
    Row(
        "server RSS after all closed (KiB)",
        "server.rss_kib_after",
        1.0,
    ),
    Row("server fds after all closed", "server.fds_after", 1.0),
];

const CONNECT: &[Row] = &[
    Row("subscribers connected", "subscribers.connected", 1.0),
    Row("failed", "subscribers.failed", 1.0),
    Row("all response heads (ms)", "connect.all_heads_ms", 1.0),
    Row("head p50 (ms)", "connect.head_us.p50", US_TO_MS),
    Row("head p99 (ms)", "connect.head_us.p99", US_TO_MS),
    Row("server CPU (s)", "server.cpu_secs", 1.0),
    Row(
        "RSS per connection (bytes)",
        "server.rss_bytes_per_conn",
        1.0,
    ),
];

const CHURN: &[Row] = &[
    Row("cycles", "churn.cycles", 1.0),
    Row("warm-up cycles", "churn.warmup_cycles", 1.0),
    Row("failed", "churn.failed", 1.0),
    Row("cycles/s", "churn.cycles_per_sec", 1.0),
    Row("cycle p99 (ms)", "churn.cycle_us.p99", US_TO_MS),
    Row("server RSS fresh (KiB)", "server.rss_kib_fresh", 1.0),
    Row("server RSS before (KiB)", "server.rss_kib_before", 1.0),
    Row("server RSS after (KiB)", "server.rss_kib_after", 1.0),
    Row("server fds before", "server.fds_before", 1.0),
    Row("server fds after", "server.fds_after", 1.0),
    Row("server CPU (s)", "server.cpu_secs", 1.0),
];

const PUBLISH: &[Row] = &[
    Row("events published", "publish.ok", 1.0),
    Row("errors", "publish.errors", 1.0),
    Row("publishers", "publish.publishers", 1.0),
    Row("POSTs/s", "publish.rate_achieved", 1.0),
    Row("POST p50 (ms)", "publish.post_p50_us", US_TO_MS),
    Row("POST p99 (ms)", "publish.post_p99_us", US_TO_MS),
    Row("server CPU (s)", "server.cpu_secs", 1.0),
];

const SECTIONS: &[(&str, &str, &[Row])] = &[
    (
        case::FANOUT_1000,
        "Fan-out: 1,000 subscribers × 1,000 events/s",
        DELIVERY,
    ),
    (
        case::FANOUT_20,
        "Fan-out: 1,000 subscribers × 20 events/s",
        DELIVERY,
    ),
    (
        case::BROADCAST,
        "19,000 subscribers, single broadcasts",
        DELIVERY,
    ),
    (
        case::SLOW,
        "Slow: 900 healthy + 100 stalled subscribers",
        SLOW,
    ),
    (
        case::SLOW_BASELINE,
        "Slow baseline: 900 healthy, none stalled",
        SLOW,
    ),
    (case::IDLE, "Idle: 5,000 open connections", IDLE),
    (
        case::CONNECT,
        "Connect: 10,000 subscribers at once",
        CONNECT,
    ),
    (
        case::CHURN,
        "Churn: connect / read head / close cycles",
        CHURN,
    ),
    (
        case::PUBLISH,
        "Publish: POST throughput, no subscribers",
        PUBLISH,
    ),
];

pub fn write(r: &Results, out: &mut String) {
    let peers = r.peers();
    for (case, title, rows) in SECTIONS {
        let _ = writeln!(out, "### {title} (`{case}`)\n");
        out.push_str("| | ssehub | Nchan | ssehub/Nchan |");
        for (_, title) in &peers {
            let _ = write!(out, " {title} |");
        }
        out.push_str("\n|---|---|---|---|");
        out.push_str(&"---|".repeat(peers.len()));
        out.push('\n');
        for Row(label, path, scale) in *rows {
            let s = r.num(case, "ssehub", path).map(|v| v * scale);
            let n = r.num(case, "nchan", path).map(|v| v * scale);
            let x = ratio(s, n).map_or("–".into(), |x| format!("{x:.2}"));
            let _ = write!(out, "| {label} | {} | {} | {x} |", fmt_num(s), fmt_num(n));
            for (peer, _) in &peers {
                let v = r.num(case, peer, path).map(|v| v * scale);
                let _ = write!(out, " {} |", fmt_num(v));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    write_sweep(r, out);
}

/// The sweep behind the charts, one line per subscriber count; the peers' deliveries/s
/// and latency follow, if the results have them.
fn write_sweep(r: &Results, out: &mut String) {
    let peers = r.peers();
    out.push_str("### Sweep: 20 events/s for 3 s, by subscriber count (`sweep-N`)\n\n");
    out.push_str(
        "| subscribers | deliveries/s ssehub | Nchan | p50 / p99 ms ssehub | Nchan \
         | deliveries per CPU-s ssehub | Nchan | lost ssehub | Nchan |",
    );
    for (_, title) in &peers {
        let _ = write!(out, " deliveries/s {title} | p50 / p99 ms {title} |");
    }
    out.push_str("\n|---|---|---|---|---|---|---|---|---|");
    out.push_str(&"---|---|".repeat(peers.len()));
    out.push('\n');
    for n in r.sweep_sizes() {
        let case = format!("{SWEEP_PREFIX}{n}");
        let get = |t, p| r.num(&case, t, p);
        let lat = |t| {
            let ms = |p| get(t, p).map(|us| us * US_TO_MS);
            format!(
                "{} / {}",
                fmt_num(ms("latency_us.p50")),
                fmt_num(ms("latency_us.p99"))
            )
        };
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt_num(Some(n as f64)),
            fmt_num(get("ssehub", "deliveries.per_sec")),
            fmt_num(get("nchan", "deliveries.per_sec")),
            lat("ssehub"),
            lat("nchan"),
            fmt_num(get("ssehub", "server.deliveries_per_cpu_sec")),
            fmt_num(get("nchan", "server.deliveries_per_cpu_sec")),
            fmt_num(get("ssehub", "deliveries.lost")),
            fmt_num(get("nchan", "deliveries.lost")),
        );
        for &(peer, _) in &peers {
            let _ = write!(
                out,
                " {} | {} |",
                fmt_num(get(peer, "deliveries.per_sec")),
                lat(peer)
            );
        }
        out.push('\n');
    }
    out.push('\n');
}
