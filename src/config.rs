//! Typed configuration: SPEC §11 defaults, then the file, then `SSEHUB_<SECTION>_<KEY>`
//! environment variables, then command-line flags.
//!
//! Every key is known in advance (the defaults serialise to the full key list), so an
//! environment variable is matched against that list rather than split on `_`, which
//! would be ambiguous (`SSEHUB_SERVER_TLS_CERT_FILE`). Unknown keys are errors, and every
//! error names the file (or variable), the key and what was wrong, on one line.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::topic::Patterns;
use toml::{Table, Value};

/// Queue items per client at most: far beyond any useful burst tolerance, and well
/// inside what a bounded channel can be asked for.
const MAX_CLIENT_BUFFER: usize = 1_000_000;

/// An HS256 secret shorter than the hash (RFC 7518 §3.2) can be guessed offline from
/// any token it signed.
const MIN_SECRET_BYTES: usize = 32;

/// Prefix of the environment variables that override config keys.
const ENV_PREFIX: &str = "SSEHUB";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub sse: SseConfig,
    pub publish: PublishConfig,
    pub auth: AuthConfig,
    pub cors: CorsConfig,
    pub cluster: ClusterConfig,
    pub demo: DemoConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    /// 0 = one fewer than the cores (the hub has a thread of its own), at least 1.
    pub workers: usize,
    pub static_dir: PathBuf,
    pub shutdown_timeout_secs: u64,
    pub tls: TlsConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SseConfig {
    /// Items queued per client before it is dropped as slow.
    pub client_buffer: usize,
    pub heartbeat_secs: u64,
    pub retry_ms: u64,
    pub history_size: usize,
    /// 0 = keep events until evicted by size.
    pub history_ttl_secs: u64,
    /// Events are evicted once their encoded frames together pass this.
    pub history_max_bytes: usize,
    /// Durable history (SPEC §3); empty keeps it in memory only.
    pub history_path: String,
    pub history_flush_ms: u64,
    /// A client whose socket accepts no bytes this long, while bytes wait for it, is
    /// dropped.
    pub stall_timeout_secs: u64,
    pub max_clients: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    pub max_body_bytes: usize,
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub publish_token: String,
    pub jwt_secret: String,
    pub jwt_public_key_file: String,
    pub private_topics: Vec<String>,
}

/// Secrets never reach a log line.
impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("AuthConfig")
            .field("publish_token", &redact(&self.publish_token))
            .field("jwt_secret", &redact(&self.jwt_secret))
            .field("jwt_public_key_file", &self.jwt_public_key_file)
            .field("private_topics", &self.private_topics)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    pub redis_url: String,
    pub stream_key: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Publish the server time every N seconds to the topic `time`; 0 = off.
    pub clock_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:3000".into(),
            workers: 0,
            static_dir: "web".into(),
            shutdown_timeout_secs: 10,
            tls: TlsConfig::default(),
        }
    }
}

impl Default for SseConfig {
    fn default() -> Self {
        Self {
            client_buffer: 256,
            heartbeat_secs: 15,
            retry_ms: 3000,
            history_size: 1000,
            history_ttl_secs: 0,
            history_max_bytes: 64 * 1024 * 1024,
            history_path: String::new(),
            history_flush_ms: 100,
            stall_timeout_secs: 30,
            max_clients: 100_000,
        }
    }
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1_048_576,
        }
    }
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: vec!["*".into()],
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            stream_key: "ssehub:events".into(),
        }
    }
}

/// A configuration that cannot be used: printed as one line, and the process exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {key}{sep}{problem}", sep = if key.is_empty() { "" } else { ": " })]
pub struct ConfigError {
    /// The file, the environment variable or the flag the bad value came from.
    pub source_name: String,
    /// Dotted key path (`sse.client_buffer`); empty when the whole file is at fault.
    pub key: String,
    pub problem: String,
}

