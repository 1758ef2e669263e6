//! Cluster mode (SPEC §10): several nodes on one Redis act as one hub. Each test has
//! its own `redis-server` (see `redis.rs`; skipped, loudly, where there is none) and
//! starts its nodes in-process, each with the same `Application::build` as `main`.
//!
//! As everywhere in these tests, a read ends at an explicit marker event, never at a
//! pause: events reach a client in the stream's order, so what did not come before the
//! marker was never sent.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use ssehub::config::Config;

use crate::cli::{refusal, ssehub, write_config};
use crate::helpers::{PATIENCE, Subscriber, TestApp, spawn_app, spawn_app_with};
use crate::proxy::Proxy;
use crate::redis::Redis;

/// How long a node may take to connect to Redis and load its history, or to reconnect
/// after an outage (its backoff goes up to a few seconds).
const READY: Duration = Duration::from_secs(20);

/// A node on `redis`, its stream under `stream` (a key of each test's own), not waited
/// for: see `node`.
async fn spawn_node(redis: &Redis, stream: &str, tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_node_at(&redis.url(), stream, tweak).await
}

/// Like `spawn_node`, for a node that reaches Redis at `url` (through a proxy, say).
async fn spawn_node_at(url: &str, stream: &str, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let (url, stream) = (url.to_owned(), stream.to_owned());
    spawn_app_with(|c| {
        c.cluster.redis_url = url;
        c.cluster.stream_key = stream;
        tweak(c);
    })
    .await
}

/// A node, ready (connected, its history loaded): only then may a test subscribe.
async fn node(redis: &Redis, stream: &str, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let app = spawn_node(redis, stream, tweak).await;
    wait_ready(&app).await;
    app
}

/// Two nodes on the same stream, both ready.
async fn two_nodes(redis: &Redis, stream: &str) -> (TestApp, TestApp) {
    (
        node(redis, stream, |_| {}).await,
        node(redis, stream, |_| {}).await,
    )
}

/// Polls `/readyz` until it answers 200; fails the test after `READY`.
async fn wait_ready(app: &TestApp) {
    wait_readyz(app, 200).await;
}

