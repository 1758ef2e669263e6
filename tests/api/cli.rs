//! The binary itself: bad configurations exit 2 with one line naming file and key;
//! SIGTERM ends every stream and exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::PATIENCE;

pub(crate) fn ssehub() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ssehub"));
    command.env_remove("RUST_LOG").stdin(Stdio::null());
    command
}

/// A config file for one test, removed when dropped, so test runs leave nothing behind.
pub(crate) fn write_config(name: &str, text: &str) -> Scratch {
    let path = std::env::temp_dir().join(format!("ssehub-cli-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    Scratch(path)
}

/// A file in the temp directory, removed when dropped.
pub(crate) struct Scratch(pub(crate) std::path::PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for Scratch {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the binary expecting it to refuse: answers its stderr, which must be one line.
pub(crate) fn refusal(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn bad_configurations_exit_2_naming_the_file_and_the_key() {
    let unknown = write_config("unknown", "[server]\nbnd = \"127.0.0.1:1\"\n");
    let line = refusal(ssehub().arg("--config").arg(&unknown));
    assert!(
        line.contains(unknown.to_str().unwrap()) && line.contains("server.bnd"),
        "{line}"
    );

    let wrong_type = write_config("type", "[sse]\nclient_buffer = \"lots\"\n");
    let line = refusal(ssehub().arg("--config").arg(&wrong_type));
    assert!(
        line.contains("sse.client_buffer") && line.contains("invalid type"),
        "{line}"
    );

    let fine = write_config("fine", "");
    let line = refusal(
        ssehub()
            .arg("--config")
            .arg(&fine)
            .env("SSEHUB_SSE_HEARTBEAT_SECS", "soon"),
    );
    assert!(
        line.contains("SSEHUB_SSE_HEARTBEAT_SECS") && line.contains("sse.heartbeat_secs"),
        "{line}"
    );

    let line = refusal(ssehub().arg("--config").arg("/nonexistent/ssehub.toml"));
    assert!(line.contains("/nonexistent/ssehub.toml"), "{line}");

    let line = refusal(
        ssehub()
            .arg("--config")
            .arg(&fine)
            .args(["--bind", "not-an-address"]),
    );
    assert!(
        line.contains("--bind") && line.contains("server.bind"),
        "{line}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let line = refusal(ssehub().arg("--config").arg(&fine).args(["--bind", &addr]));
    assert!(
        line.starts_with("ssehub: --bind: server.bind") && line.contains(&addr),
        "{line}"
    );
}

#[test]
fn sigterm_ends_every_stream_and_exits_0_within_the_shutdown_timeout() {
    let config = write_config(
        "run",
        "[server]\nshutdown_timeout_secs = 3\n[sse]\nheartbeat_secs = 60\n",
    );
    let (mut server, port) = start_server(&config);

    // Two raw subscribers; each reads until the server ends its stream.
    let readers: Vec<_> = (0..2)
        .map(|_| {
            use std::io::{Read, Write};
            let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            socket
                .write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            socket.set_read_timeout(Some(PATIENCE)).unwrap();
            let mut first = [0u8; 256];
            assert!(socket.read(&mut first).unwrap() > 0, "the stream started");
            std::thread::spawn(move || {
                let mut rest = Vec::new();
                // Ok(..) means the server closed the connection; a reset or a
                // timeout is an error.
                socket
                    .read_to_end(&mut rest)
                    .map(|_| String::from_utf8_lossy(&rest).into_owned())
            })
        })
        .collect();

    let took = terminate(&mut server, Duration::from_secs(3));
    assert!(took < Duration::from_secs(3 + 1), "{took:?}");
    for reader in readers {
        let rest = reader
            .join()
            .unwrap()
            .expect("the connection closed, neither reset nor timed out");
        // A clean end of a chunked response: the terminating zero-length chunk.
        assert!(rest.ends_with("0\r\n\r\n"), "{rest:?}");
    }
}

/// Starts the binary on a free port; answers it and the port its start-up line names.
pub(crate) fn start_server(config: &std::path::Path) -> (std::process::Child, u16) {
    let mut server = ssehub()
        .arg("--config")
        .arg(config)
        .args(["--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(server.stderr.take().unwrap());
    let port = loop {
        let mut line = String::new();
        assert!(
            log.read_line(&mut line).unwrap() > 0,
            "the server exited early"
        );
        // "ssehub listening: open http://127.0.0.1:PORT/ ..."
        if let Some(url) = line.split("listening: open ").nth(1) {
            let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
            break authority
                .rsplit(':')
                .next()
                .unwrap()
                .parse::<u16>()
                .unwrap();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    (server, port)
}

/// `POST /broadcast` over a plain socket (these tests have no async runtime).
fn publish(port: u16, body: &str) {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!(
        "POST /broadcast HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_subscriber_that_stopped_reading_does_not_hold_up_shutdown() {
    let config = write_config("stuck", "[server]\nshutdown_timeout_secs = 30\n");
    let (mut server, port) = start_server(&config);
    let mut stuck = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut stuck, b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    // Enough to fill its socket buffers, so its stream cannot finish by itself.
    let data = "x".repeat(64 * 1024);
    for _ in 0..24 {
        publish(port, &format!("{{\"data\": \"{data}\"}}"));
    }
    let took = terminate(&mut server, Duration::from_secs(30));
    // Far sooner than the 30 s the server would wait for a clean end.
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(stuck);
}

/// Sends SIGTERM and waits (at most `timeout` and a margin) for exit status 0;
/// answers how long the server took.
fn terminate(server: &mut std::process::Child, timeout: Duration) -> Duration {
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = server.try_wait().unwrap() {
            break exit;
        }
        assert!(started.elapsed() < timeout + PATIENCE, "did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(0));
    started.elapsed()
}
