//! The process's stop signal: SIGINT or SIGTERM.

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal};

/// Installs the handlers at once (so a signal that arrives while the server starts
/// is not the default "terminate") and answers a future that resolves at the first
/// SIGINT or SIGTERM.
pub fn listen() -> std::io::Result<impl Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => log::info!("SIGINT: shutting down"),
            _ = terminate.recv() => log::info!("SIGTERM: shutting down"),
        }
    })
}
