//! Building the application: the hub on a thread of its own, the HTTP server with its
//! routes, and the handle that stops both in order.
//!
//! The server is put together from its parts (actix-server's accept loop, actix-http's
//! `HttpService`, our `App`) rather than with actix-web's `HttpServer`, because each
//! accepted connection is first wrapped in a [`ConnIo`], the handle the hub closes it
//! by (see [`conn`](crate::conn)); `HttpServer` cannot wrap the stream. The chain is
//! accept → `ConnIo` → HTTP/1.1, or with `[server.tls]` accept → `ConnIo` → rustls →
//! HTTP/2 or HTTP/1.1 as ALPN chose: TLS runs over the `ConnIo`, so tripping its handle
//! closes a TLS connection, and every HTTP/2 stream on it, the same way.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use actix::{Addr, Arbiter};
use actix_files::Files;
use actix_http::body::BoxBody;
use actix_http::{Extensions, HttpServiceBuilder, Protocol, Request, Response};
use actix_server::{Server, ServerHandle};
use actix_service::{
    IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt, fn_service, map_config,
};
use actix_tls::accept::TlsError;
use actix_tls::accept::rustls_0_23::{Acceptor, TlsStream};
use actix_web::dev::AppConfig;
use actix_web::rt::net::TcpStream;
use actix_web::{App, guard, middleware, web};
use socket2::{Domain, Socket, Type};

use crate::auth::Auth;
use crate::config::{Config, ConfigError};
use crate::conn::{ConnHandle, ConnIo, ConnSet};
use crate::hub::messages::Shutdown;
use crate::hub::{self, Hub, Publisher, Settings};
use crate::metrics::Metrics;
use crate::publishing::Publishing;
use crate::routes::{self, broadcast::MaxBody};
use crate::{cluster, error, fatal, request_id, tls};

/// Pending connections the kernel may queue for us: a burst of thousands of
/// reconnecting browsers (after a restart, say) must not overflow into SYN retries,
/// which cost a client a whole second. Linux caps it at `net.core.somaxconn`.
/// (std's `TcpListener::bind` listens with 128, hence [`listen`].)
const LISTEN_BACKLOG: i32 = 4096;

/// How long streams and requests in flight get to finish at a stop before every
/// connection still open is closed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Connections per worker beyond `max_clients`: publishers, admins, pages.
const OTHER_CONNECTIONS: usize = 1024;

/// How long a connection that is closing gets to say goodbye (actix-web's default).
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Application {
    server: Server,
    port: u16,
    stopper: Stopper,
    /// The hub's thread; stopped when the server has stopped.
    hub_thread: Arbiter,
    /// In cluster mode, the thread that reads the stream; stopped with the hub's.
    cluster_thread: Option<Arbiter>,
}

/// Stops the application in the order SPEC §2 asks: no new connections, no new
/// publishes, every open stream ended cleanly by the hub, then the server. actix's
/// graceful stop waits for open connections and an SSE body never ends by itself, so
/// the hub goes first.
#[derive(Clone)]
pub struct Stopper {
    hub: Addr<Hub>,
    publisher: Publisher,
    connections: ConnSet,
    server: ServerHandle,
    timeout: Duration,
}

