//! A connected client as the hub keeps it, and what its queue holds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use uuid::Uuid;

use crate::auth::Sight;
use crate::conn::ConnHandle;
use crate::topic::{Topic, TopicFilter};

use super::queue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub(super) u64);

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

pub struct Client {
    /// The id `/clients` and the debug lines show: random, so it reveals nothing
    /// about how many clients came before.
    pub uuid: Uuid,
    pub peer: Option<SocketAddr>,
    pub since: Instant,
    /// The receiver is this client's response body: dropping this sender ends the
    /// stream, so disconnecting a client is removing its entry, nothing more.
    pub tx: queue::Sender,
    pub filters: Box<[TopicFilter]>,
    /// What its token lets it see of private topics.
    pub sight: Sight,
    /// The fan-out's `seq` of the last event matched for this client, so that it is
    /// matched once even when several of its filters match.
    pub matched: u64,
    /// The fan-out's `seq` of the last event queued for this client: a client whose
    /// mark is older than the last heartbeat round has been sent nothing since.
    pub mark: u64,
    /// Its connection: tripped when the client is dropped for not reading, since ending
    /// the stream alone would not close a connection whose socket is full.
    pub conn: ConnHandle,
}

/// One item of a client's queue (`client_buffer` counts these). Small (the size of
/// `Bytes`): a queue's slots are this size.
#[derive(Debug, Clone)]
pub enum Item {
    /// One event's frame, or a heartbeat: the same bytes for every receiver.
    Frame(Bytes),
    /// The events of a batch that match this client, in order.
    Batch(Arc<Selection>),
}

/// Some of a batch's frames. The frames are the batch's own, shared by every client it
/// reaches, and clients that match the same events share one `Selection`: a batch
/// costs its frames once, plus one bitset per distinct set of matching events.
#[derive(Debug)]
pub struct Selection {
    pub frames: Arc<[Bytes]>,
    /// Bit `i` set: `frames[i]` is for this client.
    pub picks: Box<[u64]>,
}

impl Selection {
    /// The index of the first picked frame at or after `from`.
    pub fn next_pick(&self, from: usize) -> Option<usize> {
        (from..self.frames.len()).find(|&i| self.picks[i / 64] & (1 << (i % 64)) != 0)
    }

    pub fn count(&self) -> u64 {
        self.picks.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

impl Client {
    /// Whether it may get an event whose private topics are `private`.
    pub fn sees(&self, private: &[Topic]) -> bool {
        private.is_empty() || self.sight.covers(private)
    }
}

/// Why a client leaves the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// Its queue was full: it is not reading.
    Slow,
    /// Its socket accepted nothing for `stall_timeout_secs` while bytes waited.
    Stalled,
    /// An admin disconnected it (`DELETE /clients/<id>`).
    Admin,
    /// Its stream is gone already.
    Gone,
}

impl Leave {
    /// Whether its connection must be closed by the hub: a client that is not reading
    /// would never see its stream end.
    pub fn closes_connection(self) -> bool {
        matches!(self, Self::Slow | Self::Stalled)
    }
}
