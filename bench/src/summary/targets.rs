//! The targets, each checked against one results directory.
//!
//! Most targets compare ssehub with Nchan measured in the same run (a ratio); the rest
//! are absolute (a time, a count, a memory bound) and are checked on ssehub alone,
//! with Nchan's figure shown for context.

use std::fmt::Write;

use super::{Results, case, fmt_num, ratio};

/// ssehub's `client_buffer` in compare.sh's config (the default): the slow scenario's
/// memory bound is this many queued events per stalled client.
const CLIENT_BUFFER: f64 = 256.0;

/// Bytes an event of the slow scenario has beyond its padding (JSON keys, seq, time,
/// SSE framing), rounded up.
const EVENT_OVERHEAD: f64 = 200.0;

/// A subscriber count the per-connection figure is scaled to.
const NODE_SUBSCRIBERS: f64 = 1_000_000.0;

struct Verdict {
    target: &'static str,
    ssehub: String,
    nchan: String,
    ratio: Option<f64>,
    goal: &'static str,
    pass: Option<bool>,
}

pub fn write(r: &Results, out: &mut String) {
    let verdicts = [
        all_delivered(r),
        ratio_target(
            r,
            "1,000 subs × 1,000 ev/s: deliveries/s",
            case::FANOUT_1000,
            "deliveries.per_sec",
            "≥ 5× Nchan",
            |x| x >= 5.0,
        ),
        ratio_target(
            r,
            "1,000 subs × 20 ev/s: p99 publish→receive (ms)",
            case::FANOUT_20,
            "latency_us.p99",
            "< Nchan",
            |x| x < 1.0,
        ),
        ratio_target(
            r,
            "1,000 subs × 20 ev/s: deliveries per server-CPU-s",
            case::FANOUT_20,
            "server.deliveries_per_cpu_sec",
            "≥ Nchan",
            |x| x >= 1.0,
        ),
        ratio_target(
            r,
            "idle 5,000: RSS per open connection (bytes)",
            case::IDLE,
            "server.rss_bytes_per_conn",
            "< Nchan",
            |x| x < 1.0,
        ),
        connect_within_a_second(r),
        broadcast_to_all(r),
        slow_p99(r),
        slow_dropped(r),
        slow_rss(r),
        churn_rss(r),
    ];
    out.push_str("| Target | ssehub | Nchan | ssehub/Nchan | Goal | Result |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for v in &verdicts {
        let result = match v.pass {
            Some(true) => "PASS",
            Some(false) => "**FAIL**",
            None => "no data",
        };
        let ratio = v.ratio.map_or("–".into(), |x| format!("{x:.2}"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {ratio} | {} | {result} |",
            v.target, v.ssehub, v.nchan, v.goal
        );
    }
    out.push('\n');
    write_node_estimate(r, out);
}

/// A figure shown in ms when the report holds µs.
fn shown(path: &str, v: Option<f64>) -> String {
    if path.starts_with("latency_us") {
        fmt_num(v.map(|us| us / 1e3))
    } else {
        fmt_num(v)
    }
}

fn ratio_target(
    r: &Results,
    target: &'static str,
    case: &str,
    path: &str,
    goal: &'static str,
    pass: fn(f64) -> bool,
) -> Verdict {
    let (s, n) = (r.num(case, "ssehub", path), r.num(case, "nchan", path));
    let x = ratio(s, n);
    Verdict {
        target,
        ssehub: shown(path, s),
        nchan: shown(path, n),
        ratio: x,
        goal,
        pass: x.map(pass),
    }
}

/// "received / expected", plus whatever went wrong.
fn delivery_summary(r: &Results, case: &str, target: &str) -> (String, Option<bool>) {
    let get = |p| r.num(case, target, p);
    let (Some(received), Some(expected)) = (get("deliveries.received"), get("deliveries.expected"))
    else {
        return ("–".into(), None);
    };
    let lost = get("deliveries.lost").unwrap_or(0.0);
    let closed = get("subscribers.closed_by_server").unwrap_or(0.0);
    let failed = get("subscribers.failed").unwrap_or(0.0);
    let unpublished =
        get("publish.events_offered").unwrap_or(0.0) - get("publish.ok").unwrap_or(0.0);
    let mut text = format!("{} / {}", fmt_num(Some(received)), fmt_num(Some(expected)));
    for (n, what) in [
        (failed, "not connected"),
        (closed, "dropped by server"),
        (unpublished, "events not published"),
    ] {
        if n > 0.0 {
            let _ = write!(text, ", {} {what}", fmt_num(Some(n)));
        }
    }
    let ok = lost == 0.0 && closed == 0.0 && failed == 0.0 && unpublished == 0.0;
    (text, Some(ok))
}

fn all_delivered(r: &Results) -> Verdict {
    let (ssehub, pass) = delivery_summary(r, case::FANOUT_1000, "ssehub");
    let (nchan, _) = delivery_summary(r, case::FANOUT_1000, "nchan");
    Verdict {
        target: "1,000 subs × 1,000 ev/s: every event delivered",
        ssehub,
        nchan,
        ratio: None,
        goal: "all, none dropped",
        pass,
    }
}

fn connect_within_a_second(r: &Results) -> Verdict {
    let c = case::CONNECT;
    let show = |t| {
        let ms = r.num(c, t, "connect.all_heads_ms");
        let ok = r.num(c, t, "subscribers.connected");
        format!("{} ms, {} connected", fmt_num(ms), fmt_num(ok))
    };
    let ms = r.num(c, "ssehub", "connect.all_heads_ms");
    let ok = r.num(c, "ssehub", "subscribers.connected");
    let wanted = r.num(c, "ssehub", "subscribers.requested");
    Verdict {
        target: "10,000 connections accepted (all response heads)",
        ssehub: show("ssehub"),
        nchan: show("nchan"),
        ratio: ratio(ms, r.num(c, "nchan", "connect.all_heads_ms")),
        goal: "all within 1 s",
        pass: ms
            .zip(ok)
            .zip(wanted)
            .map(|((ms, ok), w)| ms <= 1000.0 && ok == w),
    }
}

fn broadcast_to_all(r: &Results) -> Verdict {
    let c = case::BROADCAST;
    let show = |t| {
        let (text, _) = delivery_summary(r, c, t);
        let max_ms = r.num(c, t, "latency_us.max").map(|us| us / 1e3);
        format!("{text}; last after {} ms", fmt_num(max_ms))
    };
    let (_, delivered) = delivery_summary(r, c, "ssehub");
    let max = r.num(c, "ssehub", "latency_us.max");
    Verdict {
        target: "19,000 subscribers held, a broadcast reaches all",
        ssehub: show("ssehub"),
        nchan: show("nchan"),
        ratio: ratio(max, r.num(c, "nchan", "latency_us.max")),
        goal: "all, within 1 s",
        pass: delivered.zip(max).map(|(d, max)| d && max <= 1e6),
    }
}

/// Healthy subscribers' p99 with stalled ones present ÷ without them.
fn slowdown(r: &Results, target: &str) -> Option<f64> {
    ratio(
        r.num(case::SLOW, target, "latency_us.p99"),
        r.num(case::SLOW_BASELINE, target, "latency_us.p99"),
    )
}

fn slow_p99(r: &Results) -> Verdict {
    let show = |t| {
        let ms = |c| r.num(c, t, "latency_us.p99").map(|us| us / 1e3);
        format!(
            "{} ms vs {} ms = {}×",
            fmt_num(ms(case::SLOW)),
            fmt_num(ms(case::SLOW_BASELINE)),
            fmt_num(slowdown(r, t))
        )
    };
    Verdict {
        target: "slow: healthy p99, 10% stalled vs none",
        ssehub: show("ssehub"),
        nchan: show("nchan"),
        ratio: None,
        goal: "≤ 1.5×",
        pass: slowdown(r, "ssehub").map(|x| x <= 1.5),
    }
}

fn slow_dropped(r: &Results) -> Verdict {
    let show = |t| {
        let get = |p| r.num(case::SLOW, t, p);
        let gone = get("stalled.closed_by_server")
            .zip(get("stalled.reset_by_server"))
            .map(|(a, b)| a + b);
        (gone, get("stalled.stalled"))
    };
    let text = |(gone, of): (Option<f64>, Option<f64>)| {
        format!("{} of {} dropped", fmt_num(gone), fmt_num(of))
    };
    let (gone, of) = show("ssehub");
    Verdict {
        target: "slow: stalled subscribers dropped",
        ssehub: text((gone, of)),
        nchan: text(show("nchan")),
        ratio: None,
        goal: "all",
        pass: gone.zip(of).map(|(g, o)| g == o),
    }
}

/// The slow run's RSS after it, and the bound it must stay under: the baseline run's
/// RSS plus `client_buffer` queued events per stalled subscriber (SPEC: memory per
/// client is bounded by `client_buffer` items plus socket buffers, which are not RSS).
fn slow_rss_and_bound(r: &Results, target: &str) -> (Option<f64>, Option<f64>) {
    let get = |c, p| r.num(c, target, p);
    let after = get(case::SLOW, "server.rss_kib_after");
    let bound = get(case::SLOW_BASELINE, "server.rss_kib_after")
        .zip(get(case::SLOW, "stalled.stalled"))
        .zip(get(case::SLOW, "publish.payload_pad_bytes"))
        .map(|((base, stalled), pad)| {
            base + stalled * CLIENT_BUFFER * (pad + EVENT_OVERHEAD) / 1024.0
        });
    (after, bound)
}

fn slow_rss(r: &Results) -> Verdict {
    let show = |t| {
        let (after, bound) = slow_rss_and_bound(r, t);
        format!(
            "{} MiB (bound {} MiB)",
            fmt_num(after.map(|k| k / 1024.0)),
            fmt_num(bound.map(|k| k / 1024.0))
        )
    };
    let (after, bound) = slow_rss_and_bound(r, "ssehub");
    Verdict {
        target: "slow: server RSS after the run",
        ssehub: show("ssehub"),
        nchan: show("nchan"),
        ratio: None,
        goal: "≤ baseline + stalled × 256 events",
        pass: after.zip(bound).map(|(a, b)| a <= b),
    }
}

fn churn_rss(r: &Results) -> Verdict {
    let show = |t| {
        let get = |p| r.num(case::CHURN, t, p);
        format!(
            "{} → {} KiB (fresh {} KiB), {} failed",
            fmt_num(get("server.rss_kib_before")),
            fmt_num(get("server.rss_kib_after")),
            fmt_num(get("server.rss_kib_fresh")),
            fmt_num(get("churn.failed")),
        )
    };
    let get = |p| r.num(case::CHURN, "ssehub", p);
    let growth = ratio(get("server.rss_kib_after"), get("server.rss_kib_before"));
    Verdict {
        target: "churn 100,000 cycles: RSS after vs before (after warm-up)",
        ssehub: show("ssehub"),
        nchan: show("nchan"),
        ratio: None,
        goal: "≤ 1.10× before, no failures",
        pass: growth
            .zip(get("churn.failed"))
            .map(|(g, failed)| g <= 1.10 && failed == 0.0),
    }
}

/// Memory of a 1,000,000-subscriber node from the measured per-connection RSS.
fn write_node_estimate(r: &Results, out: &mut String) {
    out.push_str(
        "Memory for 1,000,000 subscribers, scaled from the measured RSS per connection \
         (user-space memory only; the kernel's socket buffers come on top):\n\n",
    );
    for (case, label) in [
        (case::IDLE, "idle 5,000"),
        (case::BROADCAST, "19,000 after one broadcast"),
    ] {
        for target in super::TARGETS {
            let per_conn = r.num(case, target, "server.rss_bytes_per_conn");
            let gib = per_conn.map(|b| b * NODE_SUBSCRIBERS / (1u64 << 30) as f64);
            let _ = writeln!(
                out,
                "- {target}, from {label}: {} B/connection → {} GiB",
                fmt_num(per_conn),
                gib.map_or("–".into(), |g| format!("{g:.1}"))
            );
        }
    }
    out.push('\n');
}