impl Config {
    /// Reads `path` (a missing file is an error only when `required`), applies the
    /// environment and the `--bind` flag, and checks every value.
    pub fn load(
        path: &Path,
        required: bool,
        env: impl Fn(&str) -> Option<String>,
        bind_flag: Option<&str>,
    ) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let error = |source_name: &str, key: &str, problem: String| ConfigError {
            source_name: source_name.to_owned(),
            key: key.to_owned(),
            problem,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(error(&file, "", format!("cannot read: {e}"))),
        };
        let mut table: Table =
            toml::from_str(&text).map_err(|e| error(&file, "", one_line(e.message())))?;

        let from_env = apply_env(&mut table, &env)?;
        if let Some(bind) = bind_flag {
            server_table(&mut table).insert("bind".into(), Value::String(bind.into()));
        }

        let config: Config =
            serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let key = if key == "." { String::new() } else { key };
                let source = from_env.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
                error(
                    source.unwrap_or(&file),
                    &key,
                    one_line(&e.inner().to_string()),
                )
            })?;

        config.check().map_err(|(key, problem)| {
            let source = match key {
                "server.bind" if bind_flag.is_some() => "--bind".to_owned(),
                _ => from_env
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or(file.clone(), |(_, var)| var.clone()),
            };
            error(&source, key, problem)
        })?;
        Ok(config)
    }

    /// Rules the types alone cannot express. Answers with the key and the problem.
    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.server.bind.parse::<SocketAddr>().is_err() {
            return Err((
                "server.bind",
                format!(
                    "{:?} is not an address like 127.0.0.1:3000",
                    self.server.bind
                ),
            ));
        }
        let at_least_one = [
            ("sse.client_buffer", self.sse.client_buffer as u64),
            ("sse.heartbeat_secs", self.sse.heartbeat_secs),
            ("sse.stall_timeout_secs", self.sse.stall_timeout_secs),
            ("sse.history_flush_ms", self.sse.history_flush_ms),
            ("sse.max_clients", self.sse.max_clients as u64),
            ("publish.max_body_bytes", self.publish.max_body_bytes as u64),
        ];
        if let Some((key, _)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Err((key, "must be at least 1".into()));
        }
        if self.sse.client_buffer > MAX_CLIENT_BUFFER {
            return Err((
                "sse.client_buffer",
                format!("must be at most {MAX_CLIENT_BUFFER}"),
            ));
        }
        // Both files or neither, each readable and valid PEM, the key the certificate's.
        crate::tls::server_config(&self.server.tls)?;
        if !self.sse.history_path.is_empty() && !self.cluster.redis_url.is_empty() {
            return Err((
                "sse.history_path",
                "cannot be set with cluster.redis_url: in a cluster, history lives in Redis".into(),
            ));
        }
        if !self.cluster.redis_url.is_empty() {
            crate::cluster::check_url(&self.cluster.redis_url)
                .map_err(|e| ("cluster.redis_url", e))?;
            if self.cluster.stream_key.is_empty() {
                return Err(("cluster.stream_key", "must not be empty".into()));
            }
        }
        Patterns::parse(&self.auth.private_topics).map_err(|e| ("auth.private_topics", e))?;
        if !self.auth.jwt_secret.is_empty() && self.auth.jwt_secret.len() < MIN_SECRET_BYTES {
            return Err((
                "auth.jwt_secret",
                format!("must be at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"),
            ));
        }
        let jwt_key = !self.auth.jwt_secret.is_empty() || !self.auth.jwt_public_key_file.is_empty();
        if !self.auth.private_topics.is_empty() && !jwt_key {
            return Err((
                "auth.private_topics",
                "needs auth.jwt_secret or auth.jwt_public_key_file: subscribing to a private \
                 topic takes a JWT"
                    .into(),
            ));
        }
        check_origins(&self.cors.allowed_origins).map_err(|e| ("cors.allowed_origins", e))
    }

    pub fn bind_addr(&self) -> SocketAddr {
        // unwrap: `check` refused every value that does not parse.
        self.server.bind.parse().unwrap()
    }

    /// The number of HTTP worker threads: on 2 cores one worker plus the hub's thread
    /// measured faster than two workers plus the hub (PERF-NOTES).
    pub fn worker_count(&self) -> usize {
        match self.server.workers {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1))
                .max(1),
            n => n,
        }
    }
}

