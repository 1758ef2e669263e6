//! The node's one reader of the stream: loads history at start, then follows the stream
//! with `XREAD BLOCK` from the last id it has seen, handing each read to the hub.
//!
//! Through an outage it keeps that id and reconnects with backoff, so it resumes where
//! it stopped: nothing the stream still holds is skipped, and nothing is read twice.
//! It waits for the hub to take each read: a hub that falls behind slows the reading,
//! and the stream (not this node's memory) holds what is not yet read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::{Addr, ArbiterHandle};
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig, Client};
use tokio::sync::watch;

use crate::hub::Hub;
use crate::hub::messages::{Arrived, Load, Relay};

use super::{CONNECT_TIMEOUT, Keys, Position, stream};

/// How long one `XREAD` waits for new entries before it asks again.
const BLOCK: Duration = Duration::from_secs(2);

/// An `XREAD` unanswered this long past its block means the link is dead (a Redis
/// that vanished without closing the connection).
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes one read may bring at most, about: entries per read are this over the largest
/// event a publisher may send (at least 16, at most 1,000).
const READ_BUDGET: usize = 64 * 1024 * 1024;

/// Tries of the publishers' connection (each remakes it if it was dead) before a
/// reconnection counts as failed.
const PUBLISHING_CHECKS: u32 = 3;

/// Waits between reconnection attempts: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub struct Reader {
    pub client: Client,
    /// The publishers' connection, checked before the node says it is ready.
    pub publishing: ConnectionManager,
    pub keys: Keys,
    pub history_size: usize,
    /// `history_max_bytes`: loading stops once this much is read.
    pub history_max_bytes: usize,
    pub max_event_bytes: usize,
    pub hub: Addr<Hub>,
    /// Set while connected (after history is loaded); `/readyz` reads it.
    pub link: Arc<AtomicBool>,
    /// How far the hub has been handed the stream, for [`Catchup`](super::Catchup).
    pub read_to: watch::Sender<Position>,
}

/// Why a session with Redis ended.
enum Ended {
    /// Redis failed or went away: try again.
    Redis(redis::RedisError),
    /// The hub has stopped: so does the reader.
    HubGone,
}

impl From<redis::RedisError> for Ended {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e)
    }
}

pub fn spawn(thread: &ArbiterHandle, reader: Reader) {
    thread.spawn(reader.run());
}

impl Reader {
    async fn run(self) {
        // The last stream id handed to the hub; `None` until history is loaded.
        let mut last: Option<String> = None;
        let mut backoff = BACKOFF_FIRST;
        let mut failing = false;
        loop {
            match self.session(&mut last, &mut backoff).await {
                Ended::HubGone => return,
                Ended::Redis(e) => {
                    let was_up = self.link.swap(false, Ordering::Relaxed);
                    // Once per outage at warn; each retry at debug.
                    if was_up || !failing {
                        log::warn!(
                            "cluster: Redis unreachable ({e}): publishes get 503 and /readyz \
                             503 until it is back; open streams stay open"
                        );
                    } else {
                        log::debug!("cluster: Redis still unreachable: {e}");
                    }
                    failing = true;
                }
            }
            actix_web::rt::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One connection's life: load history if not yet done, then read until an error.
    async fn session(&self, last: &mut Option<String>, backoff: &mut Duration) -> Ended {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(BLOCK + READ_TIMEOUT));
        let mut redis = match self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(redis) => redis,
            Err(e) => return Ended::Redis(e),
        };
        if last.is_none() {
            match self.load(&mut redis).await {
                Ok(newest) => *last = Some(newest),
                Err(ended) => return ended,
            }
        }
        if let Err(e) = self.check_publishing().await {
            return Ended::Redis(e);
        }
        self.link.store(true, Ordering::Relaxed);
        *backoff = BACKOFF_FIRST;
        log::info!("cluster: reading stream {} from Redis", self.keys.stream);
        // unwrap: set just above, or before.
        let last = last.as_mut().unwrap();
        match self.follow(&mut redis, last).await {
            Ok(never) => match never {},
            Err(ended) => ended,
        }
    }

