//! Command line: one subcommand per scenario, plus options shared by all of them.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load generator for ssehub (and Nchan, for comparison). Every run is bounded in time
/// and only ever talks to 127.0.0.0/8.
#[derive(Debug, Parser)]
#[command(name = "ssehub-bench", version)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Scenario(Scenario),
    /// Summarise a results directory written by scripts/bench/compare.sh: markdown
    /// tables of ssehub against Nchan with ratios and pass/fail per target (plus the
    /// reference peers' figures, if the directory has them), and SVG charts of the
    /// subscriber sweep. Reads only files; the global options are ignored.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Directory holding the `<case>.<target>.json` reports of one compare.sh run.
    pub results_dir: PathBuf,
    /// Where to write latency.svg and throughput.svg.
    #[arg(long, default_value = "docs/bench")]
    pub svg_dir: PathBuf,
}

/// Options every scenario takes (they may come before or after the scenario name).
#[derive(Debug, Args)]
pub struct Common {
    /// Server flavour: picks the default subscribe path, publish path and publish body
    /// (the reference peers speak ssehub's).
    #[arg(long, value_enum, default_value_t = Target::Ssehub, global = true)]
    pub target: Target,
    /// Base URL of the server that is published to (and subscribed to, without
    /// --sub-url); must be http:// on a 127.0.0.0/8 address or localhost.
    #[arg(long, default_value = "http://127.0.0.1:3000", global = true)]
    pub url: String,
    /// Base URL of a server to subscribe to (repeatable; same rules as --url): the
    /// subscribers are spread round-robin over these, e.g. the nodes of a cluster
    /// (SPEC §10), while every event is still published to --url and its latency
    /// measured from the publish schedule [default: --url].
    #[arg(long = "sub-url", value_name = "URL", global = true)]
    pub sub_urls: Vec<String>,
    /// Subscribe path and query [default: ssehub `/events?topic=bench`, nchan `/sub`].
    #[arg(long, global = true)]
    pub sub_path: Option<String>,
    /// Publish path [default: ssehub `/broadcast`, nchan `/pub`].
    #[arg(long, global = true)]
    pub pub_path: Option<String>,
    /// Publish body; `{payload}` is replaced by the event's JSON payload
    /// [default: ssehub `{"event":"bench","topic":"bench","payload":{payload}}`, nchan `{payload}`].
    #[arg(long, global = true)]
    pub pub_body: Option<String>,
    /// Extra header for every publish request, e.g. "Authorization: Bearer TOKEN" (repeatable).
    #[arg(long = "pub-header", global = true)]
    pub pub_headers: Vec<String>,
    /// PID of the server process to sample (CPU, RSS, fds). For Nginx/Nchan: the worker.
    /// Repeatable: the figures are summed, e.g. one PID per node given with --sub-url,
    /// so memory per connection still divides by all the nodes' connections.
    #[arg(long = "server-pid", value_name = "PID", global = true)]
    pub server_pids: Vec<u32>,
    /// Worker threads of the generator's tokio runtime.
    #[arg(long, default_value_t = 1, global = true)]
    pub threads: usize,
    /// Also write the report as JSON to this file.
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// Hard limit on the whole run; it is abandoned (exit status 3) past this.
    #[arg(long, default_value_t = 120.0, global = true)]
    pub timeout_secs: f64,
    /// Subscribers ask the kernel to delay ACKs after each read (TCP_QUICKACK off):
    /// roughly halves the generator's CPU per delivery when every event arrives in its
    /// own segment, but real clients ACK at once; off by default.
    #[arg(long, global = true)]
    pub delayed_acks: bool,
    /// Subscriber connects in flight at once.
    #[arg(long, default_value_t = 512, global = true)]
    pub connect_concurrency: usize,
    /// How long all subscribers may take to connect and get their response head.
    #[arg(long, default_value_t = 30.0, global = true)]
    pub connect_timeout_secs: f64,
}

