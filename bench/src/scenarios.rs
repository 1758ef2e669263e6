//! The scenarios. Each one samples the server before, opens its connections, runs its
//! load, samples again and returns a [`Report`]. Every phase has a deadline.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::sleep;

use crate::churn::run_cycles;
use crate::cli::{Common, Endpoint, LoadArgs, Scenario, Target};
use crate::procstat::{Proc, ProcSample};
use crate::publisher::{PubOutcome, PubRequest, Schedule, publish};
use crate::report::{self, Percentiles, Report};
use crate::sse_client::{
    Probe, SubStats, SubTarget, SubTargets, open_stalled, probe_stalled, subscribe,
};

/// How often the generator checks whether a phase is complete.
const POLL: Duration = Duration::from_millis(5);

/// Time between the last connect and the "connected" sample, so the server has finished
/// registering the streams it just answered.
const CONNECTED_SETTLE: Duration = Duration::from_millis(300);

/// Publishing starts this long after the schedule is made, so the first events are not
/// already late when the publisher tasks first run.
const SCHEDULE_LEAD: Duration = Duration::from_millis(50);

/// Longest wait for the server to finish closing a previous run's connections.
const QUIET_MAX: Duration = Duration::from_secs(10);
const QUIET_STEP: Duration = Duration::from_millis(200);

/// Everything a scenario needs that does not depend on the scenario.
pub struct Ctx {
    target: Target,
    /// Where events are published.
    endpoint: Endpoint,
    /// Where subscribers connect: `--sub-url`s, or the publish endpoint.
    subs: Arc<SubTargets>,
    /// The `--sub-url`s given, for the report.
    sub_urls: Vec<String>,
    pub_path: String,
    pub_body: String,
    pub_headers: Vec<String>,
    /// The server processes sampled (`--server-pid`); their figures are summed.
    servers: Vec<(u32, Proc)>,
    connect_concurrency: usize,
    connect_timeout: Duration,
    threads: usize,
    epoch: Instant,
}

impl Ctx {
    pub fn new(common: &Common, endpoint: Endpoint, sub_endpoints: &[Endpoint]) -> Self {
        let (sub_path, pub_path, pub_body) = match common.target {
            Target::Ssehub | Target::TokioPeer | Target::ActixPeer => (
                "/events?topic=bench",
                "/broadcast",
                r#"{"event":"bench","topic":"bench","payload":{payload}}"#,
            ),
            Target::Nchan => ("/sub", "/pub", "{payload}"),
        };
        let sub_path = common.sub_path.as_deref().unwrap_or(sub_path);
        Ctx {
            target: common.target,
            subs: Arc::new(SubTargets::new(
                sub_endpoints
                    .iter()
                    .map(|e| SubTarget::new(e.addr, &e.host_header, sub_path, common.delayed_acks))
                    .collect(),
            )),
            sub_urls: sub_endpoints
                .iter()
                .filter(|_| !common.sub_urls.is_empty())
                .map(|e| format!("http://{}", e.host_header))
                .collect(),
            endpoint,
            pub_path: common.pub_path.clone().unwrap_or_else(|| pub_path.into()),
            pub_body: common.pub_body.clone().unwrap_or_else(|| pub_body.into()),
            pub_headers: common.pub_headers.clone(),
            servers: common
                .server_pids
                .iter()
                .map(|&pid| (pid, Proc::server(pid)))
                .collect(),
            connect_concurrency: common.connect_concurrency.max(1),
            connect_timeout: Duration::from_secs_f64(common.connect_timeout_secs),
            threads: common.threads,
            epoch: Instant::now(),
        }
    }

