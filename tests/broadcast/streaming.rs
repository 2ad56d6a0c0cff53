//! Streaming fan-out: `broadcast` reads the room page by page while the workers post.
//!
//! A store wrapper counts (and can slow down, gate or fail) page reads; a sender wrapper can
//! hold every post until the test lets go. Together they show that the first post leaves before
//! the second page is read, that reading runs at most a bounded distance ahead of posting, and
//! that the report, exclusion and Gone cleanup hold across pages.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use stateless_ws::broadcast::{
    BroadcastConfig, Broadcaster, ConnectionInfo, ConnectionSender, Payload, RecordingSender,
    Target,
};
use stateless_ws::store::{ConnectionStore, InMemoryStore, Page, PageCursor};
use stateless_ws::{ConnectionId, Error, Membership, RoomId, UserId};
use tokio::sync::{Notify, Semaphore};

fn id(i: usize) -> ConnectionId {
    ConnectionId::new(format!("c{i:05}=")).unwrap()
}

/// An in-memory store whose room pages can be slowed, held or failed, and are counted.
#[derive(Debug)]
struct PagedStore {
    inner: InMemoryStore,
    pages_read: AtomicUsize,
    delay: Duration,
    /// Page reads after the first wait for a permit of this.
    hold_after_first: Option<Arc<Semaphore>>,
    /// The n-th page read (1-based) fails.
    fail_page: Option<usize>,
}

impl PagedStore {
    fn new(page_size: usize) -> Self {
        Self {
            inner: InMemoryStore::new().with_page_size(page_size),
            pages_read: AtomicUsize::new(0),
            delay: Duration::ZERO,
            hold_after_first: None,
            fail_page: None,
        }
    }

    async fn fill(&self, room: &RoomId, members: usize) {
        for i in 0..members {
            self.inner
                .join(&Membership::new(id(i), room.clone()))
                .await
                .unwrap();
        }
    }

    fn pages(&self) -> usize {
        self.pages_read.load(Ordering::SeqCst)
    }
}

impl std::fmt::Display for PagedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PagedStore")
    }
}

