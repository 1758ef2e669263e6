//! What handlers send the hub, and what comes back.

use actix::Message;
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::event::Event;
use crate::socket::SocketCloser;
use crate::topic::TopicFilter;

use super::ClientId;
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

/// Sent by `POST /broadcast` with `do_send`. The hub answers on `reply` as soon as it
/// has accepted the events and before it fans them out, so a publisher never waits
/// for subscribers (PERF-NOTES: a publish awaiting the fan-out throttles publishers).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub events: Vec<Event>,
    /// Posted as an array: a conflict names the event's index.
    pub batch: bool,
    pub reply: oneshot::Sender<Result<Accepted, ApiError>>,
}

/// The success answer of a publish.
#[derive(Debug)]
pub struct Accepted {
    pub ids: Vec<Box<str>>,
    /// Clients the events matched when the hub accepted them (summed over a batch).
    pub receivers: u64,
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

/// Sent once at shutdown: end every stream (each client sees its response finish and
/// reconnects, to another node if there is one) and refuse new clients.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;
