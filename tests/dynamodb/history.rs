//! `DynamoDbLog` against MiniStack: offsets under concurrent appenders, paging, recovery,
//! retention, sizes, corrupt items, and epoch restarts.
#![cfg(feature = "dynamodb")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use serde_json::json;
use stateless_ws::history::{DynamoDbLog, LogConfig, LogMessage, MessageLog, Position, ReadLimits};
use stateless_ws::{Error, RoomId};

/// A fresh log table on MiniStack, laid out as `DynamoDbLog`'s docs say.
async fn log(test: &str, tag: &str, config: LogConfig) -> Option<DynamoDbLog> {
    let endpoint = common::dynamodb_endpoint(test)?;
    let client = common::dynamodb_client(&endpoint).await;
    let table = common::unique_table(tag);
    client
        .create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("roomId")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("seq")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("roomId")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("seq")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    Some(
        DynamoDbLog::builder()
            .client(client)
            .table_name(table)
            .config(config)
            .build()
            .unwrap(),
    )
}

fn room(name: &str) -> RoomId {
    RoomId::new(name).unwrap()
}

fn config(max_messages: u64, max_message_bytes: usize) -> LogConfig {
    let mut c = LogConfig::default();
    c.max_messages = max_messages;
    c.max_message_bytes = max_message_bytes;
    c
}

fn limits(max_messages: usize, max_bytes: usize) -> ReadLimits {
    let mut l = ReadLimits::default();
    l.max_messages = max_messages;
    l.max_bytes = max_bytes;
    l
}

async fn put_raw(log: &DynamoDbLog, room: &str, attrs: &[(&str, AttributeValue)]) {
    let mut put = log
        .client()
        .put_item()
        .table_name(log.table_name())
        .item("roomId", AttributeValue::S(format!("room#{room}")));
    for (k, v) in attrs {
        put = put.item(*k, v.clone());
    }
    put.send().await.unwrap();
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// The `MessageLog` conformance scenarios (the same `InMemoryLog` passes) on MiniStack, with a
/// small configuration: 50 messages per room, a one-hour TTL (the expiry scenario skips itself
/// above 5 s and is covered by the epoch-restart test below).
#[tokio::test]
async fn conformance_on_ministack() {
    let test = "conformance_on_ministack";
    let mut config = LogConfig::default();
    config.max_messages = 50;
    config.ttl = std::time::Duration::from_secs(3_600);
    let Some(log) = log(test, "hconf", config).await else {
        return;
    };
    stateless_ws::conformance::history::run_all(&log).await;
}

/// `DynamoDbLog::ensure_table` makes the table the docs describe (the hand-made one above is
/// the reference): twice is fine, TTL is on `ttl`, and the conformance scenarios pass on it.
#[tokio::test]
async fn ensure_table_creates_the_documented_layout_with_ttl() {
    let test = "ensure_table_creates_the_documented_layout_with_ttl";
    let Some(endpoint) = common::dynamodb_endpoint(test) else {
        return;
    };
    let client = common::dynamodb_client(&endpoint).await;
    let table = common::unique_table("hensure");
    let mut config = LogConfig::default();
    config.max_messages = 50;
    let log = DynamoDbLog::builder()
        .client(client.clone())
        .table_name(&table)
        .config(config)
        .build()
        .unwrap();
    log.ensure_table().await.unwrap();
    log.ensure_table().await.expect("an existing table is fine");

    let described = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let keys: Vec<(String, String)> = described
        .table()
        .unwrap()
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("roomId".to_owned(), "HASH".to_owned()),
            ("seq".to_owned(), "RANGE".to_owned())
        ]
    );
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("ttl"));
    stateless_ws::conformance::history::run_all(&log).await;
}

