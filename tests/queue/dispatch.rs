//! `RoomDispatch`: in-line or queued by a room's size — the excluded connection not counted —
//! withheld above a maximum, decided from one read that a small room is sent from. The size
//! scenarios run on the in-memory store and on `DynamoDbStore` in MiniStack, both with pages of
//! 2 records so that the limits fall across pages; reads are counted, and failed, on a wrapper
//! of the in-memory store.

use std::sync::Arc;

use stateless_ws::broadcast::{Broadcaster, Payload, RecordingSender};
use stateless_ws::queue::{Dispatched, FanoutPlanner, InMemoryQueue, RoomDispatch};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::test_util::{InstrumentedStore, StoreOp};
use stateless_ws::{Error, Membership, RoomId};

use super::member;
use crate::common;

struct Fixture {
    store: Arc<dyn ConnectionStore>,
    sender: RecordingSender,
    queue: Arc<InMemoryQueue>,
    room: RoomId,
}

impl Fixture {
    fn new(store: Arc<dyn ConnectionStore>) -> Self {
        Self {
            store,
            sender: RecordingSender::new(),
            queue: Arc::new(InMemoryQueue::new()),
            room: RoomId::new("r").unwrap(),
        }
    }

    /// Members `c00000=` … up to `n` in all.
    async fn fill(&self, n: usize) {
        for i in 0..n {
            let record = Membership::new(member(i), self.room.clone());
            self.store.join(&record).await.unwrap();
        }
    }

    fn in_line(&self) -> RoomDispatch {
        let broadcaster = Broadcaster::new(Arc::clone(&self.store), Arc::new(self.sender.clone()))
            .with_config(common::without_connect_grace());
        RoomDispatch::new(broadcaster)
    }

    fn queued_above(&self, above: usize) -> RoomDispatch {
        let planner = FanoutPlanner::new(Arc::clone(&self.store), self.queue.clone());
        self.in_line().with_queue(planner, above)
    }
}

fn hi() -> Payload {
    Payload::text("hi").unwrap()
}

fn delivered(outcome: &Dispatched) -> usize {
    match outcome {
        Dispatched::InLine(report) => report.delivered_count,
        other => panic!("not in-line: {other:?}"),
    }
}

fn queued(outcome: &Dispatched) -> usize {
    match outcome {
        Dispatched::Queued(enqueued) => enqueued.targets,
        other => panic!("not queued: {other:?}"),
    }
}

/// `queue_above = N`: the sender and N others in-line; N + 1 others queued. Without an
/// exclusion every member counts.
pub(crate) async fn queue_above_counts_the_room_without_the_excluded_connection(
    store: Arc<dyn ConnectionStore>,
) {
    let f = Fixture::new(store);
    let dispatch = f.queued_above(3);
    let me = member(0);
    f.fill(4).await;
    let outcome = dispatch.send(&f.room, &hi(), Some(&me)).await.unwrap();
    assert_eq!(delivered(&outcome), 3, "3 others are not above 3");
    assert!(f.sender.messages(&me).is_empty(), "not to the sender");
    assert_eq!(f.queue.len(), 0);

    let outcome = dispatch.send(&f.room, &hi(), None).await.unwrap();
    assert_eq!(queued(&outcome), 4, "4 members, none excluded, are above 3");

    f.fill(5).await;
    let outcome = dispatch.send(&f.room, &hi(), Some(&me)).await.unwrap();
    assert_eq!(queued(&outcome), 4, "4 others are above 3");
    assert_eq!(f.queue.len(), 2);
    assert_eq!(f.sender.total_delivered(), 3, "nothing more was posted");
}

