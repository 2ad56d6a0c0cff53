//! Streaming fan-out: `broadcast` reads the room page by page while the workers post.
//!
//! The store is the in-memory store behind `test_util::InstrumentedStore`, which counts (and can
//! slow down, hold or fail) page reads; a sender wrapper can hold every post until the test lets
//! go. Together they show that the first post leaves before the second page is read, that
//! reading runs at most a bounded distance ahead of posting, and that the report, exclusion and
//! Gone cleanup hold across pages.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use stateless_ws::broadcast::{
    BroadcastConfig, Broadcaster, ConnectionInfo, ConnectionSender, Payload, RecordingSender,
    Target,
};
use stateless_ws::store::{ConnectionStore, InMemoryStore, PageCursor};
use stateless_ws::test_util::{InstrumentedStore, StoreOp};
use stateless_ws::{ConnectionId, Error, Membership, RoomId};
use tokio::sync::{Notify, Semaphore};

fn id(i: usize) -> ConnectionId {
    ConnectionId::new(format!("c{i:05}=")).unwrap()
}

/// `members` connections in `room`, on an in-memory store with pages of `page_size`, behind
/// the instrumented wrapper.
async fn paged_store(page_size: usize, room: &RoomId, members: usize) -> InstrumentedStore {
    let inner = InMemoryStore::new().with_page_size(page_size);
    for i in 0..members {
        inner
            .join(&Membership::new(id(i), room.clone()))
            .await
            .unwrap();
    }
    InstrumentedStore::new(Arc::new(inner))
}

/// The error of a page that cannot be read.
fn unreadable() -> Error {
    Error::Store {
        backend: "test".into(),
        source: "page unreadable".into(),
    }
}

/// A sender whose posts wait for a permit, and which wakes a watcher on the first post.
#[derive(Debug)]
struct GatedSender {
    inner: RecordingSender,
    gate: Arc<Semaphore>,
    first_post: Arc<Notify>,
    posts: AtomicUsize,
}

impl GatedSender {
    fn new(open: bool) -> Self {
        Self {
            inner: RecordingSender::new(),
            gate: Arc::new(Semaphore::new(if open {
                Semaphore::MAX_PERMITS
            } else {
                0
            })),
            first_post: Arc::new(Notify::new()),
            posts: AtomicUsize::new(0),
        }
    }
}

impl std::fmt::Display for GatedSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatedSender")
    }
}

#[async_trait]
impl ConnectionSender for GatedSender {
    async fn post(&self, target: &Target, payload: &Payload) -> stateless_ws::Result<()> {
        if self.posts.fetch_add(1, Ordering::SeqCst) == 0 {
            self.first_post.notify_one();
        }
        let _permit = self.gate.acquire().await;
        self.inner.post(target, payload).await
    }
    async fn get(&self, target: &Target) -> stateless_ws::Result<ConnectionInfo> {
        self.inner.get(target).await
    }
    async fn delete(&self, target: &Target) -> stateless_ws::Result<()> {
        self.inner.delete(target).await
    }
}

#[tokio::test]
async fn the_first_post_leaves_before_the_second_page_is_read() {
    let room = RoomId::new("big").unwrap();
    let store = paged_store(100, &room, 1_000).await;
    // The first page read takes the one permit; the later ones wait for the gate to open.
    let hold = Arc::new(Semaphore::new(1));
    store.set_gate(StoreOp::RoomPage, Some(Arc::clone(&hold)));
    let sender = Arc::new(GatedSender::new(true));
    let b = Broadcaster::new(Arc::new(store.clone()), sender.clone());
    let first_post = Arc::clone(&sender.first_post);
    let watcher = {
        let store = store.clone();
        tokio::spawn(async move {
            // The second page read waits for `hold`: a broadcast that read the whole room
            // before posting would never post, and this times out.
            tokio::time::timeout(Duration::from_secs(10), first_post.notified())
                .await
                .expect("no post within 10 s while the second page was held: the room was read whole first");
            let pages = store.calls(StoreOp::RoomPage);
            // Later page reads are not held any more.
            hold.close();
            pages
        })
    };
    let report = b
        .broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .unwrap();
    let pages_at_first_post = watcher.await.unwrap();
    assert!(
        pages_at_first_post <= 2,
        "first post after {pages_at_first_post} page reads (the second may have begun, held)"
    );
    assert_eq!(report.delivered_count, 1_000, "{report}");
    assert!(report.is_success(), "{report}");
    assert_eq!(store.calls(StoreOp::RoomPage), 10, "10 pages of 100");
}