#[tokio::test]
async fn eight_concurrent_appenders_take_offsets_1_to_200_once_each() {
    let test = "eight_concurrent_appenders_take_offsets_1_to_200_once_each";
    let Some(log) = log(test, "hconc", LogConfig::default()).await else {
        return;
    };
    let log = Arc::new(log);
    let r = room("busy");
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (log, r) = (log.clone(), r.clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..25 {
                    let e = log
                        .append(&r, LogMessage::new(json!({"task": t, "i": i})))
                        .await
                        .unwrap();
                    got.push((e.epoch, e.offset));
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let epochs: BTreeSet<_> = all.iter().map(|(e, _)| e.clone()).collect();
    assert_eq!(epochs.len(), 1, "one epoch: {epochs:?}");
    let offsets: Vec<u64> = {
        let mut o: Vec<u64> = all.iter().map(|(_, o)| *o).collect();
        o.sort_unstable();
        o
    };
    assert_eq!(offsets, (1..=200).collect::<Vec<_>>());
    let head = log.head(&r).await.unwrap().unwrap();
    assert_eq!(head.offset, 200);
    // Read it all back in pages of 64: in order, no holes.
    let mut from = Position::start();
    let mut seen = Vec::new();
    loop {
        let page = log.read(&r, &from, limits(64, 1 << 20)).await.unwrap();
        assert!(page.recovered);
        seen.extend(page.messages.iter().map(|m| m.offset));
        from = Position::new(page.epoch.clone().unwrap(), *seen.last().unwrap());
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, (1..=200).collect::<Vec<_>>());
}

#[tokio::test]
async fn pages_by_count_and_bytes_with_more_and_head() {
    let test = "pages_by_count_and_bytes_with_more_and_head";
    let Some(log) = log(test, "hpage", LogConfig::default()).await else {
        return;
    };
    let r = room("paged");
    let empty = log
        .read(&r, &Position::start(), ReadLimits::default())
        .await
        .unwrap();
    assert_eq!(
        (empty.epoch.as_deref(), empty.head, empty.more),
        (None, 0, false)
    );
    assert!(empty.messages.is_empty());
    assert_eq!(log.head(&r).await.unwrap(), None);

    let mut epoch = String::new();
    for i in 1..=10u64 {
        let e = log
            .append(
                &r,
                LogMessage::new(json!({"text": "x".repeat(100), "i": i})).with_id(format!("m{i}")),
            )
            .await
            .unwrap();
        assert_eq!(e.offset, i);
        assert_eq!(e.id, format!("m{i}"));
        epoch = e.epoch;
    }
    let size = log
        .read(&r, &Position::new(&epoch, 0), limits(1, 1 << 20))
        .await
        .unwrap()
        .messages[0]
        .to_json()
        .unwrap()
        .len();

    // By count.
    let page = log
        .read(&r, &Position::new(&epoch, 2), limits(3, 1 << 20))
        .await
        .unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.offset).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert!(page.recovered && page.more);
    assert_eq!(page.head, 10);
    assert_eq!(page.epoch.as_deref(), Some(epoch.as_str()));
    assert_eq!(page.messages[0].data["i"], 3);

    // By bytes: room for two and a half envelopes gives two.
    let page = log
        .read(&r, &Position::new(&epoch, 5), limits(100, size * 5 / 2))
        .await
        .unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.offset).collect::<Vec<_>>(),
        [6, 7]
    );
    assert!(page.recovered && page.more);

    // At least one message, whatever its size.
    let page = log
        .read(&r, &Position::new(&epoch, 8), limits(100, 1))
        .await
        .unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.offset).collect::<Vec<_>>(),
        [9]
    );
    assert!(page.more);

    // The end.
    let page = log
        .read(&r, &Position::new(&epoch, 9), ReadLimits::default())
        .await
        .unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.offset).collect::<Vec<_>>(),
        [10]
    );
    assert!(page.recovered && !page.more);
    let page = log
        .read(&r, &Position::new(&epoch, 10), ReadLimits::default())
        .await
        .unwrap();
    assert!(page.messages.is_empty() && page.recovered && !page.more);
    assert_eq!(log.head(&r).await.unwrap(), Some(Position::new(&epoch, 10)));
}

#[tokio::test]
async fn recovered_is_false_for_another_epoch_or_a_position_past_count_retention() {
    let test = "recovered_is_false_for_another_epoch_or_a_position_past_count_retention";
    let Some(log) = log(test, "hrecov", config(5, 128 * 1024)).await else {
        return;
    };
    let r = room("kept5");
    let mut epoch = String::new();
    for i in 1..=12 {
        epoch = log
            .append(&r, LogMessage::new(json!(i)))
            .await
            .unwrap()
            .epoch;
    }
    let offsets = |h: &stateless_ws::history::History| {
        h.messages.iter().map(|m| m.offset).collect::<Vec<_>>()
    };
    // Kept: 8..=12.
    let page = log
        .read(&r, &Position::new(&epoch, 7), ReadLimits::default())
        .await
        .unwrap();
    assert!(page.recovered);
    assert_eq!(offsets(&page), [8, 9, 10, 11, 12]);
    let page = log
        .read(&r, &Position::new(&epoch, 3), ReadLimits::default())
        .await
        .unwrap();
    assert!(!page.recovered, "offset 4 is past count retention");
    assert_eq!(offsets(&page), [8, 9, 10, 11, 12]);
    let page = log
        .read(
            &r,
            &Position::new("another-epoch", 9),
            ReadLimits::default(),
        )
        .await
        .unwrap();
    assert!(!page.recovered, "wrong epoch");
    assert_eq!(offsets(&page), [8, 9, 10, 11, 12]);
    assert_eq!(page.epoch.as_deref(), Some(epoch.as_str()));
    let page = log
        .read(&r, &Position::start(), limits(2, 1 << 20))
        .await
        .unwrap();
    assert!(!page.recovered, "offset 1 is no longer kept");
    assert_eq!(offsets(&page), [8, 9]);
    assert!(page.more);
    let page = log
        .read(&r, &Position::new(&epoch, 40), ReadLimits::default())
        .await
        .unwrap();
    assert!(!page.recovered, "a position beyond the head");
    assert_eq!(page.head, 12);
    let page = log
        .read(&r, &Position::new(&epoch, u64::MAX), ReadLimits::default())
        .await
        .unwrap();
    assert!(!page.recovered, "a client's offset is input: no overflow");
    assert_eq!(offsets(&page), [8, 9, 10, 11, 12]);
}

