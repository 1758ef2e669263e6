//! A real `redis-server` for one test (SPEC §10): on a free loopback port, in its own
//! directory, with persistence on and exact (`appendfsync always`), so that a
//! `stop` is a crash that loses nothing Redis acknowledged, and `start` brings the same
//! data back on the same port.
//!
//! `redis-server` is found where `SSEHUB_REDIS_SERVER` points, or else on `PATH`.
//! Where it is missing, a test that needs it says loudly that it was skipped and how to
//! install it, and passes, so `cargo test` passes on a machine that has only Rust
//! (SPEC §2). With `SSEHUB_REQUIRE_REDIS=1`, as `.ci/run` sets it, its absence fails
//! the test instead, like `SSEHUB_REQUIRE_BROWSER` for Chromium (`browser.rs`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::PATIENCE;
use crate::tools::{Tool, skip_or_fail};

/// Makes a missing `redis-server` fail the test instead of skipping it (any value but
/// `0` or empty).
const REQUIRE: &str = "SSEHUB_REQUIRE_REDIS";

/// An explicit path to the executable, used as given.
const VARIABLE: &str = "SSEHUB_REDIS_SERVER";

const HOW_TO_INSTALL: &str =
    "`apt-get install redis-server` (Debian, Ubuntu), or set SSEHUB_REDIS_SERVER to its path";

/// Gives each server of this process its own directory.
static SERVERS: AtomicUsize = AtomicUsize::new(0);

/// One `redis-server`, killed when dropped.
pub(crate) struct Redis {
    executable: PathBuf,
    port: u16,
    /// Its `--dir`: the append-only file and `redis.log`; removed on drop.
    dir: PathBuf,
    /// `None` while stopped.
    child: Option<Child>,
}

impl Redis {
    /// Starts a server and waits until it answers `PING`; `None` when the test is to
    /// be skipped because `redis-server` is not installed. A test ends there:
    /// `let Some(redis) = Redis::start_new().await else { return };`.
    pub(crate) async fn start_new() -> Option<Redis> {
        let executable = find()?;
        let n = SERVERS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ssehub-redis-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A port the system just gave out and nobody holds: free unless another
        // process takes it in the moment between (redis then fails to start, and the
        // test says so).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Redis {
            executable,
            port,
            dir,
            child: None,
        };
        redis.start().await;
        Some(redis)
    }

    /// `redis://127.0.0.1:PORT`, for `cluster.redis_url`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL, as in a crash: what Redis acknowledged is on disk already
    /// (`appendfsync always`), nothing else is flushed or closed. Waits for the
    /// process to be gone, so once this returns no command can be applied any more.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (so with the same data)
    /// and waits until it answers `PING` (after loading its append-only file).
    pub(crate) async fn start(&mut self) {
        assert!(self.child.is_none(), "redis-server is running already");
        let child = Command::new(&self.executable)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", ""])
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            .args(["--protected-mode", "no"])
            .arg("--logfile")
            .arg(self.log())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", self.executable.display()));
        self.child = Some(child);
        self.wait_for_pong().await;
    }

    fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    async fn wait_for_pong(&mut self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if ping(self.port).await {
                return;
            }
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && tokio::time::Instant::now() < deadline,
                "redis-server on port {} never answered PING (exited: {exited:?}); its log: {}",
                self.port,
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // A test that failed midway must not leave its server running.
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `PING` in RESP's inline form; true on `+PONG` (a server still loading its file
/// answers `-LOADING`).
async fn ping(port: u16) -> bool {
    let exchange = async {
        let mut socket = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        socket.write_all(b"PING\r\n").await.ok()?;
        let mut answer = [0u8; 7];
        socket.read_exact(&mut answer).await.ok()?;
        Some(&answer == b"+PONG\r\n")
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// The executable, or `None` after telling the person running the tests that this test
/// was skipped; fails the test instead when `SSEHUB_REQUIRE_REDIS` is set.
fn find() -> Option<PathBuf> {
    let tool = Tool {
        what: "redis-server",
        variable: VARIABLE,
        names: &["redis-server"],
    };
    match tool.find() {
        Ok(path) => Some(path),
        Err(missing) => {
            skip_or_fail(REQUIRE, "a real redis-server", &[missing], HOW_TO_INSTALL);
            None
        }
    }
}