async fn wait_readyz(app: &TestApp, status: u16) {
    let deadline = tokio::time::Instant::now() + READY;
    loop {
        let got = app.get("/readyz").await.status().as_u16();
        if got == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: /readyz still answers {got}, not {status}, after {READY:?}",
            app.base
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `POST /broadcast`'s answer, whatever its status.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Answer {
    /// A refusal: `status`, the JSON error shape, an error naming `field` (the text
    /// before its first `:`).
    fn assert_refused(&self, status: u16, field: &str) {
        let body = &self.body;
        assert_eq!(self.status, status, "{body}");
        assert_eq!(body["success"], false, "{body}");
        let error = body["error"].as_str().unwrap_or_else(|| panic!("{body}"));
        assert_eq!(error.split(':').next(), Some(field), "{error:?}");
    }

    /// A 503 for an unreachable backend: the error shape and a `Retry-After`.
    fn assert_unavailable(&self) {
        let body = &self.body;
        assert_eq!(self.status, 503, "{body}");
        assert_eq!(body["success"], false, "{body}");
        assert!(body["error"].is_string(), "{body}");
        let retry_after = self.retry_after.as_deref().unwrap_or_default();
        assert!(
            retry_after.parse::<u64>().is_ok(),
            "Retry-After in seconds, got {retry_after:?}"
        );
    }
}

/// Publishes `body` on `app`; an answer that does not come within `PATIENCE` fails the
/// test (a publish while Redis is down must be refused, not held).
async fn post(app: &TestApp, body: Value) -> Answer {
    let request = app.http.post(app.url("/broadcast")).json(&body).send();
    let response = tokio::time::timeout(PATIENCE, request)
        .await
        .unwrap_or_else(|_| panic!("no answer to {body} within {PATIENCE:?}"))
        .expect("POST reaches the server");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("Retry-After")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.expect("every answer is JSON");
    Answer {
        status,
        retry_after,
        body,
    }
}

/// Publishes one event, expects success in the cluster's shape (no `receivers`: nodes
/// fan out when they read the event back), and answers its id.
async fn publish(app: &TestApp, body: Value) -> String {
    let answer = post(app, body.clone()).await;
    let reply = &answer.body;
    assert_eq!(answer.status, 200, "{body} → {reply}");
    assert_eq!(reply["success"], true, "{reply}");
    assert!(reply.get("receivers").is_none(), "no receivers: {reply}");
    let id = reply["id"].as_str().unwrap_or_else(|| panic!("{reply}"));
    match body["id"].as_str() {
        Some(own) => assert_eq!(id, own, "the publisher's own id is the event's"),
        None => assert!(stream_id(id).is_some(), "a stream id <ms>-<seq>: {id:?}"),
    }
    id.to_owned()
}

/// Publishes `{"data": data}` and answers the id the stream gave it.
async fn publish_data(app: &TestApp, data: &str) -> String {
    publish(app, json!({ "data": data })).await
}

/// A Redis stream id's two numbers, which is how such ids order (not as strings).
fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The events before `marker`, as (id, data).
async fn pairs_until(subscriber: &mut Subscriber, marker: &str) -> Vec<(String, String)> {
    subscriber
        .until(marker)
        .await
        .into_iter()
        .map(|e| (e.id, e.data))
        .collect()
}

/// The ids of the events before `marker`.
async fn ids_until(subscriber: &mut Subscriber, marker: &str) -> Vec<String> {
    subscriber
        .until(marker)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect()
}

#[actix_web::test]
async fn an_event_published_on_one_node_reaches_subscribers_on_every_node_once() {
    let Some(redis) = Redis::start_new().await else {
        return;
    };
    let (a, b) = two_nodes(&redis, "test:once").await;
    let mut on_a = a.subscribe("/events").await;
    let mut on_b = b.subscribe("/events").await;

    let id = publish_data(&a, "hello").await;
    let marker = publish(&a, json!({ "id": "marker", "data": "marker" })).await;
    for (node, subscriber) in [("A", &mut on_a), ("B", &mut on_b)] {
        assert_eq!(
            pairs_until(subscriber, &marker).await,
            [(id.clone(), "hello".to_owned())],
            "the subscriber on node {node}"
        );
    }

    // A batch: its ids, no receivers, and each node delivers it in order.
    let batch = json!([{ "data": "one" }, { "data": "two" }]);
    let answer = post(&b, batch).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.get("receivers").is_none(), "{}", answer.body);
    let ids: Vec<String> = answer.body["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", answer.body))
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert!(
        ids.len() == 2 && stream_id(&ids[0]) < stream_id(&ids[1]),
        "{ids:?}"
    );
    let marker = publish_data(&b, "marker 2").await;
    for (node, subscriber) in [("A", &mut on_a), ("B", &mut on_b)] {
        assert_eq!(
            pairs_until(subscriber, &marker).await,
            [
                (ids[0].clone(), "one".to_owned()),
                (ids[1].clone(), "two".to_owned())
            ],
            "the subscriber on node {node}"
        );
    }
}

#[actix_web::test]
async fn a_resume_on_another_node_replays_exactly_what_followed_then_live_events() {
    let Some(redis) = Redis::start_new().await else {
        return;
    };
    let (a, b) = two_nodes(&redis, "test:resume").await;
    // B has read the events once its live subscriber has them: only then is an id
    // from A one that B knows.
    let mut watcher = b.subscribe("/events").await;
    let mut ids = Vec::new();
    for data in ["one", "two", "three"] {
        ids.push(publish_data(&a, data).await);
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(watcher.next().await.id);
    }
    assert_eq!(seen, ids);

    let mut resumed = b.resume("/events", &ids[0]).await;
    let live = publish_data(&b, "four").await;
    let marker = publish_data(&a, "marker").await;
    assert_eq!(
        pairs_until(&mut resumed, &marker).await,
        [
            (ids[1].clone(), "two".to_owned()),
            (ids[2].clone(), "three".to_owned()),
            (live, "four".to_owned())
        ]
    );
}

