//! The hub's own rules, with the hub on the test's thread (it handles nothing until the
//! test awaits) and, where time matters, a clock that moves only when told.

use std::sync::{Arc, Mutex};

use actix::Arbiter;
use futures_util::{FutureExt, StreamExt};

use super::*;
use crate::conn::ConnHandle;
use crate::event::{Publication, parse_body};

fn settings() -> Settings {
    Settings::from_config(&Config::default())
}

fn start_here(settings: Settings) -> Handles {
    start(settings, Metrics::new(), &Arbiter::current())
}

fn publication(body: &str) -> Publication {
    parse_body(body.as_bytes()).unwrap()
}

fn connect(topics: &[&str], last_event_id: Option<&str>) -> Connect {
    Connect {
        filters: topics
            .iter()
            .map(|t| TopicFilter::parse(t).unwrap())
            .collect(),
        last_event_id: last_event_id.map(Into::into),
        sight: Arc::default(),
        conn: ConnHandle::default(),
        uuid: uuid::Uuid::new_v4(),
        peer: None,
    }
}

async fn subscribe(handles: &Handles, topics: &[&str], last: Option<&str>) -> Subscription {
    let connect = connect(topics, last);
    handles.hub.send(connect).await.unwrap().unwrap()
}

/// Everything the stream has ready now, without waiting.
fn ready_frames(subscription: &mut Subscription) -> Vec<Bytes> {
    let mut frames = Vec::new();
    while let Some(Some(Ok(frame))) = subscription.next().now_or_never() {
        frames.push(frame);
    }
    frames
}

/// Makes the hub handle everything sent to it so far (its mailbox is in order).
async fn settle(handles: &Handles) {
    assert!(handles.hub.send(IsReady).await.unwrap());
}

fn published(handles: &Handles) -> u64 {
    handles.stats.metrics().published.get()
}