    /// Makes sure the publishers' connection works too before the node says it is ready.
    /// The connection manager notices a dead connection only when it is used, then
    /// reconnects: without this, the first publish after an outage would find the dead
    /// connection and be refused although Redis is back.
    async fn check_publishing(&self) -> redis::RedisResult<()> {
        let mut redis = self.publishing.clone();
        let mut tries = 0;
        loop {
            match redis::cmd("PING").query_async::<()>(&mut redis).await {
                Err(e) if tries < PUBLISHING_CHECKS => {
                    log::debug!("cluster: the publishers' connection is being remade: {e}");
                    tries += 1;
                    actix_web::rt::time::sleep(BACKOFF_FIRST).await;
                }
                result => return result,
            }
        }
    }

    /// Tells subscriptions waiting for the reader ([`Catchup`](super::Catchup)) that
    /// the hub now has everything up to stream id `id`.
    fn handed_over(&self, id: &str) {
        self.read_to
            .send_replace(Position::parse(id).unwrap_or_default());
    }

    /// Entries per read (of history at start, and of the stream after), so that one
    /// read holds about [`READ_BUDGET`] bytes at most.
    fn per_read(&self) -> usize {
        (READ_BUDGET / self.max_event_bytes.max(1)).clamp(16, 1000)
    }

    /// Hands the hub the newest `history_size` entries, oldest first; returns the id
    /// to read on from (`0-0` for an empty stream: everything appended from now on).
    ///
    /// Read newest first, a page at a time, until `history_size` events or
    /// `history_max_bytes` of frames are in hand: the history kept is bounded in bytes,
    /// and so is what loading it holds (one page more), however large the events.
    async fn load(&self, redis: &mut MultiplexedConnection) -> Result<String, Ended> {
        let mut newest_first: Vec<Arrived> = Vec::new();
        let (mut bytes, mut from, mut end) = (0, None::<String>, "+".to_owned());
        loop {
            let wanted = self.history_size.saturating_sub(newest_first.len());
            // One entry at least: with `history_size = 0` the newest id is still needed.
            let count = wanted.clamp(1, self.per_read());
            let page: StreamRangeReply = redis
                .xrevrange_count(&self.keys.stream, &end, "-", count)
                .await?;
            let done = page.ids.len() < count;
            if let Some(oldest) = page.ids.last() {
                end = format!("({}", oldest.id);
            }
            for entry in page.ids {
                from.get_or_insert_with(|| entry.id.clone());
                let full =
                    newest_first.len() >= self.history_size || bytes >= self.history_max_bytes;
                if full {
                    break;
                }
                if let Some(event) = stream::arrived(entry) {
                    bytes += event.frame.len();
                    newest_first.push(event);
                }
            }
            if done || newest_first.len() >= self.history_size || bytes >= self.history_max_bytes {
                break;
            }
        }
        let from = from.unwrap_or_else(|| "0-0".into());
        newest_first.reverse();
        self.hub
            .send(Load(newest_first))
            .await
            .map_err(|_| Ended::HubGone)?;
        self.handed_over(&from);
        Ok(from)
    }

    /// Reads what follows `last`, for ever, handing each read to the hub.
    async fn follow(
        &self,
        redis: &mut MultiplexedConnection,
        last: &mut String,
    ) -> Result<std::convert::Infallible, Ended> {
        let options = StreamReadOptions::default()
            .block(BLOCK.as_millis() as usize)
            .count(self.per_read());
        loop {
            let read: Option<StreamReadReply> = redis
                .xread_options(&[&self.keys.stream], &[&*last], &options)
                .await?;
            let Some(entries) = read.and_then(|r| r.keys.into_iter().next()) else {
                continue;
            };
            let Some(newest) = entries.ids.last().map(|e| e.id.clone()) else {
                continue;
            };
            let events = entries
                .ids
                .into_iter()
                .filter_map(stream::arrived)
                .collect();
            self.hub
                .send(Relay(events))
                .await
                .map_err(|_| Ended::HubGone)?;
            self.handed_over(&newest);
            *last = newest;
        }
    }
}
