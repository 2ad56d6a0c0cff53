//! [`InstrumentedStore`]: a [`ConnectionStore`] wrapper that counts calls and injects faults,
//! latency, held calls and smaller room pages.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::counts::{OPS, StoreCounts, StoreOp};
use crate::error::{Error, Result};
use crate::ids::{ConnectionId, RoomId, UserId};
use crate::store::{ConnectionStore, Membership, Page, PageCursor};

type MakeError = Arc<dyn Fn() -> Error + Send + Sync>;

enum When {
    /// The next calls, this many more.
    Next(u32),
    Every,
    /// The call with this number (1-based, over the store's life).
    Call(u64),
}

struct Fault {
    when: When,
    error: MakeError,
}

#[derive(Default)]
struct OpState {
    /// Since the last `take_counts`.
    calls: u64,
    records: u64,
    /// Over the store's life: the numbering `fail_nth` counts in.
    seen: u64,
    delay: Duration,
    gate: Option<Arc<Semaphore>>,
    faults: Vec<Fault>,
}

impl OpState {
    /// The fault that fails call number `call`, using it up.
    fn fault_for(&mut self, call: u64) -> Option<MakeError> {
        let i = self.faults.iter().position(|f| match f.when {
            When::Next(left) => left > 0,
            When::Every => true,
            When::Call(n) => n == call,
        })?;
        let error = Arc::clone(&self.faults[i].error);
        let used_up = match &mut self.faults[i].when {
            When::Next(left) if *left > 1 => {
                *left -= 1;
                false
            }
            When::Next(_) | When::Call(_) => true,
            When::Every => false,
        };
        if used_up {
            self.faults.remove(i);
        }
        Some(error)
    }
}

#[derive(Default)]
struct State {
    ops: [OpState; OPS],
    page_size: Option<usize>,
}

/// A [`ConnectionStore`] around another one that counts every call and, when told, makes chosen
/// operations fail, wait, or return smaller room pages. Clones share the inner store, the
/// counts and the switches: keep one and hand another (in an `Arc`) to the code under test.
///
/// Each call of an operation, in this order: is counted; waits for a permit of the operation's
/// [gate](Self::set_gate), if any; sleeps the operation's [delay](Self::set_delay), if any
/// (`tokio::time`, so a paused test clock skips it); fails if a fault applies to it, without
/// reaching the inner store; otherwise calls the inner store, cuts a room page to the
/// [page size](Self::set_page_size) and counts the records returned.
///
/// [`room_connections`](ConnectionStore::room_connections) reads the room through this store's
/// own [`room_page`](ConnectionStore::room_page), so page faults, delays, gates and the page
/// size apply to each of its pages, and the inner store's `room_connections` is not called.
/// Every other operation calls the same operation of the inner store.
///
/// `Display` names the inner store by its own `Display`: `Instrumented(InMemoryStore)`,
/// `Instrumented(DynamoDbStore(ws-connections))`. Its [`clock`](ConnectionStore::clock) is the
/// inner store's.
///
/// ```
/// use std::sync::Arc;
/// use stateless_ws::broadcast::{Broadcaster, Payload, RecordingSender};
/// use stateless_ws::store::{ConnectionStore, InMemoryStore};
/// use stateless_ws::test_util::{InstrumentedStore, StoreOp};
/// use stateless_ws::{ConnectionId, Error, Membership, RoomId};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let store = InstrumentedStore::new(Arc::new(InMemoryStore::new().with_page_size(2)));
/// assert_eq!(store.to_string(), "Instrumented(InMemoryStore)");
/// let room = RoomId::new("lobby")?;
///
/// // The next join is throttled; the one after goes through.
/// store.fail_next(StoreOp::Join, 1, || Error::Throttled {
///     backend: "test".into(),
///     source: "injected".into(),
/// });
/// let first = Membership::new(ConnectionId::new("c1=")?, room.clone());
/// assert!(matches!(store.join(&first).await, Err(Error::Throttled { .. })));
/// store.join(&first).await?;
/// for c in ["c2=", "c3="] {
///     store.join(&Membership::new(ConnectionId::new(c)?, room.clone())).await?;
/// }
///
/// // A broadcast reads the room in two pages of 2 and checks nothing else.
/// store.take_counts();
/// let broadcaster = Broadcaster::new(Arc::new(store.clone()), Arc::new(RecordingSender::new()));
/// let report = broadcaster.broadcast(&room, &Payload::text("hi")?, None).await?;
/// assert_eq!(report.delivered_count, 3);
/// let counts = store.take_counts();
/// assert_eq!(counts.calls(StoreOp::RoomPage), 2);
/// assert_eq!(counts.records(StoreOp::RoomPage), 3);
/// assert_eq!(counts.total_calls(), 2, "{counts}");
///
/// // The second page of the next listing cannot be read.
/// store.fail_nth(StoreOp::RoomPage, 2, || Error::Store {
///     backend: "test".into(),
///     source: "page lost".into(),
/// });
/// assert!(store.room_connections(&room).await.is_err());
/// assert_eq!(store.room_connections(&room).await?.len(), 3);
/// # Ok::<(), Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct InstrumentedStore {
    inner: Arc<dyn ConnectionStore>,
    state: Arc<Mutex<State>>,
}

