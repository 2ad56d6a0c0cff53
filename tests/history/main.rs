//! The message log (issue 19), in one test binary: the conformance scenarios on
//! `InMemoryLog` with the default and a small configuration, and retention and epochs on a
//! manual clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/child.rs"]
mod child;
mod env;
mod publish;

use std::time::{Duration, SystemTime};

use serde_json::json;
use stateless_ws::clock::ManualClock;
use stateless_ws::conformance::history;
use stateless_ws::history::{InMemoryLog, LogConfig, LogMessage, MessageLog, Position, ReadLimits};
use stateless_ws::{Error, RoomId};

fn config(ttl: Duration, max_messages: u64) -> LogConfig {
    let mut config = LogConfig::default();
    config.ttl = ttl;
    config.max_messages = max_messages;
    config
}

fn room(name: &str) -> RoomId {
    RoomId::new(name).unwrap()
}

#[tokio::test]
async fn conformance_with_the_default_config() {
    history::run_all(&InMemoryLog::new()).await;
}

#[tokio::test]
async fn conformance_with_a_small_config() {
    let mut small = config(Duration::from_secs(3_600), 50);
    small.max_message_bytes = 2_048;
    history::run_all(&InMemoryLog::with_config(small).unwrap()).await;
}

#[tokio::test]
async fn conformance_through_box_and_arc() {
    let boxed: Box<dyn MessageLog> =
        Box::new(InMemoryLog::with_config(config(Duration::from_secs(60), 5)).unwrap());
    history::run_all(boxed.as_ref()).await;
    let shared: std::sync::Arc<dyn MessageLog> = std::sync::Arc::new(InMemoryLog::new());
    history::run_all(shared.as_ref()).await;
}

#[tokio::test]
async fn epoch_scenario_on_the_real_clock_with_a_one_second_ttl() {
    let log = InMemoryLog::with_config(config(Duration::from_secs(1), 10)).unwrap();
    history::epoch_changes_when_every_message_expired(&log).await;
}

#[test]
fn invalid_configs_are_refused() {
    for bad in [
        config(Duration::from_secs(60), 0),
        config(Duration::ZERO, 10),
        {
            let mut c = LogConfig::default();
            c.max_message_bytes = 128 * 1024 + 1;
            c
        },
    ] {
        assert!(matches!(
            InMemoryLog::with_config(bad),
            Err(Error::Config { .. })
        ));
    }
}

#[tokio::test]
async fn ttl_retention_follows_the_manual_clock() {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(10_000));
    let log = InMemoryLog::with_config(config(Duration::from_secs(60), 100))
        .unwrap()
        .with_clock(clock.clone());
    let r = room("ttl");
    let one = log.append(&r, LogMessage::new(json!(1))).await.unwrap();
    assert_eq!(one.at, 10_000_000, "`at` is the clock's Unix milliseconds");
    clock.advance(Duration::from_secs(40));
    let two = log.append(&r, LogMessage::new(json!(2))).await.unwrap();

    // 59.999 s after the first append it is still kept; at 60 s it is not.
    clock.advance(Duration::from_millis(19_999));
    let page = log
        .read(
            &r,
            &Position::new(one.epoch.clone(), 0),
            ReadLimits::default(),
        )
        .await
        .unwrap();
    assert!(page.recovered);
    assert_eq!(page.messages, vec![one.clone(), two.clone()]);

    clock.advance(Duration::from_millis(1));
    let page = log
        .read(
            &r,
            &Position::new(one.epoch.clone(), 0),
            ReadLimits::default(),
        )
        .await
        .unwrap();
    assert!(!page.recovered, "offset 1 expired: the gap is reported");
    assert_eq!(page.messages, vec![two.clone()]);
    let page = log
        .read(
            &r,
            &Position::new(one.epoch.clone(), 1),
            ReadLimits::default(),
        )
        .await
        .unwrap();
    assert!(page.recovered, "a client that showed offset 1 lost nothing");
    assert_eq!(
        log.head(&r).await.unwrap(),
        Some(Position::new(one.epoch.clone(), 2))
    );
}

#[tokio::test]
async fn a_room_whose_messages_all_expired_starts_a_new_epoch() {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(10_000));
    let log = InMemoryLog::with_config(config(Duration::from_secs(60), 100))
        .unwrap()
        .with_clock(clock.clone());
    let r = room("epochs");
    let mut epochs = Vec::new();
    for round in 0..3 {
        let a = log.append(&r, LogMessage::new(json!(round))).await.unwrap();
        let b = log.append(&r, LogMessage::new(json!(round))).await.unwrap();
        assert_eq!((a.offset, b.offset), (1, 2), "round {round} starts at 1");
        assert_eq!(a.epoch, b.epoch);
        assert!(!epochs.contains(&a.epoch), "an epoch is never reused");
        epochs.push(a.epoch);
        clock.advance(Duration::from_secs(61));

        assert_eq!(log.head(&r).await.unwrap(), None);
        let page = log
            .read(
                &r,
                &Position::new(epochs[round].clone(), 2),
                ReadLimits::default(),
            )
            .await
            .unwrap();
        assert!(!page.recovered, "the client's epoch is gone");
        assert!(page.messages.is_empty());
        assert_eq!((page.epoch, page.head, page.more), (None, 0, false));
    }
}

#[tokio::test]
async fn retention_by_count_keeps_the_newest() {
    let log = InMemoryLog::with_config(config(Duration::from_secs(3_600), 3)).unwrap();
    let r = room("count");
    let mut last = None;
    for i in 0..10 {
        last = Some(log.append(&r, LogMessage::new(json!(i))).await.unwrap());
    }
    let last = last.unwrap();
    let page = log
        .read(&r, &Position::start(), ReadLimits::default())
        .await
        .unwrap();
    let offsets: Vec<u64> = page.messages.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, vec![8, 9, 10]);
    assert!(!page.recovered);
    assert_eq!(page.epoch, Some(last.epoch));
}
