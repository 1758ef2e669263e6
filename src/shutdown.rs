//! The process's stop signal: SIGINT or SIGTERM.

use tokio::signal::unix::{SignalKind, signal};

/// Resolves at the first SIGINT or SIGTERM.
pub async fn signalled() -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = interrupt.recv() => log::info!("SIGINT: shutting down"),
        _ = terminate.recv() => log::info!("SIGTERM: shutting down"),
    }
    Ok(())
}