#[actix_web::test]
async fn publishes_beyond_what_the_hub_has_pending_are_refused_not_queued() {
    let handles = start_here(settings());
    for _ in 0..MAX_PENDING_PUBLISHES {
        handles
            .publisher
            .publish(publication(r#"{"data":"x"}"#))
            .unwrap();
    }
    let refused = handles.publisher.publish(publication(r#"{"data":"x"}"#));
    assert!(
        matches!(refused, Err(ApiError::Unavailable { .. })),
        "{refused:?}"
    );
    settle(&handles).await;
    assert_eq!(published(&handles), MAX_PENDING_PUBLISHES as u64);
    assert!(
        handles
            .publisher
            .publish(publication(r#"{"data":"x"}"#))
            .is_ok()
    );
}

#[actix_web::test]
async fn publishes_beyond_the_byte_budget_are_refused_whatever_their_count() {
    let mut settings = settings();
    // Each frame is 10,033 bytes (`id: <20>`, `data: <10,000>`): ten fit, not eleven.
    settings.max_pending_bytes = 101_000;
    let handles = start_here(settings);
    let big = format!(r#"{{"data":"{}"}}"#, "x".repeat(10_000));
    let mut accepted = 0;
    while handles.publisher.publish(publication(&big)).is_ok() {
        accepted += 1;
        assert!(accepted < 100, "never refused");
    }
    assert_eq!(accepted, 10);
    let refused = handles.publisher.publish(publication(&big)).unwrap_err();
    assert!(
        matches!(refused, ApiError::Unavailable { .. }),
        "{refused:?}"
    );
    // Nothing refused was kept: the hub fans out exactly the ten.
    settle(&handles).await;
    assert_eq!(published(&handles), 10);
    assert!(
        handles.publisher.publish(publication(&big)).is_ok(),
        "room again"
    );
}

#[actix_web::test]
async fn after_shutdown_nothing_is_accepted_that_could_be_lost() {
    let handles = start_here(settings());
    assert!(
        handles
            .publisher
            .publish(publication(r#"{"data":"x"}"#))
            .is_ok()
    );
    handles.hub.send(Shutdown).await.unwrap();
    assert!(!handles.hub.send(IsReady).await.unwrap());
    let refused = handles.publisher.publish(publication(r#"{"data":"x"}"#));
    assert!(
        matches!(refused, Err(ApiError::ShuttingDown)),
        "{refused:?}"
    );
    let refused = handles.hub.send(connect(&[], None)).await.unwrap().err();
    assert!(
        matches!(refused, Some(ApiError::ShuttingDown)),
        "{refused:?}"
    );
}

#[actix_web::test]
async fn a_stop_skips_the_queued_fan_outs_and_ends_every_stream() {
    let handles = start_here(settings());
    let mut subscription = subscribe(&handles, &[], None).await;
    ready_frames(&mut subscription);
    for _ in 0..5_000 {
        handles
            .publisher
            .publish(publication(r#"{"data":"x"}"#))
            .unwrap();
    }
    handles.publisher.stop();
    let refused = handles.publisher.publish(publication(r#"{"data":"x"}"#));
    assert!(
        matches!(refused, Err(ApiError::ShuttingDown)),
        "{refused:?}"
    );
    handles.hub.send(Shutdown).await.unwrap();
    assert_eq!(
        published(&handles),
        0,
        "none of the queued publishes was fanned out"
    );
    assert!(ready_frames(&mut subscription).is_empty());
    assert!(
        matches!(subscription.next().now_or_never(), Some(None)),
        "the stream has ended"
    );
}

#[actix_web::test]
async fn an_id_reused_past_its_ttl_stays_unique_and_resumable_before_any_expiry_ran() {
    let time = Clock::Manual(Arc::new(Mutex::new(Instant::now())));
    let ttl = Duration::from_secs(60);
    let mut settings = settings();
    settings.history.ttl = Some(ttl);
    settings.time = time.clone();
    let handles = start_here(settings);
    let publish = |body: &str| handles.publisher.publish(publication(body));

    publish(r#"{"id":"a","data":"first"}"#).unwrap();
    settle(&handles).await;
    let conflict = publish(r#"{"id":"a","data":"again"}"#).unwrap_err();
    assert!(
        matches!(conflict, ApiError::Conflict { .. }),
        "{conflict:?}"
    );

    // Past the TTL the id is free again, though the hub has not expired the old
    // entry: the ledger alone decides, at the time of the publish.
    time.advance(ttl);
    publish(r#"{"id":"a","data":"second"}"#).unwrap();
    // The hub now evicts the old entry, releasing the old reservation only.
    settle(&handles).await;
    let conflict = publish(r#"{"id":"a","data":"third"}"#).unwrap_err();
    assert!(
        matches!(conflict, ApiError::Conflict { .. }),
        "{conflict:?}"
    );
    assert_eq!(handles.stats.metrics().history.get(), 1);

    // A resume from "a" finds it (no hub.gap) and gets exactly what followed.
    publish(r#"{"id":"b","data":"after"}"#).unwrap();
    let mut resumed = subscribe(&handles, &[], Some("a")).await;
    let head = ready_frames(&mut resumed);
    assert_eq!(head.len(), 2, "{head:?}");
    assert_eq!(&head[1][..], b"id: b\ndata: after\n\n");
}

#[actix_web::test]
async fn a_client_without_a_position_is_told_the_newest_id_first() {
    let handles = start_here(settings());
    let mut first = subscribe(&handles, &["a"], None).await;
    assert_eq!(
        ready_frames(&mut first),
        [sse::preamble(3000)],
        "no history, no id"
    );

    handles
        .publisher
        .publish(publication(r#"{"id":"1","topic":"a","data":"x"}"#))
        .unwrap();
    handles
        .publisher
        .publish(publication(r#"{"id":"2","topic":"b","data":"y"}"#))
        .unwrap();
    // The newest of all, whatever the client's topics.
    let mut second = subscribe(&handles, &["a"], None).await;
    assert_eq!(
        ready_frames(&mut second),
        [sse::preamble(3000), sse::position("2")]
    );
}

#[actix_web::test]
async fn a_batch_is_one_queue_item_and_clients_matching_the_same_events_share_it() {
    let mut settings = settings();
    settings.client_buffer = 1;
    let handles = start_here(settings);
    let mut a = subscribe(&handles, &["a"], None).await;
    let mut also_a = subscribe(&handles, &["a"], None).await;
    let batch = r#"[{"topic":"a","data":"1"},{"topic":"a","data":"2"},{"topic":"a","data":"3"}]"#;
    handles.publisher.publish(publication(batch)).unwrap();
    settle(&handles).await;
    // A queue of one item took the whole batch: neither client was dropped as slow.
    let metrics = handles.stats.metrics();
    assert_eq!(metrics.dropped.slow.get(), 0);
    assert_eq!(metrics.deliveries.get(), 6);
    let (first, second) = (a.take_batch(), also_a.take_batch());
    assert!(Arc::ptr_eq(&first, &second), "one selection for both");
    assert_eq!(first.count(), 3);
}

#[actix_web::test]
async fn a_batch_is_queued_as_the_same_frames_for_every_client_never_copied() {
    let handles = start_here(settings());
    let mut clients = Vec::new();
    for topics in [&["a"][..], &["b"], &["a", "b"], &["a"], &[]] {
        let mut subscription = subscribe(&handles, topics, None).await;
        ready_frames(&mut subscription);
        clients.push(subscription);
    }
    let batch = r#"[{"id":"1","topic":"a","data":"1"},{"id":"2","topic":"b","data":"2"},
                    {"id":"3","data":"3"},{"id":"4","topic":"a","data":"4"}]"#;
    handles.publisher.publish(publication(batch)).unwrap();
    settle(&handles).await;

    let got: Vec<Vec<Bytes>> = clients.iter_mut().map(ready_frames).collect();
    let ids = |frames: &[Bytes]| -> Vec<String> {
        frames
            .iter()
            .map(|f| String::from_utf8_lossy(&f[4..5]).into())
            .collect()
    };
    assert_eq!(ids(&got[0]), ["1", "3", "4"]);
    assert_eq!(ids(&got[1]), ["2", "3"]);
    assert_eq!(ids(&got[2]), ["1", "2", "3", "4"]);
    assert_eq!(ids(&got[3]), ["1", "3", "4"]);
    assert_eq!(
        ids(&got[4]),
        ["3"],
        "global events reach a client without topics"
    );

    // Every client's frame of an event is history's own frame: the same memory.
    let mut replay = subscribe(&handles, &["*"], Some("earliest")).await;
    let history = ready_frames(&mut replay);
    let kept = |id: &str| {
        history
            .iter()
            .find(|f| f.starts_with(format!("id: {id}\n").as_bytes()))
            .unwrap()
            .as_ptr()
    };
    for frames in &got {
        for frame in frames {
            assert_eq!(frame.as_ptr(), kept(&String::from_utf8_lossy(&frame[4..5])));
        }
    }
}

#[actix_web::test]
async fn a_durable_hub_writes_what_was_still_queued_at_the_stop_and_loads_it_back() {
    let path = crate::scratch::Scratch::new("hub-durable-stop.redb");
    let flush = Duration::from_millis(10);
    let open = || Store::open(&path).unwrap();
    let start_durable = || {
        start_with_store(
            settings(),
            Metrics::new(),
            &Arbiter::current(),
            open(),
            flush,
        )
        .unwrap()
    };

    let handles = start_durable();
    for i in 0..3 {
        let body = format!(r#"{{"id":"e{i}","data":"x"}}"#);
        handles.publisher.publish(publication(&body)).unwrap();
    }
    // Queued, not fanned out: the stop skips their fan-out, not their keeping.
    handles.publisher.stop();
    handles.hub.send(Shutdown).await.unwrap();
    assert_eq!(published(&handles), 0);

    let handles = start_durable();
    let mut replay = subscribe(&handles, &[], Some("e0")).await;
    let frames = ready_frames(&mut replay);
    assert_eq!(frames.len(), 3, "the preamble, e1 and e2: {frames:?}");
    let again = handles
        .publisher
        .publish(publication(r#"{"id":"e2","data":"x"}"#));
    assert!(matches!(again, Err(ApiError::Conflict { .. })), "{again:?}");
}

#[actix_web::test]
async fn a_durable_history_past_its_ttl_while_stopped_is_not_loaded() {
    let path = crate::scratch::Scratch::new("hub-durable-ttl.redb");
    let flush = Duration::from_millis(10);
    let entry = |id: &str, age_secs: u64, reservation: u64| Entry {
        id: id.into(),
        topics: Box::default(),
        private: Box::default(),
        frame: sse::frame(id, b"data: x\n\n"),
        at: Instant::now() - Duration::from_secs(age_secs),
        reservation,
        server_id: false,
    };
    let writer = Store::open(&path)
        .unwrap()
        .writer(flush, Arc::default())
        .unwrap();
    writer.keep(&entry("old", 2 * 3600, 0));
    writer.keep(&entry("new", 0, 1));
    writer.close();

    let mut settings = settings();
    settings.history.ttl = Some(Duration::from_secs(3600));
    let store = Store::open(&path).unwrap();
    let handles = start_with_store(settings, Metrics::new(), &Arbiter::current(), store, flush);
    let handles = handles.unwrap();
    let mut all = subscribe(&handles, &[], Some("earliest")).await;
    let frames = ready_frames(&mut all);
    assert_eq!(frames.len(), 2, "the preamble and \"new\": {frames:?}");
    assert!(frames[1].starts_with(b"id: new\n"), "{frames:?}");
}

#[actix_web::test]
async fn publishes_are_refused_while_the_disk_is_behind_rather_than_held_in_memory() {
    let mut settings = settings();
    settings.max_pending_bytes = 1000;
    let handles = start_here(settings);
    let unwritten = &handles.publisher.intake.backlog.unwritten;
    unwritten.store(1001, std::sync::atomic::Ordering::Relaxed);
    let refused = handles.publisher.publish(publication(r#"{"data":"x"}"#));
    assert!(
        matches!(refused, Err(ApiError::Unavailable { reason, .. }) if reason.starts_with("history store")),
        "{refused:?}"
    );
    unwritten.store(0, std::sync::atomic::Ordering::Relaxed);
    assert!(
        handles
            .publisher
            .publish(publication(r#"{"data":"x"}"#))
            .is_ok()
    );
}

fn arrived(id: &str, topic: &str) -> Arrived {
    let topics: Box<[Topic]> = Box::new([Topic::parse(topic).unwrap()]);
    Arrived {
        frame: sse::frame(id, b"data: x\n\n"),
        id: id.into(),
        topics,
        at_unix_ms: 0,
        server_id: true,
    }
}

#[actix_web::test]
async fn a_cluster_node_takes_subscribers_only_once_history_is_loaded_and_is_ready_while_linked() {
    let link = Arc::new(AtomicBool::new(false));
    let handles = start_clustered(
        settings(),
        Metrics::new(),
        &Arbiter::current(),
        link.clone(),
    );
    let early = handles.hub.send(connect(&["t"], None)).await.unwrap();
    assert!(
        matches!(early, Err(ApiError::Unavailable { .. })),
        "refused before history is loaded"
    );
    assert!(!handles.hub.send(IsReady).await.unwrap());
    let loaded = vec![arrived("1-0", "t"), arrived("2-0", "t")];
    handles.hub.send(Load(loaded)).await.unwrap();
    assert!(!handles.hub.send(IsReady).await.unwrap(), "not linked yet");
    link.store(true, Ordering::Relaxed);
    assert!(handles.hub.send(IsReady).await.unwrap());

    // Replay comes from what was loaded; relayed events follow, in the stream's order.
    let mut resumed = subscribe(&handles, &["t"], Some("1-0")).await;
    handles
        .hub
        .send(Relay(vec![arrived("3-0", "t"), arrived("4-0", "other")]))
        .await
        .unwrap();
    let frames = ready_frames(&mut resumed);
    let text: Vec<&str> = frames
        .iter()
        .map(|f| std::str::from_utf8(f).unwrap())
        .collect();
    assert_eq!(
        text.concat(),
        "retry: 3000\n\nid: 2-0\ndata: x\n\nid: 3-0\ndata: x\n\n"
    );
    assert_eq!(
        published(&handles),
        2,
        "relayed events count, loaded ones do not"
    );
    link.store(false, Ordering::Relaxed);
    assert!(!handles.hub.send(IsReady).await.unwrap(), "Redis lost");
}

fn joining(topics: &[&str]) -> Joining {
    Joining {
        filters: topics
            .iter()
            .map(|t| TopicFilter::parse(t).unwrap())
            .collect(),
        sight: Arc::default(),
        conn: ConnHandle::default(),
        uuid: uuid::Uuid::new_v4(),
        peer: None,
    }
}

fn text(frames: &[Bytes]) -> String {
    frames
        .iter()
        .map(|f| std::str::from_utf8(f).unwrap())
        .collect()
}

#[actix_web::test]
async fn a_client_joining_without_the_hub_misses_nothing_and_gets_nothing_twice() {
    let handles = start_here(settings());
    let first = handles
        .publisher
        .publish(publication(r#"{"data":"first","topic":"t"}"#))
        .unwrap();
    settle(&handles).await;
    // Joined while a publish waits in the hub's mailbox: its position is the event
    // before, and the waiting one reaches it.
    let second = handles
        .publisher
        .publish(publication(r#"{"data":"second","topic":"t"}"#))
        .unwrap();
    let mut early = handles.connector.join(joining(&["t"])).unwrap();
    settle(&handles).await;
    // Joined once that publish was fanned out: its position is that event's.
    let mut late = handles.connector.join(joining(&["t"])).unwrap();
    settle(&handles).await;
    let (first, second) = (&first.ids[0], &second.ids[0]);
    assert_eq!(
        text(&ready_frames(&mut early)),
        format!("retry: 3000\n\nid: {first}\n\nid: {second}\ndata: second\n\n")
    );
    assert_eq!(
        text(&ready_frames(&mut late)),
        format!("retry: 3000\n\nid: {second}\n\n")
    );
    assert_eq!(handles.stats.metrics().clients.get(), 2);
}

#[actix_web::test]
async fn max_clients_counts_both_ways_in_and_a_departure_frees_its_place() {
    let handles = start_here(Settings {
        max_clients: 2,
        ..settings()
    });
    let joined = handles.connector.join(joining(&[])).unwrap();
    let _resumed = subscribe(&handles, &[], Some("earliest")).await;
    let full = handles.connector.join(joining(&[]));
    assert!(
        matches!(full, Err(ApiError::Unavailable { .. })),
        "the third is refused"
    );
    let full = handles
        .hub
        .send(connect(&[], Some("earliest")))
        .await
        .unwrap();
    assert!(matches!(full, Err(ApiError::Unavailable { .. })));
    drop(joined);
    settle(&handles).await;
    assert_eq!(handles.stats.metrics().clients.get(), 1);
    assert!(
        handles.connector.join(joining(&[])).is_ok(),
        "its place is free"
    );
}

#[actix_web::test]
async fn a_client_admitted_just_before_the_stop_sees_its_stream_end_and_none_after() {
    let handles = start_here(settings());
    let mut admitted = handles.connector.join(joining(&[])).unwrap();
    handles.hub.send(Shutdown).await.unwrap();
    let frames: Vec<Bytes> = futures_executor::block_on_stream(&mut admitted)
        .map(Result::unwrap)
        .collect();
    assert_eq!(text(&frames), "retry: 3000\n\n", "then the end");
    let refused = handles.connector.join(joining(&[]));
    assert!(
        matches!(refused, Err(ApiError::ShuttingDown)),
        "{:?}",
        refused.err()
    );
}