impl InstrumentedStore {
    /// Wraps `inner`, counting from zero, with no faults, delays, gates or page size.
    pub fn new(inner: Arc<dyn ConnectionStore>) -> Self {
        Self {
            inner,
            state: Arc::default(),
        }
    }

    /// The wrapped store: to set up or inspect the table without counting or faults.
    pub fn inner(&self) -> &Arc<dyn ConnectionStore> {
        &self.inner
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls of `op` counted so far (since the last [`take_counts`](Self::take_counts)).
    pub fn calls(&self, op: StoreOp) -> u64 {
        self.lock().ops[op.index()].calls
    }

    /// The calls and records counted so far (since the last [`take_counts`](Self::take_counts)).
    pub fn counts(&self) -> StoreCounts {
        let state = self.lock();
        let mut counts = StoreCounts::default();
        for (i, op) in state.ops.iter().enumerate() {
            counts.calls[i] = op.calls;
            counts.records[i] = op.records;
        }
        counts
    }

    /// The calls and records counted so far, and starts counting again from zero (faults set
    /// with [`fail_nth`](Self::fail_nth) keep their place).
    pub fn take_counts(&self) -> StoreCounts {
        let mut state = self.lock();
        let mut counts = StoreCounts::default();
        for (i, op) in state.ops.iter_mut().enumerate() {
            counts.calls[i] = std::mem::take(&mut op.calls);
            counts.records[i] = std::mem::take(&mut op.records);
        }
        counts
    }

    fn add_fault(&self, op: StoreOp, when: When, error: MakeError) {
        let mut state = self.lock();
        let op = &mut state.ops[op.index()];
        let when = match when {
            When::Call(n) => When::Call(op.seen + n.max(1)),
            other => other,
        };
        op.faults.push(Fault { when, error });
    }

    /// Makes the next `times` calls of `op` fail with the error `error` makes (one per call).
    ///
    /// Faults are checked in the order they were set; the first that applies to a call fails it
    /// and is used up by it.
    pub fn fail_next(
        &self,
        op: StoreOp,
        times: u32,
        error: impl Fn() -> Error + Send + Sync + 'static,
    ) {
        if times > 0 {
            self.add_fault(op, When::Next(times), Arc::new(error));
        }
    }

    /// Makes every call of `op` fail with the error `error` makes, until
    /// [`clear_faults`](Self::clear_faults).
    pub fn fail_every(&self, op: StoreOp, error: impl Fn() -> Error + Send + Sync + 'static) {
        self.add_fault(op, When::Every, Arc::new(error));
    }

    /// Makes the `n`-th call of `op` from now fail (1: the next one; 0 counts as 1), and no other.
    /// With [`StoreOp::RoomPage`], a given page of a listing: `fail_nth(StoreOp::RoomPage, 3, …)`
    /// before a broadcast fails its third page read.
    pub fn fail_nth(&self, op: StoreOp, n: u64, error: impl Fn() -> Error + Send + Sync + 'static) {
        self.add_fault(op, When::Call(n), Arc::new(error));
    }

    /// Removes every fault not used up yet.
    pub fn clear_faults(&self) {
        for op in &mut self.lock().ops {
            op.faults.clear();
        }
    }

    /// Makes each call of `op` wait `delay` first (`Duration::ZERO`, the default, for none). With
    /// [`StoreOp::RoomPage`] the delay is per page.
    pub fn set_delay(&self, op: StoreOp, delay: Duration) {
        self.lock().ops[op.index()].delay = delay;
    }

    /// Makes each call of `op` first take a permit of `gate` for good (`None`, the default, for
    /// no gate): a gate with `n` permits lets `n` calls through and holds the next ones until the
    /// test adds permits; closing it lets every call through. The call is counted before it
    /// waits, so a test can see it held.
    pub fn set_gate(&self, op: StoreOp, gate: Option<Arc<Semaphore>>) {
        self.lock().ops[op.index()].gate = gate;
    }

    /// Cuts room pages to at most `records` (at least 1; `None`, the default, leaves them as the
    /// inner store returns them). A longer page loses its tail and its `next` points after the
    /// last record kept, so the next page starts there (the cursor means the same on every
    /// backend). The inner store still reads whole pages of its own: this exercises callers'
    /// paging on a few records (a DynamoDB page is about 12,900 of them), not the backend's.
    pub fn set_page_size(&self, records: Option<usize>) {
        self.lock().page_size = records.map(|n| n.max(1));
    }

    /// Counts a call of `op`, then waits, sleeps or fails it as told.
    async fn enter(&self, op: StoreOp) -> Result<()> {
        let (gate, delay, fault) = {
            let mut state = self.lock();
            let op = &mut state.ops[op.index()];
            op.calls += 1;
            op.seen += 1;
            let call = op.seen;
            (op.gate.clone(), op.delay, op.fault_for(call))
        };
        if let Some(gate) = gate
            && let Ok(permit) = gate.acquire().await
        {
            permit.forget();
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match fault {
            Some(error) => Err(error()),
            None => Ok(()),
        }
    }

    fn returned(&self, op: StoreOp, records: usize) {
        self.lock().ops[op.index()].records += records as u64;
    }
}

impl fmt::Debug for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedStore")
            .field("inner", &self.inner)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({})", self.inner)
    }
}

