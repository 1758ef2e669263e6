//! Topics and patterns: who receives what, once.

use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn subscribers_get_their_topics_patterns_and_global_broadcasts_only() {
    let app = spawn_app().await;
    let mut stocks = app.subscribe("/events?topic=stocks").await;
    let mut news = app.subscribe("/events?topic=news.*").await;
    let mut all = app.subscribe("/events?topic=*").await;
    let mut none = app.subscribe("/events").await;

    for (topic, data) in [
        ("stocks", "s1"),
        ("news.sport", "n1"),
        ("weather", "w1"),
        ("news", "x1"),
    ] {
        app.publish(json!({"topic": topic, "data": data})).await;
    }
    app.publish(json!({"data": "global"})).await;

    assert_eq!(stocks.next_data(2).await, ["s1", "global"]);
    assert_eq!(news.next_data(2).await, ["n1", "global"]);
    assert_eq!(all.next_data(5).await, ["s1", "n1", "w1", "x1", "global"]);
    assert_eq!(none.next_data(1).await, ["global"]);
}

#[actix_web::test]
async fn an_event_matching_several_patterns_of_a_client_arrives_once() {
    let app = spawn_app().await;
    let mut greedy = app
        .subscribe("/events?topic=a&topic=b&topic=*&topic=a*")
        .await;
    let reply = app
        .publish(json!({"topics": ["a", "b", "c"], "data": "once"}))
        .await;
    assert_eq!(reply["receivers"], 1);
    app.publish(json!({"topic": "z", "data": "next"})).await;
    assert_eq!(greedy.next_data(2).await, ["once", "next"]);
}

#[actix_web::test]
async fn receivers_count_only_the_matching_clients() {
    let app = spawn_app().await;
    let _a = app.subscribe("/events?topic=a").await;
    let _b = app.subscribe("/events?topic=b").await;
    let _ab = app.subscribe("/events?topic=a&topic=b").await;
    assert_eq!(
        app.publish(json!({"topic": "a", "payload": 1})).await["receivers"],
        2
    );
    assert_eq!(
        app.publish(json!({"topics": ["a", "b"], "payload": 1}))
            .await["receivers"],
        3
    );
    assert_eq!(
        app.publish(json!({"topic": "c", "payload": 1})).await["receivers"],
        0
    );
    let batch = json!([{"topic": "a", "payload": 1}, {"topic": "b", "payload": 2}, {"payload": 3}]);
    assert_eq!(app.publish(batch).await["receivers"], 2 + 2 + 3);
}

#[actix_web::test]
async fn a_batch_gives_each_client_its_matching_events_in_order() {
    let app = spawn_app().await;
    let mut a = app.subscribe("/events?topic=a").await;
    let mut b = app.subscribe("/events?topic=b").await;
    app.publish(json!([
        {"topic": "a", "data": "a1"}, {"topic": "b", "data": "b1"},
        {"data": "g"}, {"topics": ["a", "b"], "data": "ab"}, {"topic": "a", "data": "a2"}
    ]))
    .await;
    assert_eq!(a.next_data(4).await, ["a1", "g", "ab", "a2"]);
    assert_eq!(b.next_data(3).await, ["b1", "g", "ab"]);
    let mut global_only = app.subscribe("/events").await;
    app.publish(json!([{"data": "g1"}, {"topic": "a", "data": "a3"}, {"data": "g2"}]))
        .await;
    assert_eq!(global_only.next_data(2).await, ["g1", "g2"]);
    assert_eq!(a.next_data(3).await, ["g1", "a3", "g2"]);
    assert_eq!(b.next_data(2).await, ["g1", "g2"]);
    app.wait_for_stats("every delivery counted", |s| {
        s["delivered"] == 4 + 3 + 2 + 3 + 2
    })
    .await;
}

#[actix_web::test]
async fn stats_list_topics_with_their_subscriber_counts() {
    let app = spawn_app().await;
    let _one = app.subscribe("/events?topic=stocks&topic=news.*").await;
    let _two = app.subscribe("/events?topic=stocks").await;
    let _three = app.subscribe("/events").await;
    app.publish(json!({"topic": "stocks", "payload": 1})).await;
    // /stats is rebuilt at most once a second: wait for one that has it all.
    let stats = app
        .wait_for_stats("three clients, one event delivered twice", |s| {
            s["clients"] == 3 && s["delivered"] == 2
        })
        .await;
    assert_eq!(stats["topics"], json!({"stocks": 2, "news.*": 1}));
    assert_eq!(stats["published"], 1);
    assert_eq!(stats["delivered"], 2);
    assert_eq!(stats["history"], 1);
    assert_eq!(stats["dropped_slow"], 0);
    assert!(stats["uptime_secs"].is_u64());
}

#[actix_web::test]
async fn the_demo_clock_ticks_on_topic_time_without_id_or_history() {
    let app = crate::helpers::spawn_app_with(|c| c.demo.clock_secs = 1).await;
    let mut clock = app.subscribe("/events?topic=time").await;
    let tick = clock.next().await;
    assert_eq!(tick.event, "time");
    assert!(tick.id.is_empty(), "no id: {tick:?}");
    assert!(
        tick.data.ends_with('Z') && tick.data.contains('T'),
        "{}",
        tick.data
    );
    let stats = app
        .wait_for_stats("the tick counted", |s| s["published"].as_u64() >= Some(1))
        .await;
    assert_eq!(stats["history"], 0);
}