/// What the publishers of the outage test were told, in the order they were told it.
#[derive(Default, Debug)]
struct Ledger {
    /// Answered 200, in order: each must reach every subscriber exactly once, in this
    /// order.
    accepted: Vec<String>,
    /// Answered 503 while the outage began: Redis may have applied it and died before
    /// answering, so it may arrive (once), and only right where it was sent, after
    /// the first `maybe.1` accepted ones.
    maybe: Option<(String, usize)>,
    /// Answered 503 once Redis was gone: none of these may ever arrive.
    refused: Vec<String>,
}

impl Ledger {
    fn record(&mut self, id: &str, answer: &Answer) {
        match answer.status {
            200 => self.accepted.push(id.to_owned()),
            503 => {
                answer.assert_unavailable();
                self.refused.push(id.to_owned());
            }
            _ => panic!("{id}: {} {}", answer.status, answer.body),
        }
    }

    /// `got` (the ids a subscriber received) is exactly the accepted ids in order, plus
    /// perhaps the one that raced the outage, where it was sent; nothing twice.
    fn check(&self, who: &str, got: &[String]) {
        let mut seen = HashSet::new();
        for id in got {
            assert!(seen.insert(id), "{who} got {id} twice: {got:?}");
        }
        let maybe = self.maybe.as_ref().map(|(id, _)| id);
        for id in got {
            assert!(
                self.accepted.contains(id) || Some(id) == maybe,
                "{who} got {id}, which was refused: {got:?}; {self:?}"
            );
        }
        let accepted: Vec<&String> = got.iter().filter(|id| Some(*id) != maybe).collect();
        assert_eq!(
            accepted,
            self.accepted.iter().collect::<Vec<_>>(),
            "{who}: every accepted id exactly once, in order; {self:?}"
        );
        if let Some((id, after)) = &self.maybe
            && let Some(at) = got.iter().position(|g| g == id)
        {
            assert_eq!(at, *after, "{who}: {id} where it was sent: {got:?}");
        }
    }
}

