//! The hub in isolation: what one publish costs the hub's thread as the number of
//! connected clients grows. Run with `cargo bench --bench hub`.
//!
//! Clients here are registered with the real `Connect` message and keep their queue
//! receivers, but have no socket, so the figures are the hub's own work (matching,
//! encoding, queueing), not the network's. A topic publish should cost the same with
//! 100 or 100,000 other clients connected: the topic index finds its subscribers
//! without looking at anyone else.

use std::time::{Duration, Instant};

use actix::{Addr, Arbiter};
use ssehub::config::Config;
use ssehub::conn::ConnHandle;
use ssehub::event::parse_body;
use ssehub::hub::messages::{Connect, IsReady};
use ssehub::hub::{self, Hub, Settings, Subscription};
use ssehub::metrics::Metrics;
use ssehub::topic::TopicFilter;

/// Publishes per measurement: enough for a stable mean on a noisy 2-core machine.
const PUBLISHES: usize = 20_000;
/// Subscribers of the topic being published to.
const TOPIC_SUBSCRIBERS: usize = 10;

fn main() {
    actix::System::new().block_on(async {
        println!(
            "topic publish, {TOPIC_SUBSCRIBERS} subscribers of the topic among N other clients:"
        );
        println!(
            "{:>10} {:>14} {:>16}",
            "others", "per publish", "publishes/s"
        );
        for others in [100, 10_000, 100_000] {
            let per_publish = topic_publish(others).await;
            println!(
                "{others:>10} {:>11.2} µs {:>16.0}",
                per_publish.as_secs_f64() * 1e6,
                1.0 / per_publish.as_secs_f64()
            );
        }
    });
}

async fn topic_publish(others: usize) -> Duration {
    let mut config = Config::default();
    config.sse.max_clients = others + TOPIC_SUBSCRIBERS + 1;
    config.sse.history_size = 1000;
    // Big enough that the topic's subscribers, never drained here, are never dropped.
    config.sse.client_buffer = PUBLISHES + 1;
    let handles = hub::start(
        Settings::from_config(&config),
        Metrics::new(),
        &Arbiter::current(),
    );
    let hub = &handles.hub;

    let mut clients: Vec<Subscription> = Vec::with_capacity(others + TOPIC_SUBSCRIBERS);
    for i in 0..others {
        // Each on a topic of its own, so the index is as large as it gets.
        clients.push(connect(hub, &format!("other.{i}")).await);
    }
    for _ in 0..TOPIC_SUBSCRIBERS {
        clients.push(connect(hub, "stocks").await);
    }

    let body =
        br#"{"event":"stockUpdate","topic":"stocks","payload":{"symbol":"RELIANCE","price":2750}}"#;
    let started = Instant::now();
    for _ in 0..PUBLISHES {
        let accepted = handles
            .publisher
            .publish(parse_body(body).unwrap())
            .unwrap();
        assert_eq!(accepted.receivers, Some(TOPIC_SUBSCRIBERS as u64));
    }
    // The hub has fanned out everything once it answers a later message.
    assert!(hub.send(IsReady).await.unwrap());
    let delivered = handles.stats.metrics().deliveries.get();
    assert_eq!(delivered, (PUBLISHES * TOPIC_SUBSCRIBERS) as u64);
    started.elapsed() / PUBLISHES as u32
}

async fn connect(hub: &Addr<Hub>, topic: &str) -> Subscription {
    let connect = Connect {
        filters: vec![TopicFilter::parse(topic).unwrap()],
        last_event_id: None,
        sight: Default::default(),
        conn: ConnHandle::default(),
        uuid: uuid::Uuid::new_v4(),
        peer: None,
    };
    hub.send(connect).await.unwrap().unwrap()
}
