//! Building the application: the hub on a thread of its own, the HTTP server with its
//! routes, and the handle that stops both in order.

use std::net::{SocketAddr, TcpListener};

use actix::{Addr, Arbiter};
use actix_files::Files;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, guard, web};
use socket2::{Domain, Socket, Type};

use crate::config::{Config, ConfigError};
use crate::hub::messages::Shutdown;
use crate::hub::{self, Hub, Settings};
use crate::routes::{self, broadcast::MaxBody};
use crate::{cors, socket};

/// Pending connections the kernel may queue for us: a burst of thousands of
/// reconnecting browsers (after a restart, say) must not overflow into SYN retries,
/// which cost a client a whole second. Linux caps it at `net.core.somaxconn`.
/// (std's `TcpListener::bind` listens with 128, and actix's `backlog` setting applies
/// only to sockets actix binds itself, hence [`listen`].)
const LISTEN_BACKLOG: i32 = 4096;

pub struct Application {
    server: Server,
    port: u16,
    stopper: Stopper,
    /// The hub's thread; stopped when the server has stopped.
    hub_thread: Arbiter,
}

/// Stops the application in the order SPEC §2 asks: no new connections, every open
/// stream ended cleanly by the hub, then the server. actix's graceful stop waits for
/// open connections and an SSE body never ends by itself, so the hub goes first.
#[derive(Clone)]
pub struct Stopper {
    hub: Addr<Hub>,
    server: ServerHandle,
}

impl Stopper {
    pub async fn stop(&self) {
        self.server.pause().await;
        // An error means the hub has stopped already: its streams are gone with it.
        let _ = self.hub.send(Shutdown).await;
        self.server.stop(true).await;
    }
}

impl Application {
    /// Binds the listener and starts the hub; the server runs once awaited. A bind
    /// failure is a configuration error (SPEC §2: exit 2 naming `server.bind`); its
    /// `source_name` is left for the caller, who knows where the address came from.
    pub fn build(config: &Config) -> Result<Self, ConfigError> {
        let addr = config.bind_addr();
        let listener = listen(addr).map_err(|e| ConfigError {
            source_name: String::new(),
            key: "server.bind".into(),
            problem: format!("cannot listen on {addr}: {e}"),
        })?;
        let port = listener.local_addr().map_or(addr.port(), |a| a.port());

        let hub_thread = Arbiter::new();
        let (hub, publisher) = hub::start(Settings::from_config(config), &hub_thread.handle());

        let static_dir = config.server.static_dir.clone();
        if !static_dir.is_dir() {
            log::warn!(
                "static_dir {} is not a directory: / serves nothing",
                static_dir.display()
            );
        }
        let max_body = MaxBody(config.publish.max_body_bytes);
        let origins = config.cors.allowed_origins.clone();
        let app_hub = hub.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(cors::layer(&origins))
                .app_data(web::Data::new(app_hub.clone()))
                .app_data(web::Data::new(publisher.clone()))
                .app_data(web::Data::new(max_body))
                .configure(routes::configure)
                .service(
                    Files::new("/", &static_dir)
                        .index_file("index.html")
                        // Other methods fall through to the JSON refusal rather than
                        // actix-files' plain-text 405.
                        .guard(guard::Any(guard::Get()).or(guard::Head()))
                        .default_handler(web::to(routes::not_found)),
                )
                .default_service(web::to(routes::not_found))
        })
        .workers(config.worker_count())
        // A client that vanishes mid-stream must be noticed (PERF-NOTES: the default
        // keeps half-closed connections, leaking one descriptor per vanished client).
        .h1_allow_half_closed(false)
        .on_connect(socket::record)
        .disable_signals()
        .shutdown_timeout(config.server.shutdown_timeout_secs)
        .listen(listener)
        .map_err(|e| ConfigError {
            source_name: String::new(),
            key: "server.bind".into(),
            problem: format!("cannot serve on {addr}: {e}"),
        })?
        .run();

        let stopper = Stopper {
            hub,
            server: server.handle(),
        };
        Ok(Self {
            server,
            port,
            stopper,
            hub_thread,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.hub_thread.stop();
        result
    }
}

/// A listening socket as std would make it (address reuse, so a restart need not wait
/// for old connections' TIME_WAIT), with our backlog.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}