#[tokio::test]
async fn a_too_large_append_is_refused_with_nothing_written() {
    let test = "a_too_large_append_is_refused_with_nothing_written";
    let Some(log) = log(test, "hbig", config(100, 400)).await else {
        return;
    };
    let r = room("small");
    let err = log
        .append(&r, LogMessage::new(json!({"text": "x".repeat(400)})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::PayloadTooLarge { limit: 400, .. }),
        "{err:?}"
    );
    let items = log
        .client()
        .scan()
        .table_name(log.table_name())
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert!(items.is_empty(), "nothing written: {items:?}");
    let ok = log
        .append(&r, LogMessage::new(json!("fits")))
        .await
        .unwrap();
    assert_eq!(ok.offset, 1);
}

#[tokio::test]
async fn a_corrupt_item_is_an_error_naming_the_attribute() {
    let test = "a_corrupt_item_is_an_error_naming_the_attribute";
    let Some(log) = log(test, "hcorrupt", LogConfig::default()).await else {
        return;
    };
    let now = now_ms();
    put_raw(
        &log,
        "edited",
        &[
            ("seq", n(1)),
            ("offset", n(1)),
            ("epoch", s("e1")),
            ("id", s("m1")),
            ("at", n(now)),
            ("data", s("{not json")),
            ("ttl", n(now / 1000 + 3600)),
        ],
    )
    .await;
    let err = log
        .read(&room("edited"), &Position::start(), ReadLimits::default())
        .await
        .unwrap_err();
    let chain = err.chain().to_string();
    assert!(
        chain.contains("DynamoDbLog(") && chain.contains("data"),
        "{chain}"
    );

    put_raw(
        &log,
        "noepoch",
        &[("seq", n(1)), ("offset", s("one")), ("at", n(now))],
    )
    .await;
    let err = log
        .append(&room("noepoch"), LogMessage::new(json!(1)))
        .await
        .unwrap_err();
    assert!(
        err.chain().to_string().contains("offset"),
        "{}",
        err.chain()
    );
}

#[tokio::test]
async fn a_room_whose_newest_item_is_past_its_ttl_starts_a_new_epoch_at_1() {
    let test = "a_room_whose_newest_item_is_past_its_ttl_starts_a_new_epoch_at_1";
    let Some(log) = log(test, "hepoch", LogConfig::default()).await else {
        return;
    };
    // Two expired items not yet deleted by the TTL sweep.
    let old_at = now_ms() - 3 * 24 * 3600 * 1000;
    for i in 1..=2u64 {
        put_raw(
            &log,
            "stale",
            &[
                ("seq", n(i)),
                ("offset", n(i)),
                ("epoch", s("oldepoch")),
                ("id", s(&format!("old{i}"))),
                ("at", n(old_at)),
                ("data", s("\"old\"")),
                ("ttl", n(old_at / 1000 + 60)),
            ],
        )
        .await;
    }
    let r = room("stale");
    assert_eq!(
        log.head(&r).await.unwrap(),
        None,
        "expired items are not kept"
    );
    let page = log
        .read(&r, &Position::new("oldepoch", 1), ReadLimits::default())
        .await
        .unwrap();
    assert!(!page.recovered && page.messages.is_empty() && page.epoch.is_none());

    let first = log.append(&r, LogMessage::new(json!("new"))).await.unwrap();
    assert_eq!(first.offset, 1);
    assert_ne!(first.epoch, "oldepoch");
    let second = log
        .append(&r, LogMessage::new(json!("newer")))
        .await
        .unwrap();
    assert_eq!(
        (second.epoch.as_str(), second.offset),
        (first.epoch.as_str(), 2)
    );

    let page = log
        .read(&r, &Position::new("oldepoch", 2), ReadLimits::default())
        .await
        .unwrap();
    assert!(!page.recovered);
    assert_eq!(
        page.messages
            .iter()
            .map(|m| m.data.clone())
            .collect::<Vec<_>>(),
        [json!("new"), json!("newer")]
    );
    let page = log
        .read(&r, &Position::start(), ReadLimits::default())
        .await
        .unwrap();
    assert!(page.recovered, "the new epoch starts at 1");
    assert_eq!(page.head, 2);
}