    pub async fn run(&self, scenario: &Scenario) -> Result<Report, String> {
        let mut report = self.report(scenario.name());
        self.wait_server_quiet().await;
        match scenario {
            Scenario::Fanout { subs, load } => drop(
                self.fanout(&mut report, subs.subscribers, (0, 0), load)
                    .await?,
            ),
            Scenario::Slow {
                subs,
                stalled,
                stalled_rcvbuf,
                load,
                settle_secs,
            } => {
                let stalled = (*stalled).min(subs.subscribers);
                let held = self
                    .fanout(
                        &mut report,
                        subs.subscribers - stalled,
                        (stalled, *stalled_rcvbuf),
                        load,
                    )
                    .await?;
                self.probe_stalled_at_end(&mut report, held, stalled, *settle_secs)
                    .await;
            }
            Scenario::Publish { subscribers, load } => {
                drop(self.fanout(&mut report, *subscribers, (0, 0), load).await?)
            }
            Scenario::Idle { subs, settle_secs } => {
                self.idle(&mut report, subs.subscribers, *settle_secs).await
            }
            Scenario::Connect { subs } => self.connect(&mut report, subs.subscribers).await,
            Scenario::Churn {
                cycles,
                concurrency,
                warmup_cycles,
                settle_secs,
            } => {
                let args = ChurnArgs {
                    cycles: *cycles,
                    warmup_cycles: *warmup_cycles,
                    concurrency: *concurrency,
                    settle_secs: *settle_secs,
                };
                self.churn(&mut report, args).await
            }
        }
        report.wall_secs = self.epoch.elapsed().as_secs_f64();
        report.generator.cpu_secs_total = Proc::this().cpu_secs();
        Ok(report)
    }

