//! `ssehub-bench`: load generator for ssehub and, for comparison, Nginx + Nchan.
//!
//! Raw HTTP/1.1 over tokio sockets, one small task per SSE connection, latency measured
//! from each event's scheduled publish time. See `ssehub-bench --help` and the README
//! section on benchmarking for the scenarios.

mod churn;
mod cli;
mod procstat;
mod publisher;
mod report;
mod scenarios;
mod sse_client;
mod summary;
mod wire;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use cli::{Cli, Command, Scenario};

/// Descriptors kept back for the runtime, stdio, `/proc` reads and the JSON file.
const FD_RESERVE: u64 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Scenario(scenario) => run(&cli, scenario),
        Command::Report(args) => summary::run(args).map_err(Failure::Error),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::TimedOut) => {
            eprintln!(
                "ssehub-bench: run abandoned after --timeout-secs {}",
                cli.common.timeout_secs
            );
            ExitCode::from(3)
        }
        Err(Failure::Error(e)) => {
            eprintln!("ssehub-bench: {e}");
            ExitCode::from(2)
        }
    }
}

enum Failure {
    TimedOut,
    Error(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Error(e)
    }
}

fn run(cli: &Cli, scenario: &Scenario) -> Result<(), Failure> {
    let endpoint = cli::parse_url(&cli.common.url)?;
    let sub_endpoints = cli.common.sub_endpoints()?;
    let limit = procstat::raise_fd_limit().map_err(|e| format!("raising RLIMIT_NOFILE: {e}"))?;
    let needed = sockets_needed(scenario) + FD_RESERVE;
    if needed > limit {
        return Err(format!(
            "this run needs about {needed} file descriptors but RLIMIT_NOFILE allows {limit} \
             (the hard limit); use fewer connections or raise the hard limit"
        )
        .into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.common.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    let ctx = scenarios::Ctx::new(&cli.common, endpoint, &sub_endpoints);
    let limit = Duration::from_secs_f64(cli.common.timeout_secs);
    let outcome = runtime.block_on(async { tokio::time::timeout(limit, ctx.run(scenario)).await });
    // Do not wait for sockets still being torn down (aborted tasks, slow servers).
    runtime.shutdown_timeout(Duration::from_secs(1));
    let report = outcome.map_err(|_| Failure::TimedOut)??;
    report
        .print(&mut std::io::stdout().lock())
        .map_err(|e| format!("writing the report: {e}"))?;
    if let Some(path) = &cli.common.json {
        report
            .write_json(path)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Sockets a scenario holds open at once.
fn sockets_needed(scenario: &Scenario) -> u64 {
    let n = match scenario {
        Scenario::Fanout { subs, load } | Scenario::Slow { subs, load, .. } => {
            subs.subscribers + load.publishers
        }
        Scenario::Publish { subscribers, load } => subscribers + load.publishers,
        Scenario::Idle { subs, .. } | Scenario::Connect { subs } => subs.subscribers,
        Scenario::Churn { concurrency, .. } => *concurrency,
    };
    n as u64
}
