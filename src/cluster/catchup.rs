//! A subscriber may reach this node with a `Last-Event-ID` issued through another node
//! a moment ago, before this node's reader has read that far: a load balancer sends a
//! reconnect anywhere. Unknown to the node's history, the id would get a false
//! `hub.gap` followed by everything since the node's newest event (a replay of what
//! the client has). So such a subscription first waits, briefly, for the reader to
//! pass the id.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::sync::watch;

use crate::hub::Hub;
use crate::hub::messages::Holds;

/// The longest a subscription waits for the reader; past it, the id is a gap after all.
/// The reader is normally milliseconds behind; this is for a burst.
const WAIT_AT_MOST: Duration = Duration::from_secs(2);

/// How long looking a publisher's id up in Redis may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(500);

/// A stream id, `<ms>-<seq>`, as the two numbers it orders by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position(u64, u64);

impl Position {
    pub fn parse(id: &str) -> Option<Self> {
        let (ms, seq) = id.split_once('-')?;
        Some(Self(ms.parse().ok()?, seq.parse().ok()?))
    }
}

#[derive(Clone)]
pub struct Catchup {
    /// How far the reader has handed the stream to the hub.
    pub(super) read: watch::Receiver<Position>,
    pub(super) redis: ConnectionManager,
    /// The hash from publisher id to stream id.
    pub(super) owners: Arc<str>,
}

impl Catchup {
    /// Returns once this node has read the entry `id` names, at once when it has (or
    /// when no entry has that id), or after [`WAIT_AT_MOST`].
    pub async fn wait_for(&self, id: &str, hub: &Addr<Hub>) {
        let target = match Position::parse(id) {
            Some(position) => position,
            // A publisher's own id: the stream id of its entry, unless the node holds it.
            None => {
                if hub.send(Holds(id.into())).await.unwrap_or(true) {
                    return;
                }
                match self.entry_of(id).await {
                    Some(position) => position,
                    None => return,
                }
            }
        };
        let mut read = self.read.clone();
        if *read.borrow() >= target {
            return;
        }
        let _ = tokio::time::timeout(WAIT_AT_MOST, read.wait_for(|p| *p >= target)).await;
    }

    async fn entry_of(&self, id: &str) -> Option<Position> {
        let mut redis = self.redis.clone();
        let lookup = redis.hget::<_, _, Option<String>>(&*self.owners, id);
        match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(entry)) => Position::parse(&entry?),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_order_by_their_two_numbers_not_as_strings() {
        let p = |id| Position::parse(id).unwrap();
        assert!(p("999-5") < p("1000-0"));
        assert!(p("1000-9") < p("1000-10"));
        assert_eq!(Position::parse("mine"), None);
        assert_eq!(Position::parse("1-x"), None);
    }
}