    fn report(&self, scenario: &'static str) -> Report {
        Report {
            scenario,
            target: self.target.name(),
            url: format!("http://{}", self.endpoint.host_header),
            sub_urls: self.sub_urls.clone(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            wall_secs: 0.0,
            subscribers: None,
            deliveries: None,
            latency_us: None,
            publish: None,
            connect: None,
            churn: None,
            stalled: None,
            server: self.servers.first().map(|&(pid, _)| report::Server {
                pid,
                pids: match self.servers.len() {
                    1 => Vec::new(),
                    _ => self.servers.iter().map(|&(pid, _)| pid).collect(),
                },
                ..Default::default()
            }),
            generator: report::Generator {
                threads: self.threads,
                cpu_secs: None,
                cpu_secs_total: None,
            },
        }
    }

    /// Waits (at most [`QUIET_MAX`]) until the server's descriptor count holds still, so
    /// a run started right after another does not take the tail of the last one's
    /// disconnects as its baseline.
    async fn wait_server_quiet(&self) {
        if self.servers.is_empty() {
            return;
        }
        let open_fds = || -> Option<u64> { self.servers.iter().map(|(_, p)| p.open_fds()).sum() };
        let deadline = Instant::now() + QUIET_MAX;
        let mut last = open_fds();
        while Instant::now() < deadline {
            sleep(QUIET_STEP).await;
            let now = open_fds();
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// The servers' figures, summed over every `--server-pid`.
    fn sample_server(&self) -> ProcSample {
        if self.servers.is_empty() {
            return ProcSample::default();
        }
        let samples: Vec<ProcSample> = self.servers.iter().map(|(_, p)| p.sample()).collect();
        ProcSample::sum(&samples)
    }

    /// Spawns `n` subscribers (ids from `first_idx`) and waits until each has its
    /// response head or failed, or the connect timeout passed.
    async fn open_subscribers(
        &self,
        n: usize,
        first_idx: usize,
        stats: &Arc<SubStats>,
    ) -> JoinSet<()> {
        let gate = Arc::new(Semaphore::new(self.connect_concurrency));
        let mut set = JoinSet::new();
        for idx in first_idx..first_idx + n {
            set.spawn(subscribe(
                self.subs.for_index(idx).clone(),
                idx,
                stats.clone(),
                gate.clone(),
            ));
        }
        let deadline = Instant::now() + self.connect_timeout;
        while settled(stats) < n as u64 && Instant::now() < deadline {
            sleep(POLL).await;
        }
        let pending = (n as u64).saturating_sub(settled(stats));
        if pending > 0 {
            stats.fail(|| {
                format!(
                    "{pending} still connecting after {:?}",
                    self.connect_timeout
                )
            });
        }
        set
    }

    fn subscribers_section(stats: &SubStats, requested: usize) -> report::Subscribers {
        let connected = stats.connected.load(Relaxed);
        report::Subscribers {
            requested: requested as u64,
            connected,
            failed: (requested as u64).saturating_sub(connected),
            closed_by_server: stats.closed.load(Relaxed),
            first_error: stats.first_error(),
        }
    }

    /// fanout / slow / publish: `healthy` reading subscribers plus `stalled.0` ones that
    /// never read (receive buffer `stalled.1`), then the publishing schedule, then the
    /// drain. Returns the connections, still open, for the caller to probe or drop.
    async fn fanout(
        &self,
        report: &mut Report,
        healthy: usize,
        (stalled, stalled_rcvbuf): (usize, u32),
        load: &LoadArgs,
    ) -> Result<Held, String> {
        let publish_only = matches!(report.scenario, "publish");
        let rate = load.rate.unwrap_or(if publish_only { 0.0 } else { 1000.0 });
        let events = load.events.unwrap_or(if rate > 0.0 {
            (rate * load.duration_secs).round() as u64
        } else {
            10_000
        });
        let pad = load.pad_bytes.unwrap_or(if stalled > 0 { 4096 } else { 0 });
        let receivers_key = match self.target {
            Target::Nchan => "\"subscribers\":",
            _ => "\"receivers\":",
        };
        let request = Arc::new(PubRequest::new(
            self.endpoint.addr,
            &self.endpoint.host_header,
            &self.pub_path,
            &self.pub_headers,
            &self.pub_body,
            pad,
            receivers_key,
        )?);

        let before = self.sample_server();
        let stats = SubStats::new(self.epoch, events);
        let subscribers = self.open_subscribers(healthy, 0, &stats).await;
        let stalled_streams = self.open_stalled(healthy, stalled, stalled_rcvbuf).await;
        sleep(CONNECTED_SETTLE).await;
        let connected_sample = self.sample_server();
        let connected = stats.connected.load(Relaxed);

        let me_start = Proc::this().cpu_secs();
        let drain = Duration::from_secs_f64(load.drain_secs);
        let overrun = if rate > 0.0 {
            drain
        } else {
            Duration::from_secs_f64(load.duration_secs)
        };
        let schedule = Schedule::new(rate, events, SCHEDULE_LEAD, overrun);
        let outcome = publish(
            request,
            schedule,
            load.publishers,
            Duration::from_secs_f64(load.post_timeout_secs),
        )
        .await;
        let expected = connected * outcome.ok;
        let deadline = Instant::now() + drain;
        while stats.received.load(Relaxed) < expected && Instant::now() < deadline {
            sleep(POLL).await;
        }
        let after = self.sample_server();
        let me_end = Proc::this().cpu_secs();

        let received = stats.received.load(Relaxed);
        if healthy > 0 {
            report.subscribers = Some(Self::subscribers_section(&stats, healthy));
            let (short, duplicates) = stats.gaps_and_duplicates(outcome.sent, connected);
            let publish_start = schedule.start.saturating_duration_since(self.epoch);
            let span = stats.last_rx().saturating_sub(publish_start).as_secs_f64();
            report.deliveries = Some(report::Deliveries {
                expected,
                received,
                lost: expected.saturating_sub(received),
                events_short: short,
                duplicates,
                per_sec: if span > 0.0 {
                    received as f64 / span
                } else {
                    0.0
                },
            });
            report.latency_us = Percentiles::of(&stats.latency());
        }
        report.publish = Some(publish_section(
            &outcome,
            events,
            rate,
            load.publishers,
            pad,
        ));
        if let Some(server) = &mut report.server {
            let cpu = diff(after.cpu_secs, connected_sample.cpu_secs);
            server.cpu_secs = cpu;
            server.deliveries_per_cpu_sec = cpu
                .filter(|c| *c > 0.0 && received > 0)
                .map(|c| received as f64 / c);
            fill_memory(
                server,
                &before,
                &connected_sample,
                &after,
                connected + stalled as u64,
            );
        }
        report.generator.cpu_secs = diff(me_end, me_start);
        Ok(Held {
            subscribers,
            stalled: stalled_streams,
        })
    }

    /// Opens the stalled subscribers of the slow scenario (ids from `first_idx`).
    async fn open_stalled(&self, first_idx: usize, n: usize, rcvbuf: u32) -> Vec<TcpStream> {
        let gate = Arc::new(Semaphore::new(self.connect_concurrency));
        let mut set = JoinSet::new();
        for idx in first_idx..first_idx + n {
            let (sub, gate) = (self.subs.for_index(idx).clone(), gate.clone());
            set.spawn(async move {
                let _permit = gate.acquire().await;
                open_stalled(&sub, idx, rcvbuf).await
            });
        }
        let mut streams = Vec::with_capacity(n);
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, set.join_next()).await {
            if let Ok(Ok(stream)) = joined {
                streams.push(stream);
            }
        }
        streams
    }

    /// After the slow scenario's drain: waits `settle_secs` with every connection still
    /// open, samples the server's descriptors, then reads every stalled stream to see
    /// whether the server closed it.
    async fn probe_stalled_at_end(
        &self,
        report: &mut Report,
        held: Held,
        requested: usize,
        settle_secs: f64,
    ) {
        sleep(Duration::from_secs_f64(settle_secs)).await;
        let after = self.sample_server();
        let Held {
            subscribers,
            stalled,
        } = held;
        let mut figures = report::Stalled {
            stalled: requested as u64,
            connect_failed: (requested - stalled.len()) as u64,
            closed_by_server: 0,
            reset_by_server: 0,
            still_open: 0,
            bytes_waiting: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut set = JoinSet::new();
        for s in stalled {
            set.spawn(probe_stalled(s, Duration::from_millis(500), deadline));
        }
        while let Some(Ok((probe, bytes))) = set.join_next().await {
            figures.bytes_waiting += bytes;
            match probe {
                Probe::Closed => figures.closed_by_server += 1,
                Probe::Reset => figures.reset_by_server += 1,
                Probe::Open => figures.still_open += 1,
            }
        }
        drop(subscribers);
        if let Some(server) = &mut report.server {
            server.fds_after = after.fds;
            server.rss_kib_after = after.rss_kib;
        }
        report.stalled = Some(figures);
    }

    async fn idle(&self, report: &mut Report, n: usize, settle_secs: f64) {
        let before = self.sample_server();
        let stats = SubStats::new(self.epoch, 0);
        let subscribers = self.open_subscribers(n, 0, &stats).await;
        sleep(Duration::from_secs_f64(settle_secs)).await;
        let connected = self.sample_server();
        report.subscribers = Some(Self::subscribers_section(&stats, n));
        // Close them all and give the server the same time to notice: "after" shows
        // whether it gives the descriptors and memory back.
        drop(subscribers);
        sleep(Duration::from_secs_f64(settle_secs)).await;
        let after = self.sample_server();
        if let Some(server) = &mut report.server {
            fill_memory(
                server,
                &before,
                &connected,
                &after,
                stats.connected.load(Relaxed),
            );
        }
    }

    async fn connect(&self, report: &mut Report, n: usize) {
        let before = self.sample_server();
        let me_start = Proc::this().cpu_secs();
        let stats = SubStats::new(self.epoch, 0);
        let started = self.epoch.elapsed();
        let subscribers = self.open_subscribers(n, 0, &stats).await;
        let me_end = Proc::this().cpu_secs();
        let connected = self.sample_server();
        report.subscribers = Some(Self::subscribers_section(&stats, n));
        report.connect = Some(report::Connect {
            all_heads_ms: stats.last_head().saturating_sub(started).as_secs_f64() * 1e3,
            head_us: Percentiles::of(&stats.head_latency()),
        });
        drop(subscribers);
        report.generator.cpu_secs = diff(me_end, me_start);
        if let Some(server) = &mut report.server {
            server.cpu_secs = diff(connected.cpu_secs, before.cpu_secs);
            fill_memory(
                server,
                &before,
                &connected,
                &ProcSample::default(),
                stats.connected.load(Relaxed),
            );
        }
    }

    /// churn: optional warm-up cycles, the "before" sample, the measured cycles, then
    /// `settle_secs` for the server to finish closing before the "after" sample.
    async fn churn(&self, report: &mut Report, args: ChurnArgs) {
        let fresh = self.sample_server();
        let settle = Duration::from_secs_f64(args.settle_secs);
        if args.warmup_cycles > 0 {
            run_cycles(self.subs.clone(), args.warmup_cycles, args.concurrency).await;
            sleep(settle).await;
        }
        let before = self.sample_server();
        let me_start = Proc::this().cpu_secs();
        let cycles = run_cycles(self.subs.clone(), args.cycles, args.concurrency).await;
        let busy = self.sample_server();
        let me_end = Proc::this().cpu_secs();
        sleep(settle).await;
        let after = self.sample_server();
        report.churn = Some(report::Churn {
            cycles: args.cycles,
            warmup_cycles: args.warmup_cycles,
            failed: cycles.failed,
            cycles_per_sec: args.cycles as f64 / cycles.elapsed.as_secs_f64(),
            cycle_us: Percentiles::of(&cycles.latency),
            first_error: cycles.first_error,
        });
        report.generator.cpu_secs = diff(me_end, me_start);
        if let Some(server) = &mut report.server {
            server.cpu_secs = diff(busy.cpu_secs, before.cpu_secs);
            fill_memory(server, &before, &ProcSample::default(), &after, 0);
            server.rss_kib_fresh = fresh.rss_kib;
        }
    }
}

/// The churn scenario's options.
#[derive(Debug, Clone, Copy)]
struct ChurnArgs {
    cycles: u64,
    warmup_cycles: u64,
    concurrency: usize,
    settle_secs: f64,
}

/// Connections a scenario keeps open past its measurement.
struct Held {
    /// The reading subscribers; dropping the set aborts them and closes their sockets.
    subscribers: JoinSet<()>,
    /// Subscribers that never read (slow scenario).
    stalled: Vec<TcpStream>,
}

/// Subscribers that got an answer, good or bad.
fn settled(stats: &SubStats) -> u64 {
    stats.connected.load(Relaxed) + stats.failed.load(Relaxed)
}

fn diff(end: Option<f64>, start: Option<f64>) -> Option<f64> {
    Some(end? - start?)
}

/// Memory and descriptor figures; `conns` is what the "connected" sample holds open.
fn fill_memory(
    server: &mut report::Server,
    before: &ProcSample,
    connected: &ProcSample,
    after: &ProcSample,
    conns: u64,
) {
    server.rss_kib_before = before.rss_kib;
    server.rss_kib_connected = connected.rss_kib;
    server.rss_kib_after = after.rss_kib;
    server.fds_before = before.fds;
    server.fds_connected = connected.fds;
    server.fds_after = after.fds;
    server.rss_bytes_per_conn = match (before.rss_kib, connected.rss_kib) {
        (Some(b), Some(c)) if conns > 0 => Some((c as f64 - b as f64) * 1024.0 / conns as f64),
        _ => None,
    };
}

fn publish_section(
    o: &PubOutcome,
    events: u64,
    rate: f64,
    publishers: usize,
    pad: usize,
) -> report::Publish {
    report::Publish {
        events_offered: events,
        unsent: events - o.sent,
        ok: o.ok,
        errors: o.errors,
        first_error: o.first_error.clone(),
        rate_offered: rate,
        rate_achieved: o.rate,
        publishers,
        post_p50_us: o.post_latency.value_at_quantile(0.5),
        post_p99_us: o.post_latency.value_at_quantile(0.99),
        post_max_us: o.post_latency.max(),
        send_lag_p99_us: (!o.send_lag.is_empty()).then(|| o.send_lag.value_at_quantile(0.99)),
        send_lag_max_us: (!o.send_lag.is_empty()).then(|| o.send_lag.max()),
        receivers_min: o.receivers.map(|r| r.0),
        receivers_max: o.receivers.map(|r| r.1),
        payload_pad_bytes: pad,
        secs: o.elapsed.as_secs_f64(),
    }
}
