//! Cluster mode (SPEC §10): several nodes act as one hub through one Redis Stream.
//!
//! A publish is appended to the stream by a script that checks publisher ids and
//! appends in one atomic step ([`Publisher`]); its answer waits for Redis (that is
//! what makes it durable and ordered) but never for a fan-out. Every node, the
//! publishing one included, reads the stream back ([`reader`]) and hands what it read
//! to its hub, which fans out locally as in a single node. So every node fans out the
//! same events in the same order, and `Last-Event-ID` means the same on each.
//!
//! - [`stream`]: how an event is stored in a stream entry, and read back.
//! - [`reader`]: the loop that loads history at start and follows the stream, through
//!   outages.
//! - [`catchup`]: a subscriber resuming from an id this node has not read yet waits
//!   for it.

mod catchup;
mod reader;
mod stream;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use actix::{Addr, ArbiterHandle};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo, Script};

use crate::config::Config;
use crate::error::ApiError;
use crate::event::Publication;
use crate::hub::{self, Accepted, Hub};

pub use catchup::Catchup;
use catchup::Position;

/// How long a publish may wait for Redis before it is answered `503`.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long connecting to Redis may take before the attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The stream keeps at least this many entries whatever `history_size` says: the
/// stream is also how events travel to every node, and a node that reads a little late
/// (a pause, a reconnect) must still find them.
const MIN_STREAM_LEN: usize = 1000;

/// Seconds a publish refused because Redis is unreachable is asked to wait.
const RETRY_AFTER_SECS: u64 = 1;

/// Whether `url` is one the Redis client can use (checked at start: exit 2 naming
/// `cluster.redis_url`).
pub fn check_url(url: &str) -> Result<(), String> {
    url.into_connection_info()
        .map(drop)
        .map_err(|e| format!("{url:?} is not a Redis URL: {e}"))
}

/// `url` without its password, for the logs.
pub fn shown_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((credentials, host)) => {
                let user = credentials.split(':').next().unwrap_or("");
                format!("{scheme}://{user}:***@{host}")
            }
            None => url.into(),
        },
        None => url.into(),
    }
}

/// The keys a cluster uses in Redis: the stream, and the two that index publisher
/// ids. The others are named after the stream; in Redis Cluster, a `stream_key` with a
/// hash tag (`{ssehub}:events`) keeps all three in one slot, as the script requires.
#[derive(Debug, Clone)]
struct Keys {
    stream: String,
    owners: String,
    ages: String,
}

impl Keys {
    fn new(stream: &str) -> Self {
        Self {
            stream: stream.into(),
            owners: format!("{stream}:ids"),
            ages: format!("{stream}:id-ages"),
        }
    }
}

/// A running cluster node's link to Redis.
pub struct Node {
    pub publisher: Publisher,
    pub catchup: Catchup,
    /// The reader's thread; stopped with the server.
    pub thread: actix::Arbiter,
}

/// Starts a node's link to Redis: the reader on a thread of its own (it loads
/// history, then feeds `hub` with what the stream holds; `link` tells whether it is
/// connected), and the publisher the handlers use. Nothing here waits for Redis: a
/// node whose Redis is down starts, and is ready once it is reachable.
pub fn start(
    config: &Config,
    hub: Addr<Hub>,
    local: hub::Publisher,
    link: Arc<AtomicBool>,
) -> Result<Node, redis::RedisError> {
    let client = Client::open(config.cluster.redis_url.as_str())?;
    let keys = Keys::new(&config.cluster.stream_key);
    let thread = actix::Arbiter::new();
    let connections = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(PUBLISH_TIMEOUT))
        // One attempt per use: a publish during an outage is refused at once, not
        // after a series of retries; the next publish tries again.
        .set_number_of_retries(0);
    let redis = lazy_manager(&thread.handle(), client.clone(), connections)?;
    let (read_to, read) = tokio::sync::watch::channel(Position::default());
    reader::spawn(
        &thread.handle(),
        reader::Reader {
            client,
            publishing: redis.clone(),
            keys: keys.clone(),
            history_size: config.sse.history_size,
            history_max_bytes: config.sse.history_max_bytes,
            max_event_bytes: config.publish.max_body_bytes,
            hub,
            link,
            read_to,
        },
    );
    Ok(Node {
        catchup: Catchup {
            read,
            redis: redis.clone(),
            owners: keys.owners.as_str().into(),
        },
        publisher: Publisher {
            redis,
            script: Arc::new(Script::new(include_str!("append.lua"))),
            keys: Arc::new(keys),
            maxlen: config.sse.history_size.max(MIN_STREAM_LEN),
            local,
        },
        thread,
    })
}

/// The connection manager, made on `thread`: it reconnects on the runtime it was made
/// on, which must outlive every worker that publishes through it.
fn lazy_manager(
    thread: &ArbiterHandle,
    client: Client,
    config: ConnectionManagerConfig,
) -> Result<ConnectionManager, redis::RedisError> {
    let (tx, rx) = std::sync::mpsc::channel();
    thread.spawn_fn(move || {
        let _ = tx.send(ConnectionManager::new_lazy_with_config(client, config));
    });
    rx.recv().map_err(|_| {
        redis::RedisError::from((redis::ErrorKind::Client, "the cluster thread stopped"))
    })?
}

/// `POST /broadcast` in cluster mode: cheap to clone, one per worker.
#[derive(Clone)]
pub struct Publisher {
    redis: ConnectionManager,
    script: Arc<Script>,
    keys: Arc<Keys>,
    maxlen: usize,
    /// The node's own publisher: its stop flag is the node's.
    local: hub::Publisher,
}

impl Publisher {
    /// Appends the events to the stream; answers their ids once Redis has them. The
    /// node fans them out when it reads them back, like every other node, so the
    /// answer has no `receivers` (SPEC §4).
    pub async fn publish(&self, publication: Publication) -> Result<Accepted, ApiError> {
        if self.local.stopping() {
            return Err(ApiError::ShuttingDown);
        }
        let mut call = self.script.prepare_invoke();
        call.key(&self.keys.stream)
            .key(&self.keys.owners)
            .key(&self.keys.ages)
            .arg(self.maxlen);
        for event in &publication.events {
            let (id, topics, body) = stream::fields(event);
            call.arg(id).arg(topics).arg(&body[..]);
        }
        let mut redis = self.redis.clone();
        let reply = tokio::time::timeout(PUBLISH_TIMEOUT, call.invoke_async(&mut redis)).await;
        let reply: Vec<String> = match reply {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return Err(unreachable(&e)),
            Err(_) => return Err(unreachable(&"no answer in time")),
        };
        stream::accepted(&publication, reply)
    }
}

/// A publish Redis did not take: `503`, nothing accepted (SPEC §4).
fn unreachable(why: &dyn std::fmt::Display) -> ApiError {
    log::debug!("cluster: a publish did not reach Redis: {why}");
    ApiError::Unavailable {
        reason: "cluster: Redis is unreachable, nothing was published",
        retry_after: RETRY_AFTER_SECS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_shown_without_their_password() {
        assert!(check_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(check_url("http://127.0.0.1").is_err());
        assert!(check_url("not a url").is_err());
        assert_eq!(
            shown_url("redis://user:secret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(shown_url("redis://:secret@host"), "redis://:***@host");
        assert_eq!(shown_url("redis://host:1"), "redis://host:1");
    }
}
