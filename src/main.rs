//! `ssehub [--config PATH] [--bind ADDR:PORT]` runs the server; `ssehub token …` prints
//! a JWT. Exit 2 on a bad configuration, 0 after a clean stop.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ssehub::auth::{self, Claims};
use ssehub::config::{self, Config, ConfigError};
use ssehub::startup::Application;
use ssehub::topic::Patterns;

/// A Server-Sent Events pub/sub hub.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// The configuration file [default: ./config.toml, if present].
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Listen on this address, overriding server.bind.
    #[arg(long, value_name = "ADDR:PORT", global = true)]
    bind: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print a JWT signed with the configured auth.jwt_secret (HS256), read from the
    /// same config file, environment and flags as the server.
    #[command(after_help = TOKEN_EXAMPLES)]
    Token(TokenArgs),
}

const TOKEN_EXAMPLES: &str = "\
Examples:
  # a back end that publishes stock prices and news, for a day
  ssehub token --publish stocks 'news.*' --ttl 24h
  # a browser that may subscribe to one private topic, for an hour
  ssehub token --subscribe private.alice
  # an operator: publish anything (and global broadcasts), use /stats and /clients
  ssehub token --publish '*' --admin --ttl 30d
  # then:
  curl -H \"Authorization: Bearer $(ssehub token --publish stocks)\" ...";

#[derive(Args)]
struct TokenArgs {
    /// Topic patterns the token may publish to (`*`: every topic and global broadcasts).
    #[arg(long, value_name = "PATTERN", num_args = 1..)]
    publish: Vec<String>,
    /// Topic patterns the token may subscribe to, private ones included.
    #[arg(long, value_name = "PATTERN", num_args = 1..)]
    subscribe: Vec<String>,
    /// May use the admin endpoints (/stats, /clients).
    #[arg(long)]
    admin: bool,
    /// How long the token is valid: 90s, 15m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
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
    match cli.command {
        Some(Command::Token(args)) => token(&config, &path, args),
        None => serve(&config, &cli, &path),
    }
}

fn serve(config: &Config, cli: &Cli, path: &std::path::Path) -> ExitCode {
    actix_web::rt::System::new().block_on(async move {
        let signalled = match ssehub::shutdown::listen() {
            Ok(signalled) => signalled,
            Err(e) => {
                log::error!("cannot listen for signals: {e}");
                return ExitCode::FAILURE;
            }
        };
        let app = match Application::build(config) {
            Ok(app) => app,
            Err(mut e) => {
                e.source_name = source_of(&e, cli, path);
                return fail(&e);
            }
        };
        let scheme = match config.server.tls.cert_file.is_empty() {
            true => "http",
            false => "https",
        };
        let ip = config.bind_addr().ip();
        // An unspecified address listens everywhere; this machine reaches it locally.
        let host = match ip.is_unspecified() {
            true => "127.0.0.1".to_owned(),
            false if ip.is_ipv6() => format!("[{ip}]"),
            false => ip.to_string(),
        };
        log::info!(
            "ssehub listening: open {scheme}://{host}:{}/ (the publisher console is \
             /admin.html); {}",
            app.port(),
            config::summary(config)
        );
        for warning in config::warnings(config, open_files_limit()) {
            log::warn!("{warning}");
        }
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

/// `ssehub token`: the JWT on standard output, nothing else.
fn token(config: &Config, path: &std::path::Path, args: TokenArgs) -> ExitCode {
    let secret = &config.auth.jwt_secret;
    if secret.is_empty() {
        return fail(&format!(
            "token: auth.jwt_secret is not set (in {} or SSEHUB_AUTH_JWT_SECRET): there is \
             nothing to sign with. (With jwt_public_key_file, sign tokens with the private \
             key, outside ssehub.)",
            path.display()
        ));
    }
    for (flag, list) in [
        ("--publish", &args.publish),
        ("--subscribe", &args.subscribe),
    ] {
        if let Err(problem) = Patterns::parse(list) {
            return fail(&format!("token: {flag}: {problem}"));
        }
    }
    let claims = Claims {
        exp: None,
        publish: args.publish,
        subscribe: args.subscribe,
        admin: args.admin,
    };
    match auth::mint(secret, args.ttl, claims) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("token: cannot sign: {e}")),
    }
}

/// The soft limit on open files, from `/proc/self/limits` (Linux); `None` elsewhere.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Where a value refused at start came from: the flag, the environment variable, or
/// the file.
fn source_of(error: &ConfigError, cli: &Cli, path: &std::path::Path) -> String {
    if error.key == "server.bind" && cli.bind.is_some() {
        return "--bind".into();
    }
    let var = format!("SSEHUB_{}", error.key.replace('.', "_").to_uppercase());
    match std::env::var_os(&var) {
        Some(_) => var,
        None => path.display().to_string(),
    }
}

/// One line naming the file, the key and the problem; exit status 2 (SPEC §2).
fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("ssehub: {error}");
    ExitCode::from(2)
}
