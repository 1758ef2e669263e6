//! A panic on a thread whose work nothing else can take over ends the process.
//!
//! actix catches a panic in an actor's handler at the task boundary and leaves the
//! thread running without the actor: a hub that panicked would leave a server that
//! accepts connections and publishes but never fans anything out. A supervisor
//! (systemd, Kubernetes) restarting the whole process is better than that half-alive
//! state, so such threads mark themselves, and a panic hook (installed once, keeping
//! the default report) logs the panic and exits with [`EXIT_STATUS`] when the
//! panicking thread is marked. Panics elsewhere (a handler: answered with a 500) are
//! reported as before and the process lives on.

use std::cell::Cell;
use std::sync::Once;

/// `EX_SOFTWARE` from sysexits.h: an internal software error.
pub const EXIT_STATUS: i32 = 70;

thread_local! {
    static FATAL: Cell<bool> = const { Cell::new(false) };
}

/// Installs the panic hook, once per process.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            report(info);
            if FATAL.get() {
                let thread = std::thread::current();
                log::error!(
                    "thread {} panicked ({info}); nothing can take over its work, so the \
                     process exits with status {EXIT_STATUS} for a supervisor to restart it",
                    thread.name().unwrap_or("unnamed")
                );
                std::process::exit(EXIT_STATUS);
            }
        }));
    });
}

/// Marks the current thread: a panic on it ends the process (once [`install`]ed).
pub fn mark_this_thread() {
    FATAL.set(true);
}
