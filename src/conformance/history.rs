//! The [`MessageLog`] conformance suite: one scenario per rule of the
//! [contract](crate::history#contract), run by every backend.
//!
//! ```no_run
//! # async fn f() {
//! let log = stateless_ws::history::InMemoryLog::new();
//! stateless_ws::conformance::history::run_all(&log).await;
//! # }
//! ```
//!
//! Like the store suite, it is not covered by semver, its scenarios panic with a message naming
//! the broken rule, and each writes to rooms no other run has used, so they can share a table.
//! They assume the log's [`LogConfig`](crate::history::LogConfig) keeps at least 5 messages
//! per room, allows envelopes of at least 1 KB, has a TTL of at least one minute, and that its
//! clock is within a minute of the system clock. Two scenarios need a small configuration and
//! print why they skip otherwise (so run the suite on a small one too, e.g. 50 messages, 1 h):
//!
//! - [`position_older_than_retention_is_not_recovered`] appends `max_messages` plus three, so
//!   it runs only when [`max_messages`](crate::history::LogConfig::max_messages) is at most
//!   [`MAX_RETENTION_APPENDED`] (1,000);
//! - [`epoch_changes_when_every_message_expired`] waits for the TTL on the log's real clock,
//!   so it runs only when the TTL is at most [`MAX_TTL_WAITED`] (5 s) — call it on its own
//!   with such a log, and test that rule with a manual clock too.

// Scenarios are test assertions: panicking with a message is how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, UNIX_EPOCH};

use futures_util::future::join_all;
use serde_json::json;

use super::{room, unique};
use crate::error::Error;
use crate::history::{History, LogMessage, MessageLog, Position, ReadLimits};
use crate::ids::RoomId;

/// The largest [`max_messages`](crate::history::LogConfig::max_messages) for which
/// [`position_older_than_retention_is_not_recovered`] appends past it (it skips above).
pub const MAX_RETENTION_APPENDED: u64 = 1_000;

/// The longest TTL [`epoch_changes_when_every_message_expired`] waits for.
pub const MAX_TTL_WAITED: Duration = Duration::from_secs(5);

/// Runs every scenario against `log`, one after another.
pub async fn run_all(log: &dyn MessageLog) {
    offsets_are_one_two_three_in_one_epoch(log).await;
    concurrent_appends_take_each_offset_once(log).await;
    reads_see_every_append(log).await;
    read_pages_by_count_and_bytes(log).await;
    a_message_over_the_byte_limit_is_read_alone(log).await;
    resume_from_a_current_position_is_recovered(log).await;
    unknown_epoch_is_not_recovered(log).await;
    position_older_than_retention_is_not_recovered(log).await;
    too_large_append_is_refused_and_writes_nothing(log).await;
    epoch_changes_when_every_message_expired(log).await;
}

fn msg(i: usize) -> LogMessage {
    LogMessage::new(json!({ "n": i, "text": "hello" }))
}

async fn append_n(log: &dyn MessageLog, r: &RoomId, n: usize) -> Vec<crate::history::Envelope> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(log.append(r, msg(i)).await.unwrap());
    }
    out
}

fn offsets(page: &History) -> Vec<u64> {
    page.messages.iter().map(|m| m.offset).collect()
}

fn page_bytes(page: &History) -> usize {
    page.messages
        .iter()
        .map(|m| m.to_json().unwrap().len())
        .sum()
}

/// Rules 1 and 2: a new room's appends get offsets 1, 2, 3 in one epoch, stamped by the log's
/// clock, with the publisher's id kept or a new one made; `head` is the last.
pub async fn offsets_are_one_two_three_in_one_epoch(log: &dyn MessageLog) {
    let r = room(&unique("offsets"), "r");
    assert_eq!(log.head(&r).await.unwrap(), None, "a new room has no head");
    let empty = log
        .read(&r, &Position::start(), ReadLimits::default())
        .await
        .unwrap();
    assert!(
        empty.messages.is_empty() && !empty.more,
        "rule 3: a new room has no messages"
    );
    assert_eq!(
        (empty.epoch, empty.head),
        (None, 0),
        "rule 3: a room with no message kept has no epoch and head 0"
    );
    let before = unix_millis(log);
    let a = log
        .append(&r, LogMessage::new(json!("a")).with_id("msg-a"))
        .await
        .unwrap();
    let b = log.append(&r, LogMessage::new(json!("b"))).await.unwrap();
    let c = log
        .append(&r, LogMessage::new(json!({"c": [1, 2]})))
        .await
        .unwrap();
    let after = unix_millis(log);
    assert_eq!(
        (a.offset, b.offset, c.offset),
        (1, 2, 3),
        "rule 1: a new room's offsets are 1, 2, 3"
    );
    assert!(!a.epoch.is_empty(), "rule 2: an epoch is named");
    assert!(
        a.epoch == b.epoch && b.epoch == c.epoch,
        "rule 2: appends to a room with messages kept stay in its epoch"
    );
    assert_eq!(a.room, r);
    assert_eq!(a.id, "msg-a", "the publisher's id is kept");
    assert!(
        !b.id.is_empty() && b.id != c.id,
        "the log makes up distinct ids"
    );
    assert_eq!(c.data, json!({"c": [1, 2]}));
    assert!(
        a.at >= before.saturating_sub(60_000) && c.at <= after + 60_000,
        "`at` is the log clock's Unix milliseconds"
    );
    assert_eq!(
        log.head(&r).await.unwrap(),
        Some(Position::new(a.epoch.clone(), 3)),
        "head is the epoch and the last offset"
    );
}