/// `["*"]`, or origins as browsers send them: `scheme://host[:port]`, nothing more (an
/// origin with a path or a trailing slash would never match, silently).
fn check_origins(origins: &[String]) -> Result<(), String> {
    if origins.iter().any(|o| o == "*") {
        return match origins.len() {
            1 => Ok(()),
            _ => Err("\"*\" allows every origin: it cannot be listed with others".into()),
        };
    }
    for origin in origins {
        let bad = |why: &str| Err(format!("{origin:?} is not an origin ({why})"));
        let Some((scheme, host)) = origin.split_once("://") else {
            return bad("expected scheme://host[:port], e.g. https://app.example");
        };
        if scheme != "http" && scheme != "https" {
            return bad("the scheme must be http or https");
        }
        let uri: Result<actix_web::http::Uri, _> = origin.parse();
        let valid = uri.is_ok_and(|u| u.path() == "/" && u.query().is_none())
            && !host.is_empty()
            && !host.contains(['/', '?', '#', '@', ' ']);
        if !valid {
            return bad("only scheme://host[:port], without path, slash or query");
        }
    }
    Ok(())
}

/// Error texts from the TOML parser may span lines; the exit message is one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn server_table(table: &mut Table) -> &mut Table {
    let server = table
        .entry("server")
        .or_insert_with(|| Value::Table(Table::new()));
    if !server.is_table() {
        // A non-table `server` is reported by deserialisation; keep the flag out of it.
        *server = Value::Table(Table::new());
    }
    // unwrap: made a table just above.
    server.as_table_mut().unwrap()
}

