//! Failure modes (SPEC §1, §2): a hub that panics takes the process down rather than
//! leave it half-alive, and a stop refuses what it could not deliver.

use std::process::Command;
use std::time::Duration;

use actix::Arbiter;
use serde_json::json;
use ssehub::config::Config;
use ssehub::hub::{self, Settings, messages::IsReady};
use ssehub::metrics::Metrics;

use crate::helpers::{PATIENCE, spawn_app_with};

/// Set in the child process that `a_panic_in_the_hub_ends_the_process…` starts.
const CHILD: &str = "SSEHUB_TEST_HUB_PANIC_CHILD";

#[test]
fn a_panic_in_the_hub_is_logged_and_ends_the_process_with_a_failure_status() {
    if std::env::var_os(CHILD).is_some() {
        // The child: a real hub on a thread of its own, as `Application::build` starts
        // it, with the panic hook installed; then a panic on the hub's thread.
        let _ = env_logger::builder().is_test(false).try_init();
        ssehub::fatal::install();
        actix_web::rt::System::new().block_on(async {
            let thread = Arbiter::new();
            let settings = Settings::from_config(&Config::default());
            let handles = hub::start(settings, Metrics::new(), &thread.handle());
            assert!(handles.hub.send(IsReady).await.unwrap(), "the hub runs");
            thread.spawn(async { panic!("the hub failed on purpose") });
            tokio::time::sleep(PATIENCE).await;
        });
        // Reached only if the process outlived its hub.
        std::process::exit(0);
    }
    let test = "failures::a_panic_in_the_hub_is_logged_and_ends_the_process_with_a_failure_status";
    let output = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("RUST_LOG", "error")
        .output()
        .expect("the test binary runs again as the child");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(ssehub::fatal::EXIT_STATUS),
        "the child's stderr: {stderr}"
    );
    assert!(stderr.contains("the hub failed on purpose"), "{stderr}");
    assert!(
        stderr.contains("the process exits with status 70"),
        "the exit is logged: {stderr}"
    );
}

#[actix_web::test]
async fn a_publish_once_the_stop_has_begun_is_refused_with_503() {
    let app = spawn_app_with(|c| c.server.shutdown_timeout_secs = 5).await;
    // A keep-alive connection the stop does not close at once.
    app.publish(json!({"data": "before"})).await;
    let (_, refused) = tokio::join!(app.stop(), async {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while app.get("/readyz").await.status() != 503 {
            assert!(tokio::time::Instant::now() < deadline, "never stopping");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let response = app
            .http
            .post(app.url("/broadcast"))
            .header("Content-Type", "application/json")
            .body(r#"{"data": "after"}"#)
            .send()
            .await
            .expect("the stopping server still answers on an open connection");
        let retry_after = response.headers().get("Retry-After").cloned();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        (status, retry_after, body)
    });
    let (status, retry_after, body) = refused;
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some());
    assert_eq!(body["success"], false);
}

#[actix_web::test]
async fn a_busy_keep_alive_connection_does_not_hold_the_stop_past_its_grace() {
    let app = spawn_app_with(|c| c.server.shutdown_timeout_secs = 60).await;
    let _stream = app.subscribe("/events").await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    // One connection, kept busy as a page polling /stats keeps it: actix's graceful
    // stop alone would wait for it until shutdown_timeout_secs.
    let polling = async {
        let mut answered = 0;
        while let Ok(response) = app.http.get(app.url("/healthz")).send().await {
            answered += u32::from(response.status() == 200);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        answered
    };
    let stop = tokio::time::timeout(PATIENCE, app.stop());
    let (stopped, answered) = tokio::join!(stop, polling);
    assert!(stopped.is_ok(), "the stop waited for the busy connection");
    assert!(answered > 0, "it was served during the grace");
}