#[async_trait]
impl ConnectionStore for InstrumentedStore {
    async fn join(&self, connection: &Membership) -> Result<()> {
        self.enter(StoreOp::Join).await?;
        self.inner.join(connection).await
    }

    async fn leave(&self, connection: &ConnectionId, room: &RoomId) -> Result<()> {
        self.enter(StoreOp::Leave).await?;
        self.inner.leave(connection, room).await
    }

    async fn remove_connections(&self, connections: &[ConnectionId]) -> Result<Vec<Membership>> {
        self.enter(StoreOp::RemoveConnections).await?;
        let removed = self.inner.remove_connections(connections).await?;
        self.returned(StoreOp::RemoveConnections, removed.len());
        Ok(removed)
    }

    async fn room_page(
        &self,
        room: &RoomId,
        cursor: Option<&PageCursor>,
        limit: Option<usize>,
    ) -> Result<Page> {
        self.enter(StoreOp::RoomPage).await?;
        let mut page = self.inner.room_page(room, cursor, limit).await?;
        let page_size = self.lock().page_size;
        if let Some(max) = page_size
            && page.records.len() > max
        {
            page.records.truncate(max);
            page.next = page
                .records
                .last()
                .map(|last| PageCursor::after(last.connection_id.clone()));
        }
        self.returned(StoreOp::RoomPage, page.records.len());
        Ok(page)
    }

    async fn room_connections(&self, room: &RoomId) -> Result<Vec<Membership>> {
        self.enter(StoreOp::RoomConnections).await?;
        let mut records = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.room_page(room, cursor.as_ref(), None).await?;
            records.extend(page.records);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        self.returned(StoreOp::RoomConnections, records.len());
        Ok(records)
    }

    async fn user_connections(&self, user: &UserId) -> Result<Vec<Membership>> {
        self.enter(StoreOp::UserConnections).await?;
        let records = self.inner.user_connections(user).await?;
        self.returned(StoreOp::UserConnections, records.len());
        Ok(records)
    }

    async fn connection_rooms(&self, connection: &ConnectionId) -> Result<Vec<Membership>> {
        self.enter(StoreOp::ConnectionRooms).await?;
        let records = self.inner.connection_rooms(connection).await?;
        self.returned(StoreOp::ConnectionRooms, records.len());
        Ok(records)
    }

    async fn membership(
        &self,
        connection: &ConnectionId,
        room: &RoomId,
    ) -> Result<Option<Membership>> {
        self.enter(StoreOp::Membership).await?;
        let record = self.inner.membership(connection, room).await?;
        self.returned(StoreOp::Membership, usize::from(record.is_some()));
        Ok(record)
    }

    async fn refresh(&self, connection: &ConnectionId) -> Result<usize> {
        self.enter(StoreOp::Refresh).await?;
        let refreshed = self.inner.refresh(connection).await?;
        self.returned(StoreOp::Refresh, refreshed);
        Ok(refreshed)
    }

