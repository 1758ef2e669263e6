//! Connect / read-head / close cycles, many in flight, for the churn scenario.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use crate::sse_client::{SubTargets, connect_read_close, new_histogram};

/// Longest one cycle may wait for its response head before it counts as failed.
const CYCLE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a batch of cycles measured.
pub struct Cycles {
    pub failed: u64,
    /// Connect start → response head, µs, of the cycles that succeeded.
    pub latency: Histogram<u64>,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

/// Runs `cycles` cycles, `concurrency` at a time, and waits for all of them; cycle `i`
/// goes to `subs.for_index(i)`.
pub async fn run_cycles(subs: Arc<SubTargets>, cycles: u64, concurrency: usize) -> Cycles {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (subs, next) = (subs.clone(), next.clone());
        // Each task keeps its own figures; they are merged once at the end.
        set.spawn(async move {
            let mut mine = Cycles {
                failed: 0,
                latency: new_histogram(),
                first_error: None,
                elapsed: Duration::ZERO,
            };
            // Bounded: each pass takes a distinct cycle number below `cycles`.
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= cycles {
                    break;
                }
                let sub = subs.for_index(i as usize);
                let result =
                    tokio::time::timeout(CYCLE_TIMEOUT, connect_read_close(sub, i as usize))
                        .await
                        .unwrap_or_else(|_| {
                            Err(format!("no response head within {CYCLE_TIMEOUT:?}"))
                        });
                match result {
                    Ok(took) => mine.latency.saturating_record(took.as_micros() as u64),
                    Err(e) => {
                        mine.failed += 1;
                        mine.first_error.get_or_insert(e);
                    }
                }
            }
            mine
        });
    }
    let mut all = Cycles {
        failed: 0,
        latency: new_histogram(),
        first_error: None,
        elapsed: Duration::ZERO,
    };
    while let Some(joined) = set.join_next().await {
        let Ok(part) = joined else { continue };
        all.failed += part.failed;
        all.latency.add(&part.latency).expect("same bounds");
        if all.first_error.is_none() {
            all.first_error = part.first_error;
        }
    }
    all.elapsed = started.elapsed();
    all
}