#[actix_web::test]
async fn a_redis_outage_keeps_streams_open_and_skips_or_repeats_nothing() {
    let Some(mut redis) = Redis::start_new().await else {
        return;
    };
    let (a, b) = two_nodes(&redis, "test:outage").await;
    let nodes = [&a, &b];
    let mut on_a = a.subscribe("/events").await;
    let mut on_b = b.subscribe("/events").await;
    let ledger = RefCell::new(Ledger::default());

    for i in 1..=4 {
        let id = format!("e-{i}");
        ledger.borrow_mut().accepted.push(id.clone());
        publish(nodes[i % 2], json!({ "id": id, "data": id })).await;
    }

    // Redis dies while a publisher is busy, one publish after the other, alternating
    // nodes: the publish in flight at the kill may have been applied and its answer
    // lost; every publish begun once Redis is gone must be refused.
    let killed = Cell::new(false);
    let racer = async {
        for n in 1.. {
            let id = format!("r-{n}");
            let began_after_kill = killed.get();
            let answer = post(nodes[n % 2], json!({ "id": id, "data": id })).await;
            let mut ledger = ledger.borrow_mut();
            match answer.status {
                200 => {
                    assert!(!began_after_kill, "{id} accepted with Redis gone");
                    ledger.accepted.push(id);
                }
                503 => {
                    answer.assert_unavailable();
                    assert!(
                        killed.get(),
                        "{id} refused while Redis ran: {}",
                        answer.body
                    );
                    if began_after_kill {
                        ledger.refused.push(id);
                    } else {
                        ledger.maybe = Some((id, ledger.accepted.len()));
                    }
                    return;
                }
                _ => panic!("{id}: {} {}", answer.status, answer.body),
            }
        }
    };
    let killer = async {
        while ledger.borrow().accepted.len() < 4 + 5 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        redis.stop();
        killed.set(true);
    };
    tokio::join!(racer, killer);

    // Down: not ready, publishes refused on both nodes, streams still open.
    for (name, node) in [("A", &a), ("B", &b)] {
        wait_readyz(node, 503).await;
        for k in 1..=3 {
            let id = format!("down-{name}-{k}");
            let answer = post(node, json!({ "id": id, "data": id })).await;
            answer.assert_unavailable();
            ledger.borrow_mut().refused.push(id);
        }
        node.wait_for_clients(1).await;
    }

    // Back: each node reconnects by itself; publishing works again once it has.
    redis.start().await;
    for (name, node) in [("A", &a), ("B", &b)] {
        let deadline = tokio::time::Instant::now() + READY;
        for k in 1.. {
            let id = format!("probe-{name}-{k}");
            let answer = post(node, json!({ "id": id, "data": id })).await;
            ledger.borrow_mut().record(&id, &answer);
            if answer.status == 200 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {name} still refuses publishes {READY:?} after Redis came back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Published before the other node has (perhaps) reconnected: it must resume
        // from the last id it saw, not from the stream's end.
        let id = format!("f-{name}");
        publish(node, json!({ "id": id, "data": id })).await;
        ledger.borrow_mut().accepted.push(id);
    }
    for node in nodes {
        wait_ready(node).await;
    }
    for i in 1..=4 {
        let id = format!("g-{i}");
        publish(nodes[i % 2], json!({ "id": id, "data": id })).await;
        ledger.borrow_mut().accepted.push(id);
    }
    let marker = publish(&b, json!({ "id": "end", "data": "end" })).await;

    // The same response bodies as before the outage: they stayed open throughout.
    let got_a = ids_until(&mut on_a, &marker).await;
    let got_b = ids_until(&mut on_b, &marker).await;
    let ledger = ledger.into_inner();
    ledger.check("the subscriber on A", &got_a);
    ledger.check("the subscriber on B", &got_b);
    assert_eq!(got_a, got_b, "the same order on every node");
}

#[actix_web::test]
async fn a_node_cut_off_from_redis_catches_up_from_the_last_id_it_saw() {
    let Some(redis) = Redis::start_new().await else {
        return;
    };
    // B reaches Redis through a proxy the test can cut: B alone loses Redis, while A
    // goes on publishing.
    let proxy = Proxy::start(redis.port()).await;
    let a = node(&redis, "test:cut", |_| {}).await;
    let b = spawn_node_at(
        &format!("redis://127.0.0.1:{}", proxy.port),
        "test:cut",
        |_| {},
    )
    .await;
    wait_ready(&b).await;
    let mut on_a = a.subscribe("/events").await;
    let mut on_b = b.subscribe("/events").await;
    let mut expected = vec![publish(&a, json!({ "id": "before", "data": "before" })).await];

    proxy.cut_and_hold();
    wait_readyz(&b, 503).await;
    post(&b, json!({ "id": "refused", "data": "refused" }))
        .await
        .assert_unavailable();
    for i in 1..=3 {
        let id = format!("while-{i}");
        expected.push(publish(&a, json!({ "id": id, "data": id })).await);
    }

    proxy.release();
    wait_ready(&b).await;
    expected.push(publish(&b, json!({ "id": "after", "data": "after" })).await);
    let marker = publish(&a, json!({ "id": "end", "data": "end" })).await;
    for (node, subscriber) in [("A", &mut on_a), ("B", &mut on_b)] {
        assert_eq!(
            ids_until(subscriber, &marker).await,
            expected,
            "the subscriber on node {node}: what A published while B was cut off, once"
        );
    }
}

#[actix_web::test]
async fn a_node_started_while_redis_is_down_is_not_ready_until_it_connects() {
    let Some(mut redis) = Redis::start_new().await else {
        return;
    };
    redis.stop();
    let app = spawn_node(&redis, "test:late", |_| {}).await;
    assert_eq!(app.get("/healthz").await.status(), 200, "it serves");
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(app.get("/events").await.status(), 503);
    post(&app, json!({ "id": "early", "data": "early" }))
        .await
        .assert_unavailable();

    redis.start().await;
    wait_ready(&app).await;
    let mut all = app.subscribe("/events?lastEventId=earliest").await;
    let marker = publish_data(&app, "marker").await;
    assert_eq!(pairs_until(&mut all, &marker).await, []);
}

#[actix_web::test]
async fn a_restarted_node_loads_its_history_from_the_stream() {
    let Some(redis) = Redis::start_new().await else {
        return;
    };
    let a = node(&redis, "test:restart", |_| {}).await;
    let mut before = Vec::new();
    for i in 0..8 {
        let data = format!("n-{i}");
        before.push((publish_data(&a, &data).await, data));
    }
    let own = publish(&a, json!({ "id": "own", "data": "mine" })).await;
    before.push((own, "mine".to_owned()));
    a.stop().await;

    let a = node(&redis, "test:restart", |_| {}).await;
    let mut all = a.subscribe("/events?lastEventId=earliest").await;
    let mut resumed = a.resume("/events", &before[4].0).await;
    let marker = publish_data(&a, "after").await;
    assert_eq!(pairs_until(&mut all, &marker).await, before);
    assert_eq!(pairs_until(&mut resumed, &marker).await, before[5..]);
    // Stream ids keep rising across the restart, and the publisher's id is still
    // taken while the stream holds it.
    assert!(
        stream_id(&marker) > stream_id(&before[7].0),
        "{marker} after {}",
        before[7].0
    );
    post(&a, json!({ "id": "own", "data": "again" }))
        .await
        .assert_refused(409, "id");
}

/// Events per publisher in the concurrent test.
const EACH: usize = 100;

fn topic_of(i: usize) -> &'static str {
    if i.is_multiple_of(2) { "t.x" } else { "t.y" }
}