/// Applies every `SSEHUB_<SECTION>_<KEY>` that is set. Returns (dotted key, variable)
/// for each, so errors can name the variable rather than the file.
fn apply_env(
    table: &mut Table,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    // unwrap: the defaults are plain data and always serialise.
    let defaults = Value::try_from(Config::default()).unwrap();
    let mut keys = Vec::new();
    known_keys(&defaults, &mut Vec::new(), &mut keys);

    let mut applied = Vec::new();
    for (path, default) in keys {
        let var = format!("{ENV_PREFIX}_{}", path.join("_").to_uppercase());
        let Some(raw) = env(&var) else { continue };
        let value = match default {
            // A string key takes the text as it is: `SSEHUB_SERVER_BIND=0.0.0.0:80`.
            Value::String(_) => Value::String(raw),
            _ => toml::from_str::<Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .ok_or_else(|| ConfigError {
                    source_name: var.clone(),
                    key: path.join("."),
                    problem: format!("{raw:?} is not a TOML value"),
                })?,
        };
        let mut at = &mut *table;
        for section in &path[..path.len() - 1] {
            let entry = at
                .entry(section.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            // unwrap: made a table just above.
            at = entry.as_table_mut().unwrap();
        }
        at.insert(path[path.len() - 1].clone(), value);
        applied.push((path.join("."), var));
    }
    Ok(applied)
}

fn known_keys(value: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    match value {
        Value::Table(table) => {
            for (key, value) in table {
                path.push(key.clone());
                known_keys(value, path, out);
                path.pop();
            }
        }
        leaf => out.push((path.clone(), leaf.clone())),
    }
}

/// Logged at start: every key, no secret.
pub fn summary(config: &Config) -> String {
    format!(
        "bind={} workers={} static_dir={} client_buffer={} heartbeat_secs={} retry_ms={} \
         history_size={} history_ttl_secs={} history_max_bytes={} stall_timeout_secs={} \
         max_clients={} max_body_bytes={} demo.clock_secs={} tls={} auth={} private_topics={:?} \
         allowed_origins={:?} cluster={}",
        config.server.bind,
        config.worker_count(),
        config.server.static_dir.display(),
        config.sse.client_buffer,
        config.sse.heartbeat_secs,
        config.sse.retry_ms,
        config.sse.history_size,
        config.sse.history_ttl_secs,
        config.sse.history_max_bytes,
        config.sse.stall_timeout_secs,
        config.sse.max_clients,
        config.publish.max_body_bytes,
        config.demo.clock_secs,
        // Both files or neither (`check`): on is HTTPS, with HTTP/2 and HTTP/1.1.
        if config.server.tls.cert_file.is_empty() {
            "off"
        } else {
            "on"
        },
        auth_mode(&config.auth),
        config.auth.private_topics,
        config.cors.allowed_origins,
        match config.cluster.redis_url.is_empty() {
            true => "off".into(),
            false => format!(
                "{} stream_key={}",
                crate::cluster::shown_url(&config.cluster.redis_url),
                config.cluster.stream_key
            ),
        },
    )
}

/// Which credentials are configured, never what they are.
fn auth_mode(auth: &AuthConfig) -> String {
    let mut modes = Vec::new();
    if !auth.publish_token.is_empty() {
        modes.push("publish-token");
    }
    if !auth.jwt_secret.is_empty() {
        modes.push("jwt-hs256");
    }
    if !auth.jwt_public_key_file.is_empty() {
        modes.push("jwt-public-key");
    }
    match modes.is_empty() {
        true => "loopback-only".into(),
        false => modes.join("+"),
    }
}

/// Proxies and load balancers commonly close a connection idle for 60 s.
const PROXY_IDLE_SECS: u64 = 60;

/// Below this, a burst of a few milliseconds' scheduling delay drops healthy clients
/// (PERF-NOTES: 64 items did at 2,000 events/s).
const SMALL_CLIENT_BUFFER: usize = 32;

/// Settings that work but are likely to hurt, one sentence each, for the start-up log.
/// `open_files` is the process's limit on open files, if known.
pub fn warnings(config: &Config, open_files: Option<u64>) -> Vec<String> {
    let mut warnings = Vec::new();
    let addr = config.bind_addr();
    if !addr.ip().is_loopback() && config.server.tls.cert_file.is_empty() {
        warnings.push(format!(
            "server.bind {addr} is reachable from other machines without TLS: tokens and \
             events travel in clear text (set [server.tls], or terminate TLS in a proxy)"
        ));
    }
    if config.sse.heartbeat_secs >= PROXY_IDLE_SECS {
        warnings.push(format!(
            "sse.heartbeat_secs = {}: proxies and load balancers commonly close connections \
             idle for {PROXY_IDLE_SECS} s, cutting quiet streams",
            config.sse.heartbeat_secs
        ));
    }
    if config.sse.client_buffer < SMALL_CLIENT_BUFFER {
        warnings.push(format!(
            "sse.client_buffer = {}: a short burst will drop healthy clients as slow",
            config.sse.client_buffer
        ));
    }
    if !config.auth.private_topics.is_empty() && config.cors.allowed_origins == ["*"] {
        warnings.push(
            "private_topics with cors.allowed_origins = [\"*\"]: browsers send no cookie \
             cross-origin with *, so pages on other origins must pass the token as ?token="
                .into(),
        );
    }
    if let Some(limit) = open_files
        && config.sse.max_clients as u64 >= limit
    {
        warnings.push(format!(
            "sse.max_clients = {} but the process may open only {limit} files: clients past \
             that are refused by the kernel, not with 503 (raise LimitNOFILE / ulimit -n)",
            config.sse.max_clients
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load(text: &str, env: &[(&str, &str)], bind: Option<&str>) -> Result<Config, ConfigError> {
        let mut file = tempfile();
        file.1.write_all(text.as_bytes()).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let loaded = Config::load(
            &file.0,
            true,
            |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            bind,
        );
        // Read once: test runs leave nothing behind.
        let _ = std::fs::remove_file(&file.0);
        loaded
    }

    fn tempfile() -> (PathBuf, std::fs::File) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("ssehub-test-{}-{n}.toml", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        (path, file)
    }

    #[test]
    fn the_shipped_config_is_the_spec_defaults() {
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
        let config = Config::load(Path::new(shipped), true, |_| None, None).unwrap();
        let mut expected = Config::default();
        expected.demo.clock_secs = config.demo.clock_secs;
        assert!(
            config.demo.clock_secs > 0,
            "the shipped config turns the clock on"
        );
        assert_eq!(
            Value::try_from(&config).unwrap(),
            Value::try_from(&expected).unwrap()
        );
    }

    #[test]
    fn precedence_is_flag_then_environment_then_file() {
        let text = "[server]\nbind = \"127.0.0.1:1\"\n[sse]\nclient_buffer = 8\n";
        let config = load(text, &[], None).unwrap();
        assert_eq!(
            (config.server.bind.as_str(), config.sse.client_buffer),
            ("127.0.0.1:1", 8)
        );

        let env = [
            ("SSEHUB_SERVER_BIND", "127.0.0.1:2"),
            ("SSEHUB_SSE_CLIENT_BUFFER", "9"),
        ];
        let config = load(text, &env, None).unwrap();
        assert_eq!(
            (config.server.bind.as_str(), config.sse.client_buffer),
            ("127.0.0.1:2", 9)
        );

        let config = load(text, &env, Some("127.0.0.1:3")).unwrap();
        assert_eq!(config.server.bind, "127.0.0.1:3");
    }

    #[test]
    fn nested_and_list_keys_come_from_the_environment() {
        let env = [
            ("SSEHUB_CORS_ALLOWED_ORIGINS", r#"["*"]"#),
            ("SSEHUB_DEMO_CLOCK_SECS", "2"),
        ];
        let config = load("", &env, None).unwrap();
        assert_eq!(config.cors.allowed_origins, vec!["*"]);
        assert_eq!(config.demo.clock_secs, 2);
        let err = load("", &[("SSEHUB_SERVER_TLS_CERT_FILE", "x.pem")], None).unwrap_err();
        assert_eq!(err.source_name, "SSEHUB_SERVER_TLS_CERT_FILE");
        assert_eq!(err.key, "server.tls.cert_file");
    }

    #[test]
    fn an_unknown_key_names_its_section_and_itself() {
        let err = load("[server]\nbnd = \"x\"\n", &[], None).unwrap_err();
        assert_eq!(err.key, "server.bnd");
        assert!(err.problem.contains("unknown field `bnd`"), "{err}");
        assert!(err.to_string().starts_with(&err.source_name));
        let err = load("[servr]\n", &[], None).unwrap_err();
        assert!(err.problem.contains("unknown field `servr`"), "{err}");
    }

    #[test]
    fn a_wrong_type_names_the_key_and_the_variable_it_came_from() {
        let err = load("[sse]\nclient_buffer = \"many\"\n", &[], None).unwrap_err();
        assert_eq!(err.key, "sse.client_buffer");
        assert!(err.problem.contains("invalid type"), "{err}");

        let err = load("", &[("SSEHUB_SSE_HEARTBEAT_SECS", "soon")], None).unwrap_err();
        assert_eq!(err.source_name, "SSEHUB_SSE_HEARTBEAT_SECS");
        let err = load("", &[("SSEHUB_SSE_HEARTBEAT_SECS", "\"soon\"")], None).unwrap_err();
        assert_eq!(
            (err.source_name.as_str(), err.key.as_str()),
            ("SSEHUB_SSE_HEARTBEAT_SECS", "sse.heartbeat_secs")
        );
    }

    #[test]
    fn values_are_checked_beyond_their_types() {
        let err = load("[server]\nbind = \"localhost\"\n", &[], None).unwrap_err();
        assert_eq!(err.key, "server.bind");
        let err = load("", &[], Some("nowhere")).unwrap_err();
        assert_eq!(
            (err.source_name.as_str(), err.key.as_str()),
            ("--bind", "server.bind")
        );
        let err = load("[sse]\nclient_buffer = 0\n", &[], None).unwrap_err();
        assert_eq!(err.key, "sse.client_buffer");
        let err = load("[sse]\nclient_buffer = 1000001\n", &[], None).unwrap_err();
        assert_eq!(err.key, "sse.client_buffer");
        let err = load("[auth]\nprivate_topics = [\"a*b\"]\n", &[], None).unwrap_err();
        assert_eq!(err.key, "auth.private_topics");
        let err = load("[auth]\nprivate_topics = [\"admin.*\"]\n", &[], None).unwrap_err();
        assert!(err.problem.contains("needs auth.jwt_secret"), "{err}");
        for origins in [
            r#"["*", "https://a.test"]"#,
            r#"["https://a.test/"]"#,
            r#"["a.test"]"#,
            r#"["ftp://a.test"]"#,
            r#"["https://a.test/x"]"#,
        ] {
            let err =
                load(&format!("[cors]\nallowed_origins = {origins}\n"), &[], None).unwrap_err();
            assert_eq!(err.key, "cors.allowed_origins", "{origins}");
            assert!(err.problem.contains("origin"), "{err}");
        }
        let ok = r#"["https://a.test", "http://localhost:8080"]"#;
        assert!(load(&format!("[cors]\nallowed_origins = {ok}\n"), &[], None).is_ok());
        let err = load("[cluster]\nredis_url = \"http://x\"\n", &[], None).unwrap_err();
        assert_eq!(err.key, "cluster.redis_url");
        let err = load(
            "[cluster]\nredis_url = \"redis://127.0.0.1\"\nstream_key = \"\"\n",
            &[],
            None,
        )
        .unwrap_err();
        assert_eq!(err.key, "cluster.stream_key");
        let both =
            "[cluster]\nredis_url = \"redis://127.0.0.1\"\n[sse]\nhistory_path = \"h.redb\"\n";
        assert_eq!(load(both, &[], None).unwrap_err().key, "sse.history_path");
        assert!(
            load(
                "[cluster]\nredis_url = \"redis://127.0.0.1:6379/0\"\n",
                &[],
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn malformed_toml_and_missing_files_are_one_line_errors() {
        let err = load("[server\n", &[], None).unwrap_err();
        assert!(!err.to_string().contains('\n'), "{err}");
        let missing = Path::new("/nonexistent/ssehub.toml");
        let err = Config::load(missing, true, |_| None, None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/ssehub.toml: cannot read"),
            "{err}"
        );
        assert!(Config::load(missing, false, |_| None, None).is_ok());
    }

    #[test]
    fn risky_settings_are_warned_about_and_the_defaults_are_not() {
        assert!(warnings(&Config::default(), Some(1 << 20)).is_empty());
        let mut risky = Config::default();
        risky.server.bind = "0.0.0.0:80".into();
        risky.sse.heartbeat_secs = 90;
        risky.sse.client_buffer = 8;
        risky.auth.jwt_secret = "x".repeat(32);
        risky.auth.private_topics = vec!["p.*".into()];
        let said = warnings(&risky, Some(1024)).join("\n");
        for words in [
            "clear text",
            "heartbeat_secs = 90",
            "client_buffer = 8",
            "cookie",
            "1024 files",
        ] {
            assert!(said.contains(words), "{words:?} not in {said}");
        }
        assert!(
            !summary(&risky).contains(&"x".repeat(32)),
            "no secret in the summary"
        );
        assert!(summary(&risky).contains("auth=jwt-hs256"));
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let auth = AuthConfig {
            publish_token: "s3cret".into(),
            ..AuthConfig::default()
        };
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