impl Common {
    /// The servers subscribers connect to: every `--sub-url`, or `--url` alone.
    pub fn sub_endpoints(&self) -> Result<Vec<Endpoint>, String> {
        if self.sub_urls.is_empty() {
            return Ok(vec![parse_url(&self.url)?]);
        }
        self.sub_urls.iter().map(|url| parse_url(url)).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Ssehub,
    Nchan,
    /// The bare tokio reference peer (`peer-tokio`): ssehub's paths and body.
    TokioPeer,
    /// The bare actix-web reference peer (`peer-actix`): ssehub's paths and body.
    ActixPeer,
}

impl Target {
    /// The name reports and `compare.sh` use, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Ssehub => "ssehub",
            Target::Nchan => "nchan",
            Target::TokioPeer => "tokio-peer",
            Target::ActixPeer => "actix-peer",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// N subscribers, M events published at R/s: delivery rate, loss and latency.
    Fanout {
        #[command(flatten)]
        subs: SubArgs,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Open N idle subscribers and measure the server's memory per connection.
    Idle {
        #[command(flatten)]
        subs: SubArgs,
        /// Wait this long after the last connect before sampling the server.
        #[arg(long, default_value_t = 2.0)]
        settle_secs: f64,
    },
    /// N subscribers of which K never read: the healthy ones' latency and loss, and
    /// whether the server dropped the stalled ones.
    Slow {
        #[command(flatten)]
        subs: SubArgs,
        /// How many of the subscribers stop reading right after connecting.
        #[arg(long, default_value_t = 20)]
        stalled: usize,
        /// Receive buffer of each stalled socket, set before connecting (bytes; 0 =
        /// kernel default). A small one keeps the kernel from absorbing megabytes per
        /// stalled client, so their queues overflow without flooding the healthy ones.
        #[arg(long, default_value_t = 0)]
        stalled_rcvbuf: u32,
        #[command(flatten)]
        load: LoadArgs,
        /// Wait this long after the drain before probing the stalled connections.
        #[arg(long, default_value_t = 2.0)]
        settle_secs: f64,
    },
    /// C connect / read-first-bytes / disconnect cycles: does the server give back
    /// its descriptors and memory?
    Churn {
        /// Number of connect/disconnect cycles.
        #[arg(long, default_value_t = 3000)]
        cycles: u64,
        /// Cycles in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Cycles run before the "before" sample, so that memory the server keeps once
        /// it has served some connections (allocator arenas, pools) is in the baseline
        /// and only growth that continues shows as a difference.
        #[arg(long, default_value_t = 0)]
        warmup_cycles: u64,
        /// Wait this long after the last cycle before sampling the server.
        #[arg(long, default_value_t = 2.0)]
        settle_secs: f64,
    },
    /// Open N subscribers as fast as possible: time until all have their response head.
    Connect {
        #[command(flatten)]
        subs: SubArgs,
    },
    /// POST throughput and latency, with no (or a few) subscribers.
    Publish {
        /// Subscribers to hold open while publishing.
        #[arg(long, default_value_t = 0)]
        subscribers: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Fanout { .. } => "fanout",
            Scenario::Idle { .. } => "idle",
            Scenario::Slow { .. } => "slow",
            Scenario::Churn { .. } => "churn",
            Scenario::Connect { .. } => "connect",
            Scenario::Publish { .. } => "publish",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SubArgs {
    /// Number of SSE subscribers.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub subscribers: usize,
}

/// How events are published.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Events per second offered, evenly spaced; 0 = as fast as the publishers go
    /// [default: 1000; publish scenario: 0].
    #[arg(long, short = 'r')]
    pub rate: Option<f64>,
    /// Length of the publishing schedule (used when --events is not given); at rate 0,
    /// the time limit for publishing.
    #[arg(long, default_value_t = 5.0)]
    pub duration_secs: f64,
    /// Number of events [default: rate × duration; publish scenario at rate 0: 10000].
    #[arg(long, short = 'm')]
    pub events: Option<u64>,
    /// Concurrent keep-alive publisher connections, so one slow answer does not hold
    /// up the schedule.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Padding added to each payload, in bytes [default: 0; slow scenario: 4096].
    #[arg(long)]
    pub pad_bytes: Option<usize>,
    /// Publishing that falls behind the schedule stops this long after the last event
    /// was due; after the last publish, deliveries are awaited at most this long.
    #[arg(long, default_value_t = 5.0)]
    pub drain_secs: f64,
    /// Give up on one publish request after this long.
    #[arg(long, default_value_t = 10.0)]
    pub post_timeout_secs: f64,
}

/// A server's address and the `Host` header value, from `--url` or `--sub-url`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddrV4,
    pub host_header: String,
}

/// Parses `http://HOST[:PORT][/]`; refuses anything outside 127.0.0.0/8 so that a
/// typo can never aim the load at another machine.
pub fn parse_url(url: &str) -> Result<Endpoint, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("URL {url:?}: only http:// URLs are supported"))?;
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') {
        return Err(format!(
            "URL {url:?}: give only scheme, host and port; use --sub-path/--pub-path for paths"
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("URL {url:?}: bad port {p:?}"))?,
        ),
        None => (authority, 80),
    };
    let ip = if host.eq_ignore_ascii_case("localhost") {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse::<Ipv4Addr>()
            .map_err(|_| format!("URL {url:?}: host must be an IPv4 loopback address"))?
    };
    if !ip.is_loopback() {
        return Err(format!(
            "URL {url:?}: refusing a non-loopback address (only 127.0.0.0/8 is allowed)"
        ));
    }
    Ok(Endpoint {
        addr: SocketAddrV4::new(ip, port),
        host_header: authority.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parsing() {
        let e = parse_url("http://127.0.0.1:3000/").unwrap();
        assert_eq!(e.addr, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(e.host_header, "127.0.0.1:3000");
        assert_eq!(parse_url("http://localhost").unwrap().addr.port(), 80);
        assert!(parse_url("http://10.0.0.1:80").is_err());
        assert!(parse_url("https://127.0.0.1").is_err());
        assert!(parse_url("http://127.0.0.1:3000/events").is_err());
    }

    #[test]
    fn cli_parses_each_scenario() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "b", "--target", "nchan", "fanout", "-n", "10", "--rate", "5", "--json", "x",
        ])
        .unwrap();
        assert_eq!(cli.common.target, Target::Nchan);
        assert!(matches!(
            cli.command,
            Command::Scenario(Scenario::Fanout { ref subs, .. }) if subs.subscribers == 10
        ));
        assert!(cli.common.json.is_some());
        assert_eq!(cli.common.sub_endpoints().unwrap().len(), 1);
        let cli = Cli::try_parse_from(["b", "report", "dir", "--svg-dir", "out"]).unwrap();
        assert!(matches!(cli.command, Command::Report(ref r) if r.svg_dir.ends_with("out")));
    }

    #[test]
    fn sub_urls_replace_url_for_subscribers_only() {
        let cli = Cli::try_parse_from([
            "b",
            "--url",
            "http://127.0.0.1:1",
            "idle",
            "--sub-url",
            "http://127.0.0.1:2",
            "--sub-url",
            "http://127.0.0.3:3/",
        ])
        .unwrap();
        let ports: Vec<u16> = cli
            .common
            .sub_endpoints()
            .unwrap()
            .iter()
            .map(|e| e.addr.port())
            .collect();
        assert_eq!(ports, [2, 3]);
        assert_eq!(parse_url(&cli.common.url).unwrap().addr.port(), 1);
        let cli = Cli::try_parse_from(["b", "idle", "--sub-url", "http://10.0.0.1:2"]).unwrap();
        assert!(cli.common.sub_endpoints().is_err());
    }
}