/// `EACH` events, one after the other, with ids `<name>-<i>`; answers the ids.
async fn publish_many(node: &TestApp, name: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..EACH {
        let id = format!("{name}-{i}");
        publish(node, json!({ "id": id, "topic": topic_of(i), "data": id })).await;
        ids.push(id);
    }
    ids
}

#[actix_web::test]
async fn concurrent_publishers_on_two_nodes_give_every_subscriber_the_same_sequence() {
    let Some(redis) = Redis::start_new().await else {
        return;
    };
    let (a, b) = two_nodes(&redis, "test:concurrent").await;
    let mut everything = [
        a.subscribe("/events?topic=t.*").await,
        b.subscribe("/events?topic=t.*").await,
    ];
    let mut x_only = [
        a.subscribe("/events?topic=t.x").await,
        b.subscribe("/events?topic=t.x").await,
    ];
    let (from_a, from_b) = tokio::join!(publish_many(&a, "a"), publish_many(&b, "b"));
    // A global broadcast reaches every subscriber, whatever its topics.
    let marker = publish(&a, json!({ "id": "end", "data": "end" })).await;

    let mut sequences = Vec::new();
    for subscriber in &mut everything {
        sequences.push(ids_until(subscriber, &marker).await);
    }
    assert_eq!(sequences[0], sequences[1], "the same order on both nodes");
    let got = &sequences[0];
    assert_eq!(got.len(), 2 * EACH, "{got:?}");
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), 2 * EACH, "nothing twice: {got:?}");
    for ids in [&from_a, &from_b] {
        let prefix = &ids[0][..2];
        let theirs: Vec<&String> = got.iter().filter(|id| id.starts_with(prefix)).collect();
        assert_eq!(theirs, ids.iter().collect::<Vec<_>>(), "in publish order");
    }

    let expected: Vec<String> = got
        .iter()
        .filter(|id| {
            let i: usize = id[2..].parse().unwrap();
            topic_of(i) == "t.x"
        })
        .cloned()
        .collect();
    for (node, subscriber) in ["A", "B"].into_iter().zip(&mut x_only) {
        assert_eq!(
            ids_until(subscriber, &marker).await,
            expected,
            "topic t.x on node {node}: the same order, filtered"
        );
    }
}