    fn clock(&self) -> &Arc<dyn crate::clock::Clock> {
        self.inner.clock()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::{ConnectionStoreExt, InMemoryStore};

    fn throttled() -> Error {
        Error::Throttled {
            backend: "test".into(),
            source: "injected".into(),
        }
    }

    fn c(i: usize) -> ConnectionId {
        ConnectionId::new(format!("c{i:03}=")).unwrap()
    }

    async fn filled(members: usize) -> (InstrumentedStore, RoomId) {
        let room = RoomId::new("r").unwrap();
        let store = InstrumentedStore::new(Arc::new(InMemoryStore::new()));
        for i in 0..members {
            store
                .inner()
                .join(&Membership::new(c(i), room.clone()))
                .await
                .unwrap();
        }
        (store, room)
    }

    #[tokio::test]
    async fn counts_calls_and_records_per_operation() {
        let (store, room) = filled(3).await;
        assert_eq!(
            store.counts(),
            StoreCounts::default(),
            "inner() is not counted"
        );
        assert_eq!(store.counts().to_string(), "no calls");
        store.is_member(&c(0), &room).await.unwrap();
        store.is_member(&c(9), &room).await.unwrap();
        store.rooms_of(&c(1)).await.unwrap();
        store.disconnect(&c(2)).await.unwrap();
        assert_eq!(store.calls(StoreOp::Membership), 2);
        let counts = store.take_counts();
        assert_eq!(counts.records(StoreOp::Membership), 1, "one of two found");
        assert_eq!(counts.records(StoreOp::ConnectionRooms), 1);
        assert_eq!(counts.records(StoreOp::RemoveConnections), 1);
        assert_eq!(counts.total_calls(), 4);
        assert_eq!(
            counts.to_string(),
            "remove_connections 1 (1 record), connection_rooms 1 (1 record), membership 2 (1 record)"
        );
        assert_eq!(store.counts().total_calls(), 0, "taken");
    }

    #[tokio::test]
    async fn faults_fail_the_calls_they_name_in_the_order_set() {
        let (store, room) = filled(1).await;
        store.fail_next(StoreOp::Membership, 2, throttled);
        store.fail_nth(StoreOp::Membership, 4, || Error::Config {
            message: "fourth".into(),
        });
        let results: Vec<_> = futures_util::future::join_all(
            (0..5).map(|_| async { store.membership(&c(0), &room).await }),
        )
        .await;
        let kinds: Vec<&str> = results
            .iter()
            .map(|r| match r {
                Ok(Some(_)) => "ok",
                Err(Error::Throttled { .. }) => "throttled",
                Err(Error::Config { .. }) => "config",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["throttled", "throttled", "ok", "config", "ok"]);
        assert_eq!(store.calls(StoreOp::Membership), 5, "failed calls count");
        assert_eq!(
            store.counts().records(StoreOp::Membership),
            2,
            "failed calls return nothing"
        );

        store.fail_every(StoreOp::Join, throttled);
        for _ in 0..3 {
            assert!(
                store
                    .join(&Membership::new(c(5), room.clone()))
                    .await
                    .is_err()
            );
        }
        assert!(
            store
                .inner()
                .membership(&c(5), &room)
                .await
                .unwrap()
                .is_none()
        );
        store.clear_faults();
        store
            .join(&Membership::new(c(5), room.clone()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_smaller_page_size_pages_the_whole_room_once() {
        let (store, room) = filled(10).await;
        store.set_page_size(Some(3));
        let first = store.room_page(&room, None, None).await.unwrap();
        assert_eq!(first.records.len(), 3);
        assert_eq!(first.next, Some(PageCursor::after(c(2))));
        let mut all = store.room_connections(&room).await.unwrap();
        all.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
        let ids: Vec<_> = all.into_iter().map(|m| m.connection_id).collect();
        assert_eq!(ids, (0..10).map(c).collect::<Vec<_>>());
        let counts = store.counts();
        assert_eq!(counts.calls(StoreOp::RoomConnections), 1);
        assert_eq!(counts.calls(StoreOp::RoomPage), 1 + 4, "{counts}");
        assert_eq!(counts.records(StoreOp::RoomConnections), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn delays_and_gates_hold_calls() {
        let (store, room) = filled(2).await;
        store.set_delay(StoreOp::RoomPage, Duration::from_millis(40));
        let start = tokio::time::Instant::now();
        store.room_connections(&room).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(40));

        let gate = Arc::new(Semaphore::new(1));
        store.set_gate(StoreOp::Leave, Some(Arc::clone(&gate)));
        store.leave(&c(0), &room).await.unwrap();
        let held = tokio::spawn({
            let store = store.clone();
            let room = room.clone();
            async move { store.leave(&c(1), &room).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!held.is_finished(), "the second call waits for a permit");
        assert_eq!(store.calls(StoreOp::Leave), 2, "counted while held");
        gate.add_permits(1);
        held.await.unwrap().unwrap();
    }

    #[test]
    fn display_names_the_inner_store() {
        let store = InstrumentedStore::new(Arc::new(InMemoryStore::new()));
        assert_eq!(store.to_string(), "Instrumented(InMemoryStore)");
        let nested = InstrumentedStore::new(Arc::new(store.clone()));
        assert_eq!(
            nested.to_string(),
            "Instrumented(Instrumented(InMemoryStore))"
        );
        assert!(format!("{store:?}").starts_with("InstrumentedStore { inner: InMemoryStore"));
        let dyn_store: Arc<dyn ConnectionStore> = Arc::new(store);
        assert_eq!(
            format!("{dyn_store:?}").split(' ').next(),
            Some("InstrumentedStore")
        );
    }
}