/// Rule 1: under concurrent appenders (8 × 25) every offset 1..=200 is given exactly once.
pub async fn concurrent_appends_take_each_offset_once(log: &dyn MessageLog) {
    let r = room(&unique("concurrent"), "r");
    let tasks = (0..8).map(|t| {
        let r = r.clone();
        async move {
            let mut got = Vec::new();
            for i in 0..25 {
                let e = log.append(&r, msg(t * 100 + i)).await.unwrap();
                got.push((e.epoch, e.offset));
            }
            got
        }
    });
    let results = join_all(tasks).await;
    for got in &results {
        assert!(
            got.windows(2).all(|w| w[0].1 < w[1].1),
            "rule 1: one appender's offsets strictly increase"
        );
    }
    let mut all: Vec<(String, u64)> = results.into_iter().flatten().collect();
    let epoch = all[0].0.clone();
    assert!(
        all.iter().all(|(e, _)| *e == epoch),
        "rule 2: concurrent appends share the room's epoch"
    );
    all.sort_by_key(|(_, o)| *o);
    let offsets: Vec<u64> = all.iter().map(|(_, o)| *o).collect();
    assert_eq!(
        offsets,
        (1..=200).collect::<Vec<u64>>(),
        "rule 1: under concurrent appenders every offset 1..=200 is given exactly once"
    );
    assert_eq!(
        log.head(&r).await.unwrap(),
        Some(Position::new(epoch, 200)),
        "rule 6: head sees every append"
    );
}

/// Rule 6 (and 3): an append that returned is in the next read, whole and in order.
pub async fn reads_see_every_append(log: &dyn MessageLog) {
    let r = room(&unique("consistent"), "r");
    let mut appended = Vec::new();
    for i in 0..3 {
        appended.push(log.append(&r, msg(i)).await.unwrap());
        let page = log
            .read(&r, &Position::start(), ReadLimits::default())
            .await
            .unwrap();
        assert_eq!(
            page.messages, appended,
            "rule 6: a read after an append returns it, as appended"
        );
        assert_eq!(page.head, (i + 1) as u64, "rule 6: head is the last append");
        assert_eq!(page.epoch.as_deref(), Some(appended[0].epoch.as_str()));
        assert!(!page.more, "rule 3: no `more` on the last page");
        assert!(
            page.recovered,
            "rule 3: a read from the start of a history that starts at 1 is recovered"
        );
        assert_eq!(page.room, r);
    }
}

/// Rule 3: pages hold at most `max_messages` and `max_bytes` of envelope JSON, say `more` when
/// others follow, and read again from the last offset they cover the room once, in order.
pub async fn read_pages_by_count_and_bytes(log: &dyn MessageLog) {
    let r = room(&unique("paging"), "r");
    let appended = append_n(log, &r, 5).await;
    let epoch = appended[0].epoch.clone();

    let by_count = ReadLimits {
        max_messages: 2,
        ..ReadLimits::default()
    };
    let mut seen = Vec::new();
    let mut from = Position::new(epoch.clone(), 0);
    let mut pages = 0;
    loop {
        let page = log.read(&r, &from, by_count).await.unwrap();
        pages += 1;
        assert!(
            page.recovered,
            "rule 3: paging within the epoch is recovered"
        );
        assert_eq!(page.head, 5, "rule 3: head is the room's highest offset");
        assert!(
            page.messages.len() <= 2,
            "rule 3: a page holds at most max_messages"
        );
        seen.extend(offsets(&page));
        let Some(last) = page.messages.last() else {
            panic!("rule 3: a page is never empty while messages follow")
        };
        from = Position::new(epoch.clone(), last.offset);
        if !page.more {
            break;
        }
        assert!(pages < 10, "rule 3: `more` ends");
    }
    assert_eq!(
        seen,
        vec![1, 2, 3, 4, 5],
        "rule 3: pages cover the room once, in order"
    );
    assert_eq!(pages, 3, "rule 3: 5 messages by 2 are 3 pages");

    let three: usize = appended[..3]
        .iter()
        .map(|m| m.to_json().unwrap().len())
        .sum();
    let by_bytes = ReadLimits {
        max_bytes: three,
        ..ReadLimits::default()
    };
    let page = log
        .read(&r, &Position::new(epoch.clone(), 0), by_bytes)
        .await
        .unwrap();
    assert_eq!(
        offsets(&page),
        vec![1, 2, 3],
        "rule 3: a page holds as many messages as fit max_bytes of envelope JSON"
    );
    assert!(page_bytes(&page) <= three);
    assert!(page.more, "rule 3: `more` when messages follow the page");
    let rest = log
        .read(&r, &Position::new(epoch, 3), by_bytes)
        .await
        .unwrap();
    assert_eq!(offsets(&rest), vec![4, 5]);
    assert!(!rest.more, "rule 3: no `more` after the last message");
}