#[actix_web::test]
async fn a_publisher_id_taken_through_another_node_is_refused_with_409_and_publishes_nothing() {
    let Some(redis) = Redis::start_new().await else {
        return;
    };
    let (a, b) = two_nodes(&redis, "test:409").await;
    let mut on_a = a.subscribe("/events").await;
    let mut on_b = b.subscribe("/events").await;
    publish(&a, json!({ "id": "taken", "data": "first" })).await;

    post(&b, json!({ "id": "taken", "data": "second" }))
        .await
        .assert_refused(409, "id");
    let batch = json!([
        { "id": "fresh-1", "data": "batch 0" },
        { "id": "taken", "data": "batch 1" },
        { "id": "fresh-2", "data": "batch 2" }
    ]);
    post(&b, batch).await.assert_refused(409, "[1].id");

    let marker = publish(&b, json!({ "id": "marker", "data": "marker" })).await;
    for (node, subscriber) in [("A", &mut on_a), ("B", &mut on_b)] {
        assert_eq!(
            pairs_until(subscriber, &marker).await,
            [("taken".to_owned(), "first".to_owned())],
            "the subscriber on node {node}: nothing of the refusals"
        );
    }
    // And the refused batch took no id.
    publish(&a, json!({ "id": "fresh-1", "data": "now" })).await;
}

#[actix_web::test]
async fn each_node_replays_exactly_history_size_events() {
    let Some(redis) = Redis::start_new().await else {
        return;
    };
    let small = |c: &mut Config| c.sse.history_size = 5;
    let a = node(&redis, "test:history", small).await;
    let b = node(&redis, "test:history", small).await;
    let mut watcher = b.subscribe("/events").await;
    let mut ids = Vec::new();
    for i in 0..20usize {
        ids.push(publish_data(if i.is_multiple_of(2) { &a } else { &b }, &i.to_string()).await);
    }
    // B has read all 20 once its subscriber has the last.
    watcher.until(&ids[19]).await;
    // C loads its history from the stream, which may hold more (`MAXLEN ~`).
    let c = node(&redis, "test:history", small).await;

    let mut replays = Vec::new();
    for node in [&a, &b, &c] {
        replays.push(node.subscribe("/events?lastEventId=earliest").await);
    }
    let marker = publish_data(&c, "marker").await;
    let expected: Vec<(String, String)> =
        (15..20).map(|i| (ids[i].clone(), i.to_string())).collect();
    for (node, replay) in ["A", "B", "C"].into_iter().zip(&mut replays) {
        assert_eq!(
            pairs_until(replay, &marker).await,
            expected,
            "node {node}: the last 5, in order"
        );
    }
}

#[actix_web::test]
async fn a_node_loads_its_history_page_by_page_within_its_count_and_byte_bounds() {
    let Some(redis) = Redis::start_new().await else {
        return;
    };
    // 8 MiB events make a page 16 entries (64 MiB / 8 MiB, at least 16): 40 events of
    // history take three pages. Then a byte bound of 20 frames of ~1 KB.
    let paged = |c: &mut Config| {
        c.sse.history_size = 40;
        c.publish.max_body_bytes = 8 * 1024 * 1024;
    };
    let a = node(&redis, "test:pages", paged).await;
    let mut watcher = a.subscribe("/events").await;
    let padding = "x".repeat(1000);
    let mut ids = Vec::new();
    for i in 0..100usize {
        ids.push(publish_data(&a, &format!("{i} {padding}")).await);
    }
    watcher.until(&ids[99]).await;

    let b = node(&redis, "test:pages", paged).await;
    let mut replay = b.subscribe("/events?lastEventId=earliest").await;
    let marker = publish_data(&a, "marker").await;
    let got: Vec<String> = replay
        .until(&marker)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(got, ids[60..], "the last 40, in order, across pages");
    ids.push(marker);

    let bounded = |c: &mut Config| {
        paged(c);
        c.sse.history_max_bytes = 20 * 1100;
    };
    let c = node(&redis, "test:pages", bounded).await;
    let mut replay = c.subscribe("/events?lastEventId=earliest").await;
    let marker = publish_data(&a, "marker 2").await;
    let got: Vec<String> = replay
        .until(&marker)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    // ~1,035 bytes a frame (the first marker's is small): about 21 fit.
    assert!(
        (18..=22).contains(&got.len()) && ids.ends_with(&got),
        "the newest that fit in 22,000 bytes, in order: {} events",
        got.len()
    );
}