#[async_trait]
impl ConnectionStore for PagedStore {
    async fn join(&self, c: &Membership) -> stateless_ws::Result<()> {
        self.inner.join(c).await
    }
    async fn leave(&self, c: &ConnectionId, r: &RoomId) -> stateless_ws::Result<()> {
        self.inner.leave(c, r).await
    }
    async fn remove_connections(
        &self,
        c: &[ConnectionId],
    ) -> stateless_ws::Result<Vec<Membership>> {
        self.inner.remove_connections(c).await
    }
    async fn room_page(
        &self,
        r: &RoomId,
        cursor: Option<&PageCursor>,
    ) -> stateless_ws::Result<Page> {
        let n = self.pages_read.fetch_add(1, Ordering::SeqCst) + 1;
        if n > 1
            && let Some(hold) = &self.hold_after_first
        {
            drop(hold.acquire().await);
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.fail_page == Some(n) {
            return Err(Error::Store {
                backend: "PagedStore".into(),
                source: format!("page {n} is unreadable").into(),
            });
        }
        self.inner.room_page(r, cursor).await
    }
    async fn user_connections(&self, u: &UserId) -> stateless_ws::Result<Vec<Membership>> {
        self.inner.user_connections(u).await
    }
    async fn connection_rooms(&self, c: &ConnectionId) -> stateless_ws::Result<Vec<Membership>> {
        self.inner.connection_rooms(c).await
    }
    async fn membership(
        &self,
        c: &ConnectionId,
        r: &RoomId,
    ) -> stateless_ws::Result<Option<Membership>> {
        self.inner.membership(c, r).await
    }
    async fn refresh(&self, c: &ConnectionId) -> stateless_ws::Result<usize> {
        self.inner.refresh(c).await
    }
    fn clock(&self) -> &std::sync::Arc<dyn stateless_ws::clock::Clock> {
        self.inner.clock()
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
    let mut store = PagedStore::new(100);
    let hold = Arc::new(Semaphore::new(0));
    store.hold_after_first = Some(Arc::clone(&hold));
    store.fill(&room, 1_000).await;
    let store = Arc::new(store);
    let sender = Arc::new(GatedSender::new(true));
    let b = Broadcaster::new(store.clone(), sender.clone());
    let first_post = Arc::clone(&sender.first_post);
    let watcher = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            // The second page read waits for `hold`: a broadcast that read the whole room
            // before posting would never post, and this times out.
            tokio::time::timeout(Duration::from_secs(10), first_post.notified())
                .await
                .expect("no post within 10 s while the second page was held: the room was read whole first");
            let pages = store.pages();
            // Later page reads are not held any more.
            hold.add_permits(Semaphore::MAX_PERMITS / 2);
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
    assert_eq!(store.pages(), 10, "10 pages of 100");
}

#[tokio::test]
async fn reading_runs_a_bounded_distance_ahead_of_posting() {
    let room = RoomId::new("huge").unwrap();
    let store = PagedStore::new(100);
    store.fill(&room, 20_000).await;
    let store = Arc::new(store);
    // Every post waits: the workers take one target each and the reader fills the queue.
    let sender = Arc::new(GatedSender::new(false));
    let b = Broadcaster::new(store.clone(), sender.clone());
    let broadcast = tokio::spawn({
        let b = b.clone();
        let room = room.clone();
        async move { b.broadcast(&room, &Payload::text("x").unwrap(), None).await }
    });
    // Let the reader run as far as it can.
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = store.pages();
        if now == last {
            break;
        }
        last = now;
    }
    let held = BroadcastConfig::default().concurrency;
    // Queue (1024 targets at the default concurrency) + one per worker + the page in hand.
    let bound = (1_024 + held) / 100 + 2;
    assert!(
        last <= bound,
        "{last} pages of 200 read while no post finished: reading is not bounded by posting (bound {bound})"
    );
    sender.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    let report = broadcast.await.unwrap().unwrap();
    assert_eq!(report.delivered_count, 20_000, "{report}");
    assert_eq!(sender.inner.total_delivered(), 20_000);
}

#[tokio::test]
async fn exclusion_gone_cleanup_and_the_report_hold_across_pages() {
    let room = RoomId::new("r").unwrap();
    let store = PagedStore::new(7);
    store.fill(&room, 50).await;
    // One of the gone connections is in another room too: cleanup removes all its records.
    store
        .inner
        .join(&Membership::new(id(44), RoomId::new("other").unwrap()))
        .await
        .unwrap();
    let store = Arc::new(store);
    let sender = RecordingSender::new();
    for i in [3, 21, 44] {
        sender.set_gone(&id(i));
    }
    let b = Broadcaster::new(store.clone(), Arc::new(sender.clone()))
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
    assert_eq!(
        report.cleaned_records, 4,
        "44's record in the other room too"
    );
    assert!(
        sender.messages(&exclude).is_empty(),
        "the excluded sender got nothing"
    );
    for i in (0..50).filter(|i| ![3, 21, 30, 44].contains(i)) {
        assert_eq!(sender.messages(&id(i)).len(), 1, "one copy for {}", id(i));
    }
    assert_eq!(store.inner.room_connections(&room).await.unwrap().len(), 47);
    assert!(report.is_success(), "{report}");
}

#[tokio::test]
async fn without_listing_deliveries_the_report_counts_them() {
    let room = RoomId::new("r").unwrap();
    let store = PagedStore::new(10);
    store.fill(&room, 95).await;
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
    let mut store = PagedStore::new(10);
    store.delay = Duration::from_millis(40);
    store.fill(&room, 100).await;
    let store = Arc::new(store);
    let sender = RecordingSender::new();
    let mut config = BroadcastConfig::default();
    config.cleanup_reserve = Duration::ZERO;
    let b = Broadcaster::new(store.clone(), Arc::new(sender.clone()))
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
    let rest = store.inner.room_page(&room, Some(&cursor)).await.unwrap();
    assert_eq!(
        rest.records.first().map(|m| m.connection_id.clone()),
        Some(id(30))
    );
    assert!(report.to_string().contains("not read past"), "{report}");
}

#[tokio::test]
async fn a_page_that_cannot_be_read_is_reported_with_what_was_sent() {
    let room = RoomId::new("r").unwrap();
    let mut store = PagedStore::new(10);
    store.fail_page = Some(3);
    store.fill(&room, 50).await;
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
    let mut store = PagedStore::new(10);
    store.fail_page = Some(1);
    store.fill(&room, 5).await;
    let sender = RecordingSender::new();
    let b = Broadcaster::new(Arc::new(store), Arc::new(sender.clone()));
    let err = b
        .broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err}");
    assert_eq!(sender.total_delivered(), 0);
}
