//! Building the application: the hub on a thread of its own, the HTTP server with its
//! routes, and the handle that stops both in order.
//!
//! The server is put together from its parts (actix-server's accept loop, actix-http's
//! `HttpService`, our `App`) rather than with actix-web's `HttpServer`, because each
//! accepted connection is first wrapped in a [`ConnIo`], the handle the hub closes it
//! by (see [`conn`](crate::conn)); `HttpServer` cannot wrap the stream. The chain is
//! accept → `ConnIo` → HTTP, so that TLS can be put between the last two.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix::{Addr, Arbiter};
use actix_files::Files;
use actix_http::{HttpService, Protocol};
use actix_server::{Server, ServerHandle};
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_service, map_config};
use actix_web::dev::AppConfig;
use actix_web::rt::net::TcpStream;
use actix_web::{App, guard, middleware, web};
use socket2::{Domain, Socket, Type};

use crate::config::{Config, ConfigError};
use crate::conn::{ConnHandle, ConnIo};
use crate::hub::messages::Shutdown;
use crate::hub::{self, Hub, Publisher, Settings};
use crate::routes::{self, broadcast::MaxBody};
use crate::{cors, error, fatal};

/// Pending connections the kernel may queue for us: a burst of thousands of
/// reconnecting browsers (after a restart, say) must not overflow into SYN retries,
/// which cost a client a whole second. Linux caps it at `net.core.somaxconn`.
/// (std's `TcpListener::bind` listens with 128, hence [`listen`].)
const LISTEN_BACKLOG: i32 = 4096;

/// How long a connection that is closing gets to say goodbye (actix-web's default).
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Application {
    server: Server,
    port: u16,
    stopper: Stopper,
    /// The hub's thread; stopped when the server has stopped.
    hub_thread: Arbiter,
}

/// Stops the application in the order SPEC §2 asks: no new connections, no new
/// publishes, every open stream ended cleanly by the hub, then the server. actix's
/// graceful stop waits for open connections and an SSE body never ends by itself, so
/// the hub goes first.
#[derive(Clone)]
pub struct Stopper {
    hub: Addr<Hub>,
    publisher: Publisher,
    server: ServerHandle,
    timeout: Duration,
}

impl Stopper {
    pub async fn stop(&self) {
        self.server.pause().await;
        // From here publishes get 503, and those still queued are skipped by the hub.
        self.publisher.stop();
        // An error means the hub has stopped already: its streams are gone with it. A
        // hub that does not answer in time must not hold the stop either.
        let _ = tokio::time::timeout(self.timeout, self.hub.send(Shutdown)).await;
        self.server.stop(true).await;
    }
}

impl Application {
    /// Binds the listener and starts the hub; the server runs once awaited. A bind
    /// failure is a configuration error (SPEC §2: exit 2 naming `server.bind`); its
    /// `source_name` is left for the caller, who knows where the address came from.
    pub fn build(config: &Config) -> Result<Self, ConfigError> {
        let addr = config.bind_addr();
        let bind_error = |problem: String| ConfigError {
            source_name: String::new(),
            key: "server.bind".into(),
            problem,
        };
        let listener =
            listen(addr).map_err(|e| bind_error(format!("cannot listen on {addr}: {e}")))?;
        let local_addr = listener.local_addr().unwrap_or(addr);

        fatal::install();
        let hub_thread = Arbiter::new();
        let hub = hub::start(Settings::from_config(config), &hub_thread.handle());

        let static_dir = config.server.static_dir.clone();
        if !static_dir.is_dir() {
            log::warn!(
                "static_dir {} is not a directory: / serves nothing",
                static_dir.display()
            );
        }
        let max_body = MaxBody(config.publish.max_body_bytes);
        let origins = config.cors.allowed_origins.clone();
        let (app_hub, publisher, stats) = (hub.hub.clone(), hub.publisher.clone(), hub.stats);
        let app = move || {
            App::new()
                .wrap(actix_web_lab::middleware::CatchPanic::default())
                .wrap(middleware::from_fn(error::internal_errors_as_json))
                .wrap(cors::layer(&origins))
                .app_data(web::Data::new(app_hub.clone()))
                .app_data(web::Data::new(publisher.clone()))
                .app_data(web::Data::new(stats.clone()))
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
        };

        let server = Server::build()
            .workers(config.worker_count())
            .disable_signals()
            .shutdown_timeout(config.server.shutdown_timeout_secs)
            .listen("ssehub", listener, move || {
                let http = HttpService::build()
                    // A client that vanishes mid-stream must be noticed (PERF-NOTES: the
                    // default keeps half-closed connections, leaking one descriptor per
                    // vanished client).
                    .h1_allow_half_closed(false)
                    .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                    .local_addr(local_addr)
                    .on_connect_ext(|io: &ConnIo, data| {
                        data.insert::<ConnHandle>(io.handle().clone());
                    })
                    // The app reads nothing of `AppConfig` (host, scheme, address are
                    // taken from each request), so its public default serves.
                    .finish(map_config(app().into_factory(), |_| AppConfig::default()));
                fn_service(|stream: TcpStream| async move {
                    let io = ConnIo::new(stream);
                    let peer = io.peer_addr();
                    Ok((io, Protocol::Http1, peer))
                })
                .and_then(http)
            })
            .map_err(|e| bind_error(format!("cannot serve on {addr}: {e}")))?
            .run();

        let stopper = Stopper {
            hub: hub.hub,
            publisher: hub.publisher,
            server: server.handle(),
            timeout: Duration::from_secs(config.server.shutdown_timeout_secs),
        };
        Ok(Self {
            server,
            port: local_addr.port(),
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