/// `send_within(max)`: the sender and `max` others are sent to; `max + 1` others are withheld,
/// before the queue is considered.
pub(crate) async fn rooms_above_the_maximum_are_withheld(store: Arc<dyn ConnectionStore>) {
    let f = Fixture::new(store);
    let me = member(0);
    f.fill(3).await;
    let in_line = f.in_line();
    let outcome = in_line
        .send_within(&f.room, &hi(), Some(&me), Some(2))
        .await
        .unwrap();
    assert_eq!(delivered(&outcome), 2, "2 others are not above 2");

    f.fill(4).await;
    let outcome = in_line
        .send_within(&f.room, &hi(), Some(&me), Some(2))
        .await
        .unwrap();
    assert!(
        matches!(outcome, Dispatched::TooLarge { read } if read > 2),
        "3 others are above 2: {outcome:?}"
    );
    // Queued above 1, withheld above 2: the maximum wins.
    let outcome = f
        .queued_above(1)
        .send_within(&f.room, &hi(), Some(&me), Some(2))
        .await
        .unwrap();
    assert!(
        matches!(outcome, Dispatched::TooLarge { .. }),
        "{outcome:?}"
    );
    assert_eq!(f.queue.len(), 0);
    assert_eq!(f.sender.total_delivered(), 2, "nothing more was posted");

    let outcome = f
        .queued_above(1)
        .send_within(&f.room, &hi(), Some(&me), Some(3))
        .await
        .unwrap();
    assert_eq!(queued(&outcome), 3, "above 1, not above 3");
}

/// Without a queue, every room is sent to in-line, however large.
pub(crate) async fn without_a_queue_every_room_is_sent_in_line(store: Arc<dyn ConnectionStore>) {
    let f = Fixture::new(store);
    f.fill(7).await;
    let dispatch = f.in_line();
    assert_eq!(dispatch.queue_above(), None);
    let outcome = dispatch
        .send(&f.room, &hi(), Some(&member(6)))
        .await
        .unwrap();
    assert_eq!(delivered(&outcome), 6);
}

#[cfg(feature = "dynamodb")]
async fn ministack(test: &str) -> Option<Arc<dyn ConnectionStore>> {
    Some(Arc::new(
        common::ministack_store(test, "dispatch", 2).await?,
    ))
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod in_memory {
            $(#[tokio::test] async fn $name() {
                super::$name(std::sync::Arc::new(
                    stateless_ws::store::InMemoryStore::new().with_page_size(2),
                ))
                .await;
            })*
        }
        #[cfg(feature = "dynamodb")]
        mod on_ministack {
            $(#[tokio::test] async fn $name() {
                if let Some(store) =
                    super::ministack(concat!("dispatch::on_ministack::", stringify!($name))).await
                {
                    super::$name(store).await;
                }
            })*
        }
    };
}

on_both_stores!(
    queue_above_counts_the_room_without_the_excluded_connection,
    rooms_above_the_maximum_are_withheld,
    without_a_queue_every_room_is_sent_in_line,
);

/// An in-memory store with pages of 2 behind the instrumented wrapper; the `fail_page`-th page
/// read from now (1-based) fails.
fn read_store(fail_page: Option<u64>) -> Arc<InstrumentedStore> {
    let store = InstrumentedStore::new(Arc::new(InMemoryStore::new().with_page_size(2)));
    if let Some(n) = fail_page {
        store.fail_nth(StoreOp::RoomPage, n, move || Error::Store {
            backend: "test".into(),
            source: format!("page {n} is unreadable").into(),
        });
    }
    Arc::new(store)
}

/// Room pages read since the last call.
fn pages(store: &InstrumentedStore) -> usize {
    usize::try_from(store.take_counts().calls(StoreOp::RoomPage)).unwrap()
}

