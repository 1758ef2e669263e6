//! What handlers send the hub, and what comes back.

use crate::error::ApiError;
use crate::socket::SocketCloser;
use crate::topic::TopicFilter;
use actix::Message;

use super::ClientId;
use super::history::Entry;
use super::subscription::Subscription;

/// Sent by `GET /events`. Registers the client and takes its replay in one hub step,
/// so nothing published meanwhile is missed or repeated.
#[derive(Message)]
#[rtype(result = "Result<Subscription, ApiError>")]
pub struct Connect {
    /// Empty: global broadcasts only.
    pub filters: Vec<TopicFilter>,
    /// `Last-Event-ID` (or `lastEventId`): replay what followed it.
    pub last_event_id: Option<String>,
    /// Closes the client's socket when the hub drops it as slow.
    pub closer: Option<SocketCloser>,
}

/// Sent when a client's stream is dropped, however it ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect(pub ClientId);

/// Sent by the [`Publisher`](super::Publisher) with `do_send`, nobody waiting for an
/// answer: events already accepted, given ids and encoded, to fan out and keep.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub entries: Vec<Entry>,
}

/// Sent by `GET /stats`.
#[derive(Message)]
#[rtype(result = "Stats")]
pub struct GetStats;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub clients: usize,
    pub topics: std::collections::BTreeMap<String, usize>,
    pub published: u64,
    pub delivered: u64,
    pub dropped_slow: u64,
    pub history: usize,
    pub uptime_secs: u64,
}

/// Sent by `GET /readyz`: whether the hub still accepts clients and events.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct IsReady;

/// Sent once at shutdown: end every stream (each client sees its response finish and
/// reconnects, to another node if there is one) and refuse new clients.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;
