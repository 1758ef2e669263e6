//! `ssehub [--config PATH] [--bind ADDR:PORT]`: exit 2 on a bad configuration, 0
//! after a clean stop.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ssehub::config::{self, Config};
use ssehub::startup::Application;

/// A Server-Sent Events pub/sub hub.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// The configuration file [default: ./config.toml, if present].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen on this address, overriding server.bind.
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let path = cli.config.clone().unwrap_or_else(|| "config.toml".into());
    let config = match Config::load(
        &path,
        cli.config.is_some(),
        |key| std::env::var(key).ok(),
        cli.bind.as_deref(),
    ) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    actix_web::rt::System::new().block_on(async move {
        let signalled = match ssehub::shutdown::listen() {
            Ok(signalled) => signalled,
            Err(e) => {
                log::error!("cannot listen for signals: {e}");
                return ExitCode::FAILURE;
            }
        };
        let app = match Application::build(&config) {
            Ok(app) => app,
            Err(mut e) => {
                // Name where the address came from, as for every other bad value.
                e.source_name = match (&cli.bind, std::env::var(BIND_VAR)) {
                    (Some(_), _) => "--bind".into(),
                    (None, Ok(_)) => BIND_VAR.into(),
                    (None, Err(_)) => path.display().to_string(),
                };
                return fail(&e);
            }
        };
        log::info!(
            "ssehub listening on port {}: {}",
            app.port(),
            config::summary(&config)
        );
        let stopper = app.stopper();
        actix_web::rt::spawn(async move {
            signalled.await;
            stopper.stop().await;
        });
        match app.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log::error!("server failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The environment variable that sets `server.bind`.
const BIND_VAR: &str = "SSEHUB_SERVER_BIND";

/// One line naming the file, the key and the problem; exit status 2 (SPEC §2).
fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("ssehub: {error}");
    ExitCode::from(2)
}