#[actix_web::test]
async fn stats_name_each_node_by_its_own_uuid() {
    let Some(redis) = Redis::start_new().await else {
        return;
    };
    let (a, b) = two_nodes(&redis, "test:stats").await;
    let node_of = |stats: &Value| -> uuid::Uuid {
        let node = stats["node"].as_str().unwrap_or_else(|| panic!("{stats}"));
        uuid::Uuid::parse_str(node).unwrap_or_else(|e| panic!("{node:?}: {e}"))
    };
    let (on_a, on_b) = (node_of(&a.stats().await), node_of(&b.stats().await));
    assert_ne!(on_a, on_b);
    assert_eq!(node_of(&a.stats().await), on_a, "a node keeps its uuid");

    let single = spawn_app().await;
    let stats = single.stats().await;
    assert!(stats.get("node").is_none(), "cluster mode only: {stats}");
}

#[test]
fn a_redis_url_that_is_not_redis_exits_2_naming_cluster_redis_url() {
    let config = write_config(
        "cluster-url",
        "[cluster]\nredis_url = \"http://x\"\nstream_key = \"ssehub:events\"\n",
    );
    let line = refusal(ssehub().arg("--config").arg(&config));
    assert!(
        line.contains(config.to_str().unwrap()) && line.contains("cluster.redis_url"),
        "{line}"
    );
}

/// A load balancer may send a reconnect to a node that has not yet read the client's
/// last id from the stream (here: the second-last of a large batch just published on
/// another node). That id was issued, so it is no gap, and what the client had must not
/// come again: it gets exactly what followed.
#[actix_web::test]
async fn a_resume_with_an_id_the_node_has_not_read_yet_gets_no_gap_and_no_repeats() {
    resume_ahead_of_the_node(false).await;
}

#[actix_web::test]
async fn a_resume_with_a_publisher_id_the_node_has_not_read_yet_gets_no_gap_and_no_repeats() {
    resume_ahead_of_the_node(true).await;
}

/// A 1000-event batch on A, then at once a resume on B from its second-to-last id
/// (the stream's, or the publisher's own): B must wait for its reader, not report a gap.
async fn resume_ahead_of_the_node(own_ids: bool) {
    let Some(redis) = Redis::start_new().await else {
        return;
    };
    let (a, b) = two_nodes(&redis, "test:ahead").await;
    let batch: Value = (0..1000)
        .map(|i| match own_ids {
            true => json!({ "data": format!("{i} {}", "x".repeat(500)), "id": format!("own-{i}") }),
            false => json!({ "data": format!("{i} {}", "x".repeat(500)) }),
        })
        .collect();
    let answer = post(&a, batch).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let ids: Vec<String> = answer.body["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", answer.body))
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    let mut resumed = b.resume("/events", &ids[998]).await;
    let marker = publish_data(&a, "marker").await;
    let got: Vec<(String, String)> = resumed
        .until(&marker)
        .await
        .into_iter()
        .map(|e| (e.id, e.event))
        .collect();
    // Told in a few words: a failure here may be hundreds of repeats.
    assert!(
        got == [(ids[999].clone(), "message".to_owned())],
        "expected only {}; got {} events, the first {:?}, the last {:?}",
        ids[999],
        got.len(),
        got.first(),
        got.last()
    );
}