#[tokio::test]
async fn reading_runs_a_bounded_distance_ahead_of_posting() {
    let room = RoomId::new("huge").unwrap();
    let store = paged_store(100, &room, 20_000).await;
    // Every post waits: the workers take one target each and the reader fills the queue.
    let sender = Arc::new(GatedSender::new(false));
    let b = Broadcaster::new(Arc::new(store.clone()), sender.clone());
    let broadcast = tokio::spawn({
        let b = b.clone();
        let room = room.clone();
        async move { b.broadcast(&room, &Payload::text("x").unwrap(), None).await }
    });
    // Let the reader run as far as it can.
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = store.calls(StoreOp::RoomPage);
        if now == last {
            break;
        }
        last = now;
    }
    let held = BroadcastConfig::default().concurrency;
    // Queue (1024 targets at the default concurrency) + one per worker + the page in hand + the
    // one read ahead.
    let bound = ((1_024 + held) / 100 + 3) as u64;
    assert!(
        last <= bound,
        "{last} pages of 200 read while no post finished: reading is not bounded by posting (bound {bound})"
    );
    sender.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    let report = broadcast.await.unwrap().unwrap();
    assert_eq!(report.delivered_count, 20_000, "{report}");
    assert_eq!(sender.inner.total_delivered(), 20_000);
}

/// A sender whose posts wait until the store's `RoomPage` reads reach `reads` (at most 5 s; then
/// the post fails).
#[derive(Debug)]
struct WaitsForReads {
    inner: RecordingSender,
    store: InstrumentedStore,
    reads: u64,
}

impl std::fmt::Display for WaitsForReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WaitsForReads")
    }
}