impl Stopper {
    pub async fn stop(&self) {
        // First, so that no publish is accepted from here on (503, and /readyz too):
        // those still queued are skipped by the hub rather than waited for.
        self.publisher.stop();
        self.server.pause().await;
        // One deadline for the whole stop (SPEC §2). An error means the hub has
        // stopped already: its streams are gone with it. A hub that does not answer in
        // time must not hold the stop either.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let hub_by = deadline.checked_sub(SHUTDOWN_GRACE).unwrap_or(deadline);
        let _ = tokio::time::timeout_at(hub_by, self.hub.send(Shutdown)).await;
        // Streams end and requests in flight are answered within the grace; whatever
        // is still open then (a client not reading its stream's end, an idle
        // keep-alive connection) is closed, so actix's graceful stop has nothing left
        // to wait for.
        actix_web::rt::time::sleep(SHUTDOWN_GRACE).await;
        self.connections.trip_all();
        if tokio::time::timeout_at(deadline, self.server.stop(true))
            .await
            .is_err()
        {
            self.server.stop(false).await;
        }
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
        // Checked when the config was loaded; read again here, where it is used.
        let tls = tls::server_config(&config.server.tls).map_err(|(key, problem)| ConfigError {
            source_name: String::new(),
            key: key.into(),
            problem,
        })?;
        let https = tls.is_some();
        // Before the listener: a store another ssehub holds is refused here, naming it.
        let store = match config.sse.history_path.as_str() {
            "" => None,
            path => Some(hub::Store::open(path.as_ref()).map_err(history_error)?),
        };
        let stall_timeout = Duration::from_secs(config.sse.stall_timeout_secs);
        let listener = listen(addr, stall_timeout)
            .map_err(|e| bind_error(format!("cannot listen on {addr}: {e}")))?;
        let local_addr = listener.local_addr().unwrap_or(addr);

        let auth = Auth::from_config(&config.auth)?;
        if !auth.configured() {
            log::warn!(
                "no auth.publish_token and no JWT key: publishing and the admin endpoints \
                 are open to loopback clients only (behind a reverse proxy on this machine, \
                 that is everyone the proxy lets through: set a token)"
            );
        }
        fatal::install();
        let hub_thread = Arbiter::new();
        let metrics = Metrics::new();
        let settings = Settings::from_config(config);
        let clustered = !config.cluster.redis_url.is_empty();
        let link = Arc::new(AtomicBool::new(false));
        let hub = match store {
            None if clustered => hub::start_clustered(
                settings,
                metrics.clone(),
                &hub_thread.handle(),
                link.clone(),
            ),
            None => hub::start(settings, metrics.clone(), &hub_thread.handle()),
            Some(store) => hub::start_with_store(
                settings,
                metrics.clone(),
                &hub_thread.handle(),
                store,
                Duration::from_millis(config.sse.history_flush_ms),
            )
            .map_err(history_error)?,
        };
        let (publishing, stats, catchup, cluster_thread) = match clustered {
            false => (
                Publishing::Local(hub.publisher.clone()),
                hub.stats,
                None,
                None,
            ),
            true => {
                let node = cluster::start(config, hub.hub.clone(), hub.publisher.clone(), link)
                    .map_err(|e| ConfigError {
                        source_name: String::new(),
                        key: "cluster.redis_url".into(),
                        problem: e.to_string(),
                    })?;
                let id = uuid::Uuid::new_v4();
                log::info!(
                    "cluster: node {id}, stream {:?} on {}; ready once Redis answers and \
                     history is loaded",
                    config.cluster.stream_key,
                    cluster::shown_url(&config.cluster.redis_url)
                );
                (
                    Publishing::Cluster(node.publisher),
                    hub.stats.for_node(id),
                    Some(node.catchup),
                    Some(node.thread),
                )
            }
        };

        let static_dir = config.server.static_dir.clone();
        if !static_dir.is_dir() {
            log::warn!(
                "static_dir {} is not a directory: / serves nothing",
                static_dir.display()
            );
        }
        let max_body = MaxBody(config.publish.max_body_bytes);
        let origins = config.cors.allowed_origins.clone();
        let app_hub = hub.hub.clone();
        let connector = hub.connector.clone();
        let app = move || {
            App::new()
                // Innermost first: a panic becomes a 500 error, every error (and a CORS
                // refusal, see `routes::configure`) gets the JSON shape, every answer
                // its request id, and with TLS its Strict-Transport-Security.
                .wrap(actix_web_lab::middleware::CatchPanic::default())
                .wrap(middleware::from_fn(error::errors_as_json))
                .wrap(middleware::from_fn(request_id::middleware))
                // Outermost, so every answer carries it (with TLS only).
                .wrap(tls::hsts(https))
                .app_data(web::Data::new(auth.clone()))
                .app_data(web::Data::new(app_hub.clone()))
                .app_data(web::Data::new(publishing.clone()))
                .app_data(web::Data::new(connector.clone()))
                .app_data(web::Data::new(catchup.clone()))
                .app_data(web::Data::new(stats.clone()))
                .app_data(web::Data::new(metrics.clone()))
                .app_data(web::Data::new(max_body))
                .configure(|cfg| routes::configure(cfg, &origins))
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

        // The app reads nothing of `AppConfig` (host, scheme, address are taken from
        // each request), so its public default serves, with TLS too.
        let app_service = move || map_config(app().into_factory(), |_| AppConfig::default());
        let connections = ConnSet::default();
        let accepted = connections.clone();
        let server = Server::build()
            .workers(config.worker_count())
            // actix-server's default (25,000 per worker) would leave max_clients
            // unreachable: the connection past it would wait in the backlog, not get
            // its 503.
            .max_concurrent_connections(config.sse.max_clients + OTHER_CONNECTIONS)
            .disable_signals()
            .shutdown_timeout(config.server.shutdown_timeout_secs);
        let server = match tls {
            // accept → ConnIo → HTTP/1.1
            None => server.listen("ssehub", listener, move || {
                let http = http_layer(local_addr, ConnIo::handle).finish(app_service());
                let accepted = accepted.clone();
                fn_service(move |stream: TcpStream| {
                    let io = accepted.accept(stream);
                    async move {
                        let peer = io.peer_addr();
                        Ok((io, Protocol::Http1, peer))
                    }
                })
                .and_then(http)
            }),
            // accept → ConnIo → rustls → HTTP/2 or HTTP/1.1, as ALPN chose
            Some(tls) => {
                // actix-tls bounds each worker's handshakes in flight and times out slow
                // ones (3 s), so a client that never finishes one holds nothing for long.
                let acceptor = Acceptor::new(tls);
                server.listen("ssehub", listener, move || {
                    let http = http_layer(local_addr, tls_conn_handle).finish(app_service());
                    let accepted = accepted.clone();
                    fn_service(move |stream: TcpStream| {
                        let io = accepted.accept(stream);
                        async move { Ok(io) }
                    })
                    .and_then(acceptor.clone().map_err(TlsError::into_service_error))
                    .and_then(fn_service(|io: TlsStream<ConnIo>| async move {
                        let (conn, session) = io.get_ref();
                        let protocol = match session.alpn_protocol() {
                            Some(b"h2") => Protocol::Http2,
                            _ => Protocol::Http1,
                        };
                        let peer = conn.peer_addr();
                        Ok((io, protocol, peer))
                    }))
                    .and_then(http.map_err(TlsError::Service))
                })
            }
        }
        .map_err(|e| bind_error(format!("cannot serve on {addr}: {e}")))?
        .run();

        let stopper = Stopper {
            hub: hub.hub,
            publisher: hub.publisher,
            connections,
            server: server.handle(),
            timeout: Duration::from_secs(config.server.shutdown_timeout_secs),
        };
        Ok(Self {
            server,
            port: local_addr.port(),
            stopper,
            hub_thread,
            cluster_thread,
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
        if let Some(thread) = self.cluster_thread {
            thread.stop();
        }
        self.hub_thread.stop();
        result
    }
}

/// A history store that cannot be used: exit 2 naming `sse.history_path` (SPEC §3).
fn history_error(e: hub::OpenError) -> ConfigError {
    ConfigError {
        source_name: String::new(),
        key: "sse.history_path".into(),
        problem: e.to_string(),
    }
}

/// The HTTP layer of every connection, over the I/O type `T` (a [`ConnIo`], or TLS
/// over one); `handle` finds the connection's [`ConnHandle`], which handlers read
/// from the connection data (one handle for every HTTP/2 stream of a connection).
fn http_layer<T, S>(
    local_addr: SocketAddr,
    handle: fn(&T) -> &ConnHandle,
) -> HttpServiceBuilder<T, S>
where
    T: 'static,
    S: ServiceFactory<Request, Config = ()>,
    S::Error: Into<Response<BoxBody>> + 'static,
    S::InitError: std::fmt::Debug,
    <S::Service as Service<Request>>::Future: 'static,
{
    HttpServiceBuilder::default()
        // A client that vanishes mid-stream must be noticed (PERF-NOTES: the default
        // keeps half-closed connections, leaking one descriptor per vanished client).
        .h1_allow_half_closed(false)
        .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
        .local_addr(local_addr)
        .on_connect_ext(move |io: &T, data: &mut Extensions| {
            data.insert::<ConnHandle>(handle(io).clone());
        })
}

/// The handle of a TLS connection: its `ConnIo`'s, under rustls.
fn tls_conn_handle(io: &TlsStream<ConnIo>) -> &ConnHandle {
    io.get_ref().0.handle()
}

/// A listening socket as std would make it (address reuse, so a restart need not wait
/// for old connections' TIME_WAIT), with our backlog and the options its connections
/// inherit.
fn listen(addr: SocketAddr, stall_timeout: Duration) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    crate::conn::prepare_listener(&socket, stall_timeout)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}
