//! `Publisher`: publish appends, then fans out; resume posts the history in pages.

use std::sync::Arc;

use serde_json::{Value, json};
use stateless_ws::broadcast::{Broadcaster, RecordingSender};
use stateless_ws::history::{
    InMemoryLog, LogConfig, LogMessage, MessageLog, Position, Publisher, ResumeLimits,
};
use stateless_ws::queue::{Dispatched, RoomDispatch};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::test_util::{InstrumentedStore, StoreOp};
use stateless_ws::{ConnectionId, Error, Membership, RoomId};

fn id(s: &str) -> ConnectionId {
    ConnectionId::new(s).unwrap()
}

struct Setup {
    sender: RecordingSender,
    log: Arc<InMemoryLog>,
    publisher: Publisher,
    room: RoomId,
}

async fn setup(members: &[&str], config: LogConfig) -> Setup {
    let store: Arc<dyn ConnectionStore> = Arc::new(InMemoryStore::new());
    let room = RoomId::new("lobby").unwrap();
    for m in members {
        store
            .join(&Membership::new(id(m), room.clone()))
            .await
            .unwrap();
    }
    let sender = RecordingSender::new();
    let broadcaster = Broadcaster::new(store, Arc::new(sender.clone()));
    let log = Arc::new(InMemoryLog::with_config(config).unwrap());
    let publisher = Publisher::new(log.clone(), RoomDispatch::new(broadcaster));
    Setup {
        sender,
        log,
        publisher,
        room,
    }
}

fn received(sender: &RecordingSender, to: &str) -> Vec<Value> {
    sender
        .messages(&id(to))
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect()
}

#[tokio::test]
async fn publish_appends_then_sends_the_envelope_to_the_room() {
    let s = setup(&["a=", "b=", "c="], LogConfig::default()).await;
    for text in ["one", "two"] {
        let published = s
            .publisher
            .publish_data(&s.room, json!({"text": text}), Some(&id("a=")))
            .await
            .unwrap();
        assert!(
            matches!(published.delivery, Ok(Dispatched::InLine(ref r)) if r.delivered_count == 2)
        );
        assert!(published.is_complete());
    }
    assert!(
        s.sender.messages(&id("a=")).is_empty(),
        "the sender is excluded"
    );
    for member in ["b=", "c="] {
        let got = received(&s.sender, member);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["type"], "room.message");
        assert_eq!(
            (got[0]["offset"].as_u64(), got[1]["offset"].as_u64()),
            (Some(1), Some(2))
        );
        assert_eq!(got[0]["epoch"], got[1]["epoch"]);
        assert_eq!(got[1]["data"], json!({"text": "two"}));
    }
    assert_eq!(s.log.head(&s.room).await.unwrap().unwrap().offset, 2);
}

#[tokio::test]
async fn a_failed_append_sends_nothing() {
    let mut config = LogConfig::default();
    config.max_message_bytes = 1_024;
    let s = setup(&["a=", "b="], config).await;
    let error = s
        .publisher
        .publish(&s.room, LogMessage::new(json!("x".repeat(2_000))), None)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::PayloadTooLarge { .. }), "{error}");
    assert_eq!(
        s.sender.total_attempts(),
        0,
        "nothing is posted when the append fails"
    );
    assert!(s.log.head(&s.room).await.unwrap().is_none());
}

/// The room cannot be read after the append: `publish` answers `Ok` (the message is logged, a
/// retry would log it twice) with the fan-out's error in `delivery`, and the members get the
/// message by resuming.
#[tokio::test]
async fn a_fan_out_that_cannot_start_after_the_append_is_reported_in_delivery_not_as_an_error() {
    let inner: Arc<dyn ConnectionStore> = Arc::new(InMemoryStore::new());
    let room = RoomId::new("lobby").unwrap();
    inner
        .join(&Membership::new(id("b="), room.clone()))
        .await
        .unwrap();
    let store = Arc::new(InstrumentedStore::new(inner));
    store.fail_next(StoreOp::RoomPage, 1, || Error::Store {
        backend: "test".into(),
        source: "ProvisionedThroughputExceededException".into(),
    });
    let sender = RecordingSender::new();
    let log = Arc::new(InMemoryLog::new());
    let publisher = Publisher::new(
        log.clone(),
        RoomDispatch::new(Broadcaster::new(store, Arc::new(sender.clone()))),
    );

    let published = publisher
        .publish_data(&room, json!({"text": "kept"}), None)
        .await
        .expect("the message was logged: Ok");
    assert!(
        matches!(published.delivery, Err(Error::Store { .. })),
        "{:?}",
        published.delivery
    );
    assert!(!published.is_complete());
    assert_eq!(published.envelope.offset, 1);
    assert!(sender.messages(&id("b=")).is_empty(), "nothing was sent");

    // b resumes from the start and gets it.
    let resumed = publisher
        .resume(id("b="), &room, &Position::start(), ResumeLimits::default())
        .await
        .unwrap();
    assert_eq!((resumed.messages, resumed.recovered), (1, true));
    let page = &received(&sender, "b=")[0];
    assert_eq!(page["messages"][0]["data"], json!({"text": "kept"}));
    assert_eq!(
        log.head(&room).await.unwrap().unwrap().offset,
        1,
        "logged once"
    );
}

#[tokio::test]
async fn resume_posts_what_was_missed_in_pages_within_its_bounds() {
    let s = setup(&["a="], LogConfig::default()).await;
    let mut epoch = String::new();
    for n in 1..=5 {
        epoch = s
            .publisher
            .publish_data(&s.room, json!({ "n": n }), None)
            .await
            .unwrap()
            .envelope
            .epoch;
    }
    s.sender.clear();
    // Missed 3..=5, two per page: two pages, the last with more = false.
    let mut limits = ResumeLimits::default();
    limits.page.max_messages = 2;
    let resumed = s
        .publisher
        .resume(id("r="), &s.room, &Position::new(epoch.clone(), 2), limits)
        .await
        .unwrap();
    assert_eq!(
        (
            resumed.pages,
            resumed.messages,
            resumed.recovered,
            resumed.more
        ),
        (2, 3, true, false)
    );
    let pages = received(&s.sender, "r=");
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0]["type"], "room.history");
    let offsets: Vec<u64> = pages
        .iter()
        .flat_map(|p| {
            p["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["offset"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(offsets, [3, 4, 5]);
    assert_eq!(
        (pages[0]["more"].as_bool(), pages[1]["more"].as_bool()),
        (Some(true), Some(false))
    );

    // A budget of 2 messages per resume: one page, `more` says ask again.
    s.sender.clear();
    let mut limits = ResumeLimits::default();
    limits.max_messages = 2;
    let resumed = s
        .publisher
        .resume(id("r="), &s.room, &Position::new(epoch.clone(), 0), limits)
        .await
        .unwrap();
    assert_eq!(
        (resumed.pages, resumed.messages, resumed.more),
        (1, 2, true)
    );

    // Another epoch: not recovered, the client reloads.
    s.sender.clear();
    let resumed = s
        .publisher
        .resume(
            id("r="),
            &s.room,
            &Position::new("other-epoch", 2),
            ResumeLimits::default(),
        )
        .await
        .unwrap();
    assert!(!resumed.recovered);
    assert_eq!(received(&s.sender, "r=")[0]["recovered"], false);
}