/// Rule 3: a message larger than the page's byte limit is still returned, alone.
pub async fn a_message_over_the_byte_limit_is_read_alone(log: &dyn MessageLog) {
    let r = room(&unique("big"), "r");
    let appended = append_n(log, &r, 2).await;
    let tiny = ReadLimits {
        max_bytes: 10,
        ..ReadLimits::default()
    };
    let page = log
        .read(&r, &Position::new(appended[0].epoch.clone(), 0), tiny)
        .await
        .unwrap();
    assert_eq!(
        offsets(&page),
        vec![1],
        "rule 3: at least one message when any follows, whatever its size — and only one"
    );
    assert!(page.more, "rule 3: `more` when messages follow the page");
}

/// Rule 3: from a position in the current epoch the page starts right after it, recovered;
/// from the head it is empty and recovered.
pub async fn resume_from_a_current_position_is_recovered(log: &dyn MessageLog) {
    let r = room(&unique("resume"), "r");
    let appended = append_n(log, &r, 3).await;
    let epoch = appended[0].epoch.clone();
    let page = log
        .read(&r, &Position::new(epoch.clone(), 1), ReadLimits::default())
        .await
        .unwrap();
    assert!(page.recovered, "rule 3: a current position is recovered");
    assert_eq!(
        offsets(&page),
        vec![2, 3],
        "rule 3: the page starts right after the position"
    );
    assert_eq!((page.head, page.more), (3, false));

    let at_head = log
        .read(&r, &Position::new(epoch.clone(), 3), ReadLimits::default())
        .await
        .unwrap();
    assert!(
        at_head.recovered,
        "rule 3: a client at the head is recovered"
    );
    assert!(at_head.messages.is_empty() && !at_head.more);
    assert_eq!(at_head.head, 3);
    assert_eq!(at_head.epoch, Some(epoch));
}

/// Rule 3: a position in another (or an unknown) epoch is not recovered: the page starts at
/// the oldest message kept, in the room's epoch.
pub async fn unknown_epoch_is_not_recovered(log: &dyn MessageLog) {
    let r = room(&unique("epoch"), "r");
    let appended = append_n(log, &r, 3).await;
    let epoch = appended[0].epoch.clone();
    for stale in [Position::new("not-an-epoch", 1), Position::new("x", 0)] {
        let page = log.read(&r, &stale, ReadLimits::default()).await.unwrap();
        assert!(
            !page.recovered,
            "rule 3: a position in another epoch is not recovered ({stale:?})"
        );
        assert_eq!(
            offsets(&page),
            vec![1, 2, 3],
            "rule 3: an unrecovered page starts at the oldest message kept"
        );
        assert_eq!(page.epoch.as_deref(), Some(epoch.as_str()));
        assert_eq!(page.head, 3);
    }
}