#[async_trait]
impl ConnectionSender for WaitsForReads {
    async fn post(&self, target: &Target, payload: &Payload) -> stateless_ws::Result<()> {
        let started = std::time::Instant::now();
        while self.store.calls(StoreOp::RoomPage) < self.reads {
            if started.elapsed() > Duration::from_secs(5) {
                return Err(Error::Config {
                    message: "the next page was not being read while this one was posted".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.inner.post(target, payload).await
    }
    async fn get(&self, target: &Target) -> stateless_ws::Result<ConnectionInfo> {
        self.inner.get(target).await
    }
    async fn delete(&self, target: &Target) -> stateless_ws::Result<()> {
        self.inner.delete(target).await
    }
}

/// Read-ahead (issue 21): the next page is read while the one before it is posted. Pages of
/// 2,000 overflow the queue of targets (1,024), and posts wait until the second read has begun:
/// a broadcast that read the next page only once the last one was queued would wait for posts
/// that wait for it, and every post would fail after 5 s.
#[tokio::test]
async fn the_next_page_is_read_while_the_one_before_is_posted() {
    let room = RoomId::new("ahead").unwrap();
    let store = paged_store(2_000, &room, 5_000).await;
    let sender = Arc::new(WaitsForReads {
        inner: RecordingSender::new(),
        store: store.clone(),
        reads: 2,
    });
    let mut config = BroadcastConfig::default();
    config.first_page = 0; // a whole backend page first, to overflow the queue
    let b = Broadcaster::new(Arc::new(store.clone()), sender.clone()).with_config(config);
    let report = b
        .broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(report.delivered_count, 5_000, "{report}");
    assert!(report.is_success(), "{report}");
    assert_eq!(store.calls(StoreOp::RoomPage), 3, "3 pages of 2,000");
}

/// The first read is small (`first_page`, 100 records by default), whatever the backend's page:
/// the first post leaves after it; the reads after it take whole pages.
#[tokio::test]
async fn the_first_read_is_small_and_the_next_ones_whole_pages() {
    let room = RoomId::new("first").unwrap();
    let store = paged_store(1_000, &room, 2_500).await;
    let sender = Arc::new(GatedSender::new(true));
    let b = Broadcaster::new(Arc::new(store.clone()), sender.clone());
    let report = b
        .broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(report.delivered_count, 2_500, "{report}");
    // 100, then pages of 1,000: 100 + 1,000 + 1,000 + 400.
    assert_eq!(store.calls(StoreOp::RoomPage), 4);
    assert_eq!(store.counts().records(StoreOp::RoomPage), 2_500);
}

#[tokio::test]
async fn exclusion_gone_cleanup_and_the_report_hold_across_pages() {
    let room = RoomId::new("r").unwrap();
    let store = paged_store(7, &room, 50).await;
    // One of the gone connections is in another room too: cleanup removes all its records.
    store
        .inner()
        .join(&Membership::new(id(44), RoomId::new("other").unwrap()))
        .await
        .unwrap();
    let sender = RecordingSender::new();
    for i in [3, 21, 44] {
        sender.set_gone(&id(i));
    }
    let b = Broadcaster::new(Arc::new(store.clone()), Arc::new(sender.clone()))
        .with_config(crate::common::without_connect_grace());
    let exclude = id(30);
    let report = b
        .broadcast(&room, &Payload::text("x").unwrap(), Some(&exclude))
        .await
        .unwrap();
    assert_eq!(report.targets(), 49, "{report}");
    assert_eq!(report.delivered_count, 46, "{report}");
    assert_eq!(report.delivered.len(), 46, "listed by default");
    let mut gone = report.gone.clone();
    gone.sort();
    assert_eq!(gone, [id(3), id(21), id(44)]);
    assert_eq!(report.removed.len(), 4, "44's record in the other room too");
    assert!(
        sender.messages(&exclude).is_empty(),
        "the excluded sender got nothing"
    );
    for i in (0..50).filter(|i| ![3, 21, 30, 44].contains(i)) {
        assert_eq!(sender.messages(&id(i)).len(), 1, "one copy for {}", id(i));
    }
    assert_eq!(
        store.inner().room_connections(&room).await.unwrap().len(),
        47
    );
    assert!(report.is_success(), "{report}");
}

#[tokio::test]
async fn without_listing_deliveries_the_report_counts_them() {
    let room = RoomId::new("r").unwrap();
    let store = paged_store(10, &room, 95).await;
    let sender = RecordingSender::new();
    let mut config = BroadcastConfig::default();
    config.list_delivered = false;
    let b = Broadcaster::new(Arc::new(store), Arc::new(sender.clone())).with_config(config);
    let report = b
        .broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .unwrap();
    assert!(report.delivered.is_empty());
    assert_eq!(report.delivered_count, 95, "{report}");
    assert_eq!(report.targets(), 95);
    assert_eq!(sender.total_delivered(), 95);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_while_reading_leaves_a_cursor_to_resume_from() {
    let room = RoomId::new("r").unwrap();
    let store = paged_store(10, &room, 100).await;
    store.set_delay(StoreOp::RoomPage, Duration::from_millis(40));
    let sender = RecordingSender::new();
    let mut config = BroadcastConfig::default();
    config.cleanup_reserve = Duration::ZERO;
    let b = Broadcaster::new(Arc::new(store.clone()), Arc::new(sender.clone()))
        .with_config(config)
        .with_time_budget(Duration::from_millis(150));
    let report = b
        .broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .unwrap();
    // Pages take 40 ms each: the first three are read by 120 ms, the fourth is cut at 150.
    assert_eq!(report.delivered_count, 30, "{report}");
    assert!(report.not_attempted.is_empty(), "{report}");
    let cursor = report
        .unread_from
        .clone()
        .expect("the room was not read to its end");
    assert_eq!(cursor.last_evaluated(), &id(29));
    assert!(!report.is_success());
    // Resuming from the cursor reaches exactly the rest.
    let rest = store
        .inner()
        .room_page(&room, Some(&cursor), None)
        .await
        .unwrap();
    assert_eq!(
        rest.records.first().map(|m| m.connection_id.clone()),
        Some(id(30))
    );
    assert!(report.to_string().contains("not read past"), "{report}");
}

#[tokio::test]
async fn a_page_that_cannot_be_read_is_reported_with_what_was_sent() {
    let room = RoomId::new("r").unwrap();
    let store = paged_store(10, &room, 50).await;
    store.fail_nth(StoreOp::RoomPage, 3, unreadable);
    let sender = RecordingSender::new();
    let b = Broadcaster::new(Arc::new(store), Arc::new(sender.clone()));
    let report = b
        .broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .expect("the first pages were read: a report, not an error");
    assert_eq!(report.delivered_count, 20, "{report}");
    assert!(
        matches!(report.listing_error, Some(Error::Store { .. })),
        "{report}"
    );
    assert_eq!(
        report.unread_from.as_ref().map(PageCursor::last_evaluated),
        Some(&id(19))
    );
    assert!(!report.is_success());

    // A room whose first page cannot be read is the call's error: nothing was sent.
    let store = paged_store(10, &room, 5).await;
    store.fail_nth(StoreOp::RoomPage, 1, unreadable);
    let sender = RecordingSender::new();
    let b = Broadcaster::new(Arc::new(store), Arc::new(sender.clone()));
    let err = b
        .broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err}");
    assert_eq!(sender.total_delivered(), 0);
}
