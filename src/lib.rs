//! ssehub: a Server-Sent Events pub/sub hub.
//!
//! Browsers subscribe with `EventSource` (`GET /events?topic=...`); back ends publish
//! with `POST /broadcast`; the hub fans each event out to every subscriber that wants
//! it. `../SPEC.md` of the project is the external contract.
//!
//! # Layout
//!
//! - [`auth`]: who may publish, subscribe to private topics and use admin endpoints.
//! - [`config`]: typed configuration; file < environment < flags.
//! - [`cors`]: the CORS layer for `allowed_origins`.
//! - [`startup`]: builds the hub and the HTTP server; stops them in order.
//! - [`shutdown`]: the SIGINT/SIGTERM future.
//! - [`hub`]: the actor that owns the registry, the topic index and the history, with
//!   its publish side.
//! - [`publishing`]: where `POST /broadcast` hands events: the hub, or a cluster's stream.
//! - [`cluster`]: several nodes as one hub through a Redis Stream.
//! - [`conn`]: each connection's handle, which the hub trips to close it.
//! - [`tls`]: HTTPS with HTTP/2 from `[server.tls]`, and the HSTS header.
//! - [`fatal`]: a panic on the hub's thread ends the process.
//! - [`event`]: a publish request (JSON) to validated events.
//! - [`metrics`]: the Prometheus metrics, updated without locks.
//! - [`topic`]: topic names and subscription filters.
//! - [`sse`]: the wire format; each event encoded once.
//! - [`query`]: a strict query-string reader.
//! - [`request_id`]: `X-Request-Id` on every answer, and in log lines.
//! - [`routes`]: the endpoints.
//! - [`error`]: the one place a refusal becomes a status and a JSON body.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod cors;
pub mod error;
pub mod event;
pub mod fatal;
pub mod hub;
pub mod metrics;
pub mod publishing;
pub mod query;
pub mod request_id;
pub mod routes;
#[cfg(test)]
pub(crate) mod scratch;
pub mod shutdown;
pub mod sse;
pub mod startup;
pub mod tls;
pub mod topic;