/// Rules 3 and 4: after more than `max_messages` appends only the newest are read, and a
/// position whose next message was dropped is not recovered.
pub async fn position_older_than_retention_is_not_recovered(log: &dyn MessageLog) {
    let max = log.config().max_messages;
    if max > MAX_RETENTION_APPENDED {
        println!(
            "skipped position_older_than_retention_is_not_recovered: {log} keeps {max} \
             messages per room, more than the {MAX_RETENTION_APPENDED} this scenario appends"
        );
        return;
    }
    let r = room(&unique("retention"), "r");
    let total = max + 3;
    let appended = append_n(log, &r, usize::try_from(total).unwrap()).await;
    let epoch = appended[0].epoch.clone();
    assert!(
        appended.iter().all(|m| m.epoch == epoch),
        "rule 2: dropping old messages does not change the epoch"
    );

    let limits = ReadLimits {
        max_messages: 1_000,
        max_bytes: usize::MAX,
    };
    let page = log
        .read(&r, &Position::new(epoch.clone(), 1), limits)
        .await
        .unwrap();
    assert!(
        !page.recovered,
        "rule 3: a position whose next message is no longer kept is not recovered"
    );
    assert_eq!(
        offsets(&page),
        (4..=total).collect::<Vec<u64>>(),
        "rule 4: only the newest max_messages are read"
    );
    assert_eq!(page.head, total);
    assert!(!page.more);

    let from_start = log.read(&r, &Position::start(), limits).await.unwrap();
    assert!(
        !from_start.recovered,
        "rule 3: the start is not recovered once offset 1 is dropped"
    );
    assert_eq!(from_start.messages.first().map(|m| m.offset), Some(4));

    let kept = log
        .read(&r, &Position::new(epoch, 3), limits)
        .await
        .unwrap();
    assert!(
        kept.recovered,
        "rule 3: a position right before the oldest message kept is recovered"
    );
    assert_eq!(kept.messages.first().map(|m| m.offset), Some(4));
}

/// Rule 5: an envelope over `max_message_bytes` is refused with `PayloadTooLarge` and nothing
/// is written: no epoch started, no offset taken.
pub async fn too_large_append_is_refused_and_writes_nothing(log: &dyn MessageLog) {
    let limit = log.config().max_message_bytes;
    let r = room(&unique("too-large"), "r");
    let huge = || LogMessage::new(json!({ "text": "x".repeat(limit) }));

    match log.append(&r, huge()).await {
        Err(Error::PayloadTooLarge { size, limit: l }) => {
            assert_eq!(l, limit, "rule 5: the error names the configured limit");
            assert!(size > limit, "rule 5: the error names the envelope's size");
        }
        other => panic!("rule 5: an envelope over max_message_bytes is refused, got {other:?}"),
    }
    assert_eq!(
        log.head(&r).await.unwrap(),
        None,
        "rule 5: a refused append to a new room writes nothing"
    );

    let first = log.append(&r, msg(1)).await.unwrap();
    assert_eq!(first.offset, 1, "rule 5: a refused append takes no offset");
    assert!(matches!(
        log.append(&r, huge()).await,
        Err(Error::PayloadTooLarge { .. })
    ));
    assert_eq!(
        log.head(&r).await.unwrap(),
        Some(Position::new(first.epoch.clone(), 1)),
        "rule 5: a refused append leaves the head unchanged"
    );
    let next = log.append(&r, msg(2)).await.unwrap();
    assert_eq!(
        (next.epoch, next.offset),
        (first.epoch, 2),
        "rule 1: a refused append leaves no hole"
    );
}

/// Rules 2 and 4: once every message of a room expired, reads return none and the next append
/// starts a new epoch at offset 1. Waits for the TTL on the real clock, so it only runs when
/// the TTL is at most [`MAX_TTL_WAITED`]; otherwise it prints why it skips.
pub async fn epoch_changes_when_every_message_expired(log: &dyn MessageLog) {
    let ttl = log.config().ttl;
    if ttl > MAX_TTL_WAITED {
        println!(
            "skipped epoch_changes_when_every_message_expired: {log}'s TTL of {ttl:?} is \
             longer than the {MAX_TTL_WAITED:?} this scenario waits"
        );
        return;
    }
    let r = room(&unique("expiry"), "r");
    let old = append_n(log, &r, 2).await;
    // DynamoDB-style TTLs are in whole seconds: wait past the next one.
    tokio::time::sleep(ttl + Duration::from_millis(1_100)).await;

    let page = log
        .read(
            &r,
            &Position::new(old[0].epoch.clone(), 0),
            ReadLimits::default(),
        )
        .await
        .unwrap();
    assert!(
        page.messages.is_empty(),
        "rule 4: reads never return a message past its TTL"
    );
    assert!(!page.recovered, "rule 3: a lost history is not recovered");
    assert_eq!(log.head(&r).await.unwrap(), None, "rule 4: no message kept");

    let new = log.append(&r, msg(3)).await.unwrap();
    assert_eq!(
        new.offset, 1,
        "rule 2: a room with nothing kept starts at 1"
    );
    assert_ne!(
        new.epoch, old[0].epoch,
        "rule 2: a room with nothing kept starts a new epoch"
    );
}

fn unix_millis(log: &dyn MessageLog) -> u64 {
    u64::try_from(
        log.clock()
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap()
}