#[tokio::test]
async fn a_small_room_is_sent_from_the_records_read_and_a_large_one_read_only_to_the_limit() {
    let store = read_store(None);
    let f = Fixture::new(store.clone());
    f.fill(5).await;
    pages(&store);
    // 4 others in 3 pages of 2: read once, sent from what was read.
    let outcome = f
        .queued_above(4)
        .send(&f.room, &hi(), Some(&member(0)))
        .await
        .unwrap();
    assert_eq!(delivered(&outcome), 4);
    assert_eq!(pages(&store), 3, "one listing, not two");

    f.fill(10).await;
    pages(&store);
    // Above 2: the decision stops at the page where the third recipient shows (page 2); the
    // planner then reads the room's 5 pages.
    let outcome = f
        .queued_above(2)
        .send(&f.room, &hi(), Some(&member(0)))
        .await
        .unwrap();
    assert_eq!(queued(&outcome), 9);
    assert_eq!(pages(&store), 2 + 5);
}

#[tokio::test]
async fn queue_above_zero_queues_every_room_without_reading_it() {
    let store = read_store(None);
    let f = Fixture::new(store.clone());
    let dispatch = f.queued_above(0);
    let outcome = dispatch.send(&f.room, &hi(), None).await.unwrap();
    assert_eq!(queued(&outcome), 0, "an empty room too");
    assert_eq!(pages(&store), 1, "the planner's listing only");

    f.fill(3).await;
    pages(&store);
    let outcome = dispatch
        .send(&f.room, &hi(), Some(&member(0)))
        .await
        .unwrap();
    assert_eq!(queued(&outcome), 2);
    assert_eq!(pages(&store), 2, "the planner's listing only");
    assert_eq!(f.sender.total_delivered(), 0);
}

#[tokio::test]
async fn a_store_error_while_deciding_is_the_calls_error_and_nothing_is_sent() {
    // The second page (recipients 3 and 4) cannot be read.
    let store = read_store(Some(2));
    let f = Fixture::new(store.clone());
    f.fill(6).await;
    let result = f
        .queued_above(3)
        .send(&f.room, &hi(), Some(&member(0)))
        .await;
    assert!(matches!(result, Err(Error::Store { .. })), "{result:?}");
    assert_eq!(f.sender.total_delivered(), 0);
    assert_eq!(f.queue.len(), 0);

    // The same when only a maximum is to be checked.
    let store = read_store(Some(2));
    let f = Fixture::new(store.clone());
    f.fill(6).await;
    let result = f.in_line().send_within(&f.room, &hi(), None, Some(4)).await;
    assert!(matches!(result, Err(Error::Store { .. })), "{result:?}");
    assert_eq!(f.sender.total_delivered(), 0);
}

/// Issue 17, item 8: deciding that a room of 10,001 is above `max = 10` reads at most 11
/// records (12 with the excluded connection among them), not a backend page of 4,000.
#[tokio::test]
async fn a_maximum_reads_at_most_max_plus_one_records_whatever_the_page_size() {
    let store = InstrumentedStore::new(Arc::new(InMemoryStore::new()));
    let f = Fixture::new(Arc::new(store.clone()));
    for i in 0..10_001 {
        let record = Membership::new(member(i), f.room.clone());
        store.inner().join(&record).await.unwrap();
    }
    let outcome = f
        .in_line()
        .send_within(&f.room, &hi(), None, Some(10))
        .await
        .unwrap();
    assert!(
        matches!(outcome, Dispatched::TooLarge { read: 11 }),
        "{outcome:?}"
    );
    let counts = store.take_counts();
    assert!(
        counts.records(StoreOp::RoomPage) <= 11,
        "read {counts} to decide 10,001 > 10"
    );

    // Excluding the first member: 11 recipients are 12 records.
    let outcome = f
        .in_line()
        .send_within(&f.room, &hi(), Some(&member(0)), Some(10))
        .await
        .unwrap();
    assert!(
        matches!(outcome, Dispatched::TooLarge { read: 11 }),
        "{outcome:?}"
    );
    let counts = store.take_counts();
    assert!(counts.records(StoreOp::RoomPage) <= 12, "read {counts}");
    assert_eq!(f.sender.total_delivered(), 0);
}
