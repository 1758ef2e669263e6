//! What handlers send the hub, and what comes back.

use std::net::SocketAddr;

use actix::Message;
use bytes::Bytes;
use uuid::Uuid;

use crate::auth::Sight;
use crate::conn::ConnHandle;
use crate::error::ApiError;
use crate::topic::{Topic, TopicFilter};

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
    /// What its token lets it see of private topics.
    pub sight: Sight,
    /// The client's connection, closed by the hub if the client stops reading.
    pub conn: ConnHandle,
    /// Its id for `/clients` and the logs.
    pub uuid: Uuid,
    pub peer: Option<SocketAddr>,
}

/// Sent by `GET /clients`: the connected clients, most recent first, at most `limit`.
#[derive(Message)]
#[rtype(result = "Vec<ClientInfo>")]
pub struct ListClients {
    pub limit: usize,
}

/// One client, as `GET /clients` shows it (SPEC §8).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientInfo {
    pub id: Uuid,
    pub peer: Option<String>,
    pub topics: Vec<String>,
    pub connected_secs: u64,
    /// Items in its queue, not yet taken by its connection.
    pub queued: usize,
}

/// Sent by `DELETE /clients/<id>`: ends that client's stream. Answers whether it was
/// connected.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Kick(pub Uuid);

/// Sent by the [`Publisher`](super::Publisher) with `do_send`, nobody waiting for an
/// answer: events already accepted, given ids and encoded, to fan out and keep.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub entries: Vec<Entry>,
    /// Their frames' bytes, counted in the backlog until handled.
    pub bytes: usize,
}

/// An event read back from the cluster's stream (SPEC §10): its id (the publisher's, or
/// the stream's) and frame final, encoded once on this node for all its clients.
#[derive(Debug)]
pub struct Arrived {
    pub id: Box<str>,
    pub topics: Box<[Topic]>,
    pub frame: Bytes,
    /// When the stream took it (its stream id's milliseconds): the age a TTL counts,
    /// the same on every node.
    pub at_unix_ms: u64,
    pub server_id: bool,
}

/// Sent by the cluster's reader, which waits for the answer (so a hub that falls
/// behind slows the reading of the stream, never a publisher): events the stream
/// holds, in its order, to fan out and keep.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Relay(pub Vec<Arrived>);

/// Sent once by the cluster's reader, when it first reaches Redis: the stream's
/// newest events, oldest first, to replay. Until then the node takes no subscriber
/// (its replay would be wrong) and is not ready.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Load(pub Vec<Arrived>);

/// Sent by a cluster node's subscription with a `Last-Event-ID` of a publisher's own:
/// whether history holds it (else it may not have been read yet, see
/// `cluster::Catchup`).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Holds(pub Box<str>);

/// Sent by `GET /readyz`: whether the hub still accepts clients and events. Answered
/// by the hub itself, so a hub that no longer handles messages is not ready.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct IsReady;

/// Sent once at shutdown: end every stream (each client sees its response finish and
/// reconnects, to another node if there is one) and refuse new clients.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;