/// Appends under contention keep every offset once, and what that costs: 1 and 4 appenders x
/// 25 in every run. The numbers in `DynamoDbLog`'s docs are the full measurement (1, 4, 8, 16
/// appenders x 100): `STATELESS_WS_MEASURE=1 cargo test --all-features --test dynamodb --
/// --nocapture measure_append_contention` with MiniStack running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measure_append_contention() {
    if common::dynamodb_endpoint("measure_append_contention").is_none() {
        return;
    }
    let full = std::env::var("STATELESS_WS_MEASURE").as_deref() == Ok("1");
    let (sizes, per_task): (&[usize], usize) = if full {
        (&[1, 4, 8, 16], 100)
    } else {
        (&[1, 4], 25)
    };
    for &tasks in sizes {
        let log = Arc::new(
            log("measure", "hmeasure", LogConfig::default())
                .await
                .unwrap(),
        );
        let r = room("measured");
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (log, r) = (log.clone(), r.clone());
                tokio::spawn(async move {
                    let mut failed = 0u64;
                    for i in 0..per_task {
                        if let Err(e) = log.append(&r, LogMessage::new(json!({"i": i}))).await {
                            assert!(matches!(e, Error::Throttled { .. }), "{}", e.chain());
                            failed += 1;
                        }
                    }
                    failed
                })
            })
            .collect();
        let mut failed = 0;
        for h in handles {
            failed += h.await.unwrap();
        }
        let elapsed = started.elapsed();
        let appends = (tasks * per_task) as u64 - failed;
        if !full {
            assert_eq!(failed, 0, "no append gives up at this size");
        }
        let head = log.head(&r).await.unwrap().unwrap();
        assert_eq!(head.offset, appends);
        let lost = log.lost_races();
        println!(
            "{tasks:>2} task(s) x {per_task}: {appends} appends in {:.2} s = {:.0} appends/s, {lost} conditional puts lost ({:.2} per append), {failed} gave up",
            elapsed.as_secs_f64(),
            appends as f64 / elapsed.as_secs_f64(),
            lost as f64 / appends as f64,
        );
    }
}

#[tokio::test]
async fn messages_past_the_logs_ttl_are_not_read_and_the_room_starts_a_new_epoch() {
    let test = "messages_past_the_logs_ttl_are_not_read_and_the_room_starts_a_new_epoch";
    let Some(log) = log(test, "hclock", LogConfig::default()).await else {
        return;
    };
    let clock = stateless_ws::clock::ManualClock::new(std::time::SystemTime::now());
    let log = log.with_clock(clock.clone());
    let r = room("timed");
    let first = log.append(&r, LogMessage::new(json!(1))).await.unwrap();
    clock.advance(Duration::from_secs(23 * 3600));
    let second = log.append(&r, LogMessage::new(json!(2))).await.unwrap();
    assert_eq!(
        (second.epoch.as_str(), second.offset),
        (first.epoch.as_str(), 2)
    );
    // 24 h after the first append: only the second is kept, and the position before the
    // first can no longer be recovered.
    clock.advance(Duration::from_secs(3600));
    let page = log
        .read(&r, &Position::new(&first.epoch, 0), ReadLimits::default())
        .await
        .unwrap();
    assert!(!page.recovered);
    assert_eq!(
        page.messages.iter().map(|m| m.offset).collect::<Vec<_>>(),
        [2]
    );
    // 24 h after the second: nothing kept; the next append starts a new epoch at 1.
    clock.advance(Duration::from_secs(23 * 3600));
    assert_eq!(log.head(&r).await.unwrap(), None);
    let third = log.append(&r, LogMessage::new(json!(3))).await.unwrap();
    assert_eq!(third.offset, 1);
    assert_ne!(third.epoch, first.epoch);
}
