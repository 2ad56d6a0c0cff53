//! [`InMemoryStore`]: the routing table in a process's memory.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{ConnectionStore, DEFAULT_TTL, Page, PageCursor};
use crate::clock::unix_seconds;
use crate::clock::{Clock, SystemClock};
use crate::error::Result;
use crate::ids::{ConnectionId, RoomId, UserId};
use crate::store::Membership;

/// A [`ConnectionStore`] in memory: for tests, local development and the local gateway.
///
/// It is a real backend, not a mock: it upholds the whole [contract](ConnectionStore#contract)
/// and runs the same conformance suite as the DynamoDB store. It is safe to share between tasks
/// and threads (clone it, or wrap it in an `Arc`; clones share the table). Every operation is a
/// short critical section under one lock; listings of a room or user go through an index, so
/// they cost O(members), not O(table).
///
/// Expiry follows an injectable [`Clock`], so tests can move time; expired records are hidden
/// from listings at once and dropped when their connection is next written or removed.
///
/// ```
/// use stateless_ws::{Membership, ConnectionId, RoomId, UserId};
/// use stateless_ws::store::{ConnectionStore, ConnectionStoreExt, InMemoryStore};
///
/// # tokio_test_block_on(async {
/// let store = InMemoryStore::new();
/// let alice = ConnectionId::new("alice-conn=")?;
/// let lobby = RoomId::new("lobby")?;
/// store
///     .join(&Membership::new(alice.clone(), lobby.clone()).with_user(UserId::new("alice")?))
///     .await?;
/// assert_eq!(store.room_connections(&lobby).await?.len(), 1);
/// store.disconnect(&alice).await?;
/// assert!(store.room_connections(&lobby).await?.is_empty());
/// # Ok::<(), stateless_ws::Error>(())
/// # })?;
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// # Ok::<(), stateless_ws::Error>(())
/// ```
#[derive(Clone)]
pub struct InMemoryStore {
    inner: Arc<RwLock<Table>>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    page_size: usize,
}

/// Records per [`room_page`](ConnectionStore::room_page) of an [`InMemoryStore`] unless
/// [`with_page_size`](InMemoryStore::with_page_size) says otherwise: about what one 1 MB
/// DynamoDB page holds with this layout's records.
pub const DEFAULT_MEMORY_PAGE_SIZE: usize = 4_000;

#[derive(Default)]
struct Table {
    /// connection -> room -> record (the table's primary key).
    by_connection: HashMap<ConnectionId, HashMap<RoomId, Membership>>,
    /// room -> connections, ordered like the `roomId-index` (range key `connectionId`).
    by_room: HashMap<RoomId, BTreeSet<ConnectionId>>,
    /// user -> connections (the `userId-index`).
    by_user: HashMap<UserId, HashSet<ConnectionId>>,
}

impl Table {
    fn unindex(&mut self, record: &Membership) {
        if let Some(set) = self.by_room.get_mut(&record.room) {
            set.remove(&record.connection_id);
            if set.is_empty() {
                self.by_room.remove(&record.room);
            }
        }
        if let Some(user) = &record.user_id {
            // The connection stays in the user index while another of its records names the user.
            let still_used = self
                .by_connection
                .get(&record.connection_id)
                .is_some_and(|rooms| rooms.values().any(|r| r.user_id.as_ref() == Some(user)));
            if !still_used && let Some(set) = self.by_user.get_mut(user) {
                set.remove(&record.connection_id);
                if set.is_empty() {
                    self.by_user.remove(user);
                }
            }
        }
    }

    fn index(&mut self, record: &Membership) {
        self.by_room
            .entry(record.room.clone())
            .or_default()
            .insert(record.connection_id.clone());
        if let Some(user) = &record.user_id {
            self.by_user
                .entry(user.clone())
                .or_default()
                .insert(record.connection_id.clone());
        }
    }

    fn remove(&mut self, connection: &ConnectionId, room: &RoomId) -> Option<Membership> {
        let rooms = self.by_connection.get_mut(connection)?;
        let removed = rooms.remove(room)?;
        if rooms.is_empty() {
            self.by_connection.remove(connection);
        }
        self.unindex(&removed);
        Some(removed)
    }

    fn remove_connection(&mut self, connection: &ConnectionId) -> Vec<Membership> {
        let Some(rooms) = self.by_connection.remove(connection) else {
            return Vec::new();
        };
        let removed: Vec<Membership> = rooms.into_values().collect();
        for record in &removed {
            self.unindex(record);
        }
        removed
    }
}

impl InMemoryStore {
    /// An empty store on the system clock with the [default TTL](super::DEFAULT_TTL).
    pub fn new() -> Self {
        Self {
            inner: Arc::default(),
            clock: Arc::new(SystemClock),
            ttl: DEFAULT_TTL,
            page_size: DEFAULT_MEMORY_PAGE_SIZE,
        }
    }

    /// Sets how many records a [`room_page`](ConnectionStore::room_page) evaluates (default
    /// [`DEFAULT_MEMORY_PAGE_SIZE`]; at least 1). Like DynamoDB's `Limit`, expired records count
    /// towards it, so a page may hold fewer.
    #[must_use]
    pub fn with_page_size(mut self, records: usize) -> Self {
        self.page_size = records.max(1);
        self
    }

    /// Uses `clock` for "now" (expiry checks, TTLs).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets the TTL given to joined records that carry no expiry, and by
    /// [`refresh`](ConnectionStore::refresh).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Number of records held, expired ones included (for tests and metrics).
    pub fn len(&self) -> usize {
        self.read().by_connection.values().map(HashMap::len).sum()
    }

    /// Whether the store holds no record at all, expired ones included.
    pub fn is_empty(&self) -> bool {
        self.read().by_connection.is_empty()
    }

    fn read(&self) -> RwLockReadGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table half-written in a way that
        // matters more than losing the store entirely, so keep serving.
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> SystemTime {
        self.clock.now()
    }

    fn live<'a>(
        table: &'a Table,
        ids: impl IntoIterator<Item = &'a ConnectionId>,
        now: SystemTime,
        pick: impl Fn(&'a HashMap<RoomId, Membership>) -> Vec<&'a Membership>,
    ) -> Vec<Membership> {
        ids.into_iter()
            .filter_map(|id| table.by_connection.get(id))
            .flat_map(pick)
            .filter(|c| !c.is_expired_at(now))
            .cloned()
            .collect()
    }
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("records", &self.len())
            .field("ttl", &self.ttl)
            .field("clock", &self.clock)
            .finish()
    }
}

impl fmt::Display for InMemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InMemoryStore")
    }
}

#[async_trait]
impl ConnectionStore for InMemoryStore {
    async fn join(&self, connection: &Membership) -> Result<()> {
        let mut record = connection.clone();
        let now = unix_seconds(self.now());
        record.connected_at.get_or_insert(now);
        if record.expires_at.is_none() {
            record.expires_at = Some(now.saturating_add(self.ttl.as_secs()));
        }
        let mut table = self.write();
        table.remove(&record.connection_id, &record.room);
        table.index(&record);
        table
            .by_connection
            .entry(record.connection_id.clone())
            .or_default()
            .insert(record.room.clone(), record);
        Ok(())
    }

    async fn leave(&self, connection: &ConnectionId, room: &RoomId) -> Result<()> {
        self.write().remove(connection, room);
        Ok(())
    }

    async fn remove_connections(&self, connections: &[ConnectionId]) -> Result<Vec<Membership>> {
        let mut table = self.write();
        Ok(connections
            .iter()
            .flat_map(|id| table.remove_connection(id))
            .collect())
    }

    async fn room_page(
        &self,
        room: &RoomId,
        cursor: Option<&PageCursor>,
        limit: Option<usize>,
    ) -> Result<Page> {
        let page_size = limit.map_or(self.page_size, |n| n.clamp(1, self.page_size));
        let now = self.now();
        let table = self.read();
        let Some(ids) = table.by_room.get(room) else {
            return Ok(Page::default());
        };
        let range = match cursor {
            None => ids.range::<ConnectionId, _>(..),
            Some(c) => ids.range::<ConnectionId, _>((
                std::ops::Bound::Excluded(c.last_evaluated()),
                std::ops::Bound::Unbounded,
            )),
        };
        let mut evaluated: Vec<&ConnectionId> = range.take(page_size + 1).collect();
        let next = if evaluated.len() > page_size {
            evaluated.truncate(page_size);
            evaluated
                .last()
                .map(|last| PageCursor::after((*last).clone()))
        } else {
            None
        };
        let records = Self::live(&table, evaluated, now, |rooms| {
            rooms.get(room).into_iter().collect()
        });
        Ok(Page::new(records, next))
    }

    async fn user_connections(&self, user: &UserId) -> Result<Vec<Membership>> {
        let now = self.now();
        let table = self.read();
        let Some(ids) = table.by_user.get(user) else {
            return Ok(Vec::new());
        };
        // One record per connection: the first live record naming the user.
        Ok(Self::live(&table, ids, now, |rooms| {
            rooms
                .values()
                .filter(|c| c.user_id.as_ref() == Some(user) && !c.is_expired_at(now))
                .take(1)
                .collect()
        }))
    }

    async fn connection_rooms(&self, connection: &ConnectionId) -> Result<Vec<Membership>> {
        let now = self.now();
        let table = self.read();
        Ok(Self::live(&table, [connection], now, |rooms| {
            rooms.values().collect()
        }))
    }

    async fn membership(
        &self,
        connection: &ConnectionId,
        room: &RoomId,
    ) -> Result<Option<Membership>> {
        let now = self.now();
        Ok(self
            .read()
            .by_connection
            .get(connection)
            .and_then(|rooms| rooms.get(room))
            .filter(|c| !c.is_expired_at(now))
            .cloned())
    }

    async fn refresh(&self, connection: &ConnectionId) -> Result<usize> {
        let now = self.now();
        let horizon = unix_seconds(now).saturating_add(self.ttl.as_secs());
        let mut table = self.write();
        let Some(rooms) = table.by_connection.get_mut(connection) else {
            return Ok(0);
        };
        let mut refreshed = 0;
        for record in rooms.values_mut().filter(|c| !c.is_expired_at(now)) {
            record.expires_at = Some(horizon);
            refreshed += 1;
        }
        Ok(refreshed)
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::conformance;

    #[tokio::test]
    async fn conformance_direct() {
        conformance::run_all(&InMemoryStore::new()).await;
    }

    #[tokio::test]
    async fn conformance_through_arc_dyn() {
        let store: Arc<dyn ConnectionStore> = Arc::new(InMemoryStore::new());
        conformance::run_all(&store).await;
        conformance::run_all(store.as_ref()).await;
    }

    #[tokio::test]
    async fn conformance_with_small_pages() {
        // 7 records per page: rooms cross many pages, some pages hold only expired records.
        conformance::run_all(&InMemoryStore::new().with_page_size(7)).await;
        conformance::run_all(&InMemoryStore::new().with_page_size(1)).await;
    }

    #[tokio::test]
    async fn a_page_ends_where_its_cursor_says() {
        let store = InMemoryStore::new().with_page_size(2);
        let room = RoomId::new("r").unwrap();
        for id in ["c=", "a=", "b="] {
            store
                .join(&Membership::new(
                    ConnectionId::new(id).unwrap(),
                    room.clone(),
                ))
                .await
                .unwrap();
        }
        let first = store.room_page(&room, None, None).await.unwrap();
        let names: Vec<&str> = first
            .records
            .iter()
            .map(|m| m.connection_id.as_str())
            .collect();
        assert_eq!(names, ["a=", "b="]);
        let next = first.next.expect("a third record follows");
        assert_eq!(next.last_evaluated().as_str(), "b=");
        let second = store.room_page(&room, Some(&next), None).await.unwrap();
        assert_eq!(second.records.len(), 1);
        assert_eq!(second.next, None, "nothing follows: no cursor");
    }

    #[tokio::test]
    async fn conformance_on_a_manual_clock() {
        let clock = ManualClock::new(SystemTime::now());
        conformance::run_all(&InMemoryStore::new().with_clock(clock)).await;
    }

    #[tokio::test]
    async fn expiry_follows_the_injected_clock() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
        let store = InMemoryStore::new()
            .with_clock(clock.clone())
            .with_ttl(Duration::from_secs(60));
        let c = ConnectionId::new("c").unwrap();
        let room = RoomId::new("r").unwrap();
        store
            .join(&Membership::new(c.clone(), room.clone()))
            .await
            .unwrap();
        assert_eq!(
            store.room_connections(&room).await.unwrap()[0].expires_at,
            Some(1_060)
        );

        clock.advance(Duration::from_secs(59));
        assert_eq!(store.refresh(&c).await.unwrap(), 1);
        clock.advance(Duration::from_secs(59));
        assert_eq!(
            store.room_connections(&room).await.unwrap().len(),
            1,
            "refresh extended it"
        );
        clock.advance(Duration::from_secs(1));
        assert!(
            store.room_connections(&room).await.unwrap().is_empty(),
            "expired at 1_119"
        );
        assert_eq!(
            store.refresh(&c).await.unwrap(),
            0,
            "expired records are not revived"
        );
        assert_eq!(store.len(), 1, "still held until removed");
        assert_eq!(store.remove_connections(&[c]).await.unwrap().len(), 1);
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn indexes_follow_overwrites_that_change_the_user() {
        let store = InMemoryStore::new();
        let c = ConnectionId::new("c").unwrap();
        let (a, b) = (UserId::new("a").unwrap(), UserId::new("b").unwrap());
        let r1 = RoomId::new("r1").unwrap();
        let r2 = RoomId::new("r2").unwrap();
        store
            .join(&Membership::new(c.clone(), r1.clone()).with_user(a.clone()))
            .await
            .unwrap();
        store
            .join(&Membership::new(c.clone(), r2.clone()).with_user(a.clone()))
            .await
            .unwrap();
        store
            .join(&Membership::new(c.clone(), r1.clone()).with_user(b.clone()))
            .await
            .unwrap();
        assert_eq!(
            store.user_connections(&a).await.unwrap().len(),
            1,
            "r2 still names a"
        );
        assert_eq!(store.user_connections(&b).await.unwrap().len(), 1);
        store.leave(&c, &r2).await.unwrap();
        assert!(store.user_connections(&a).await.unwrap().is_empty());
        let t = store.read();
        assert!(
            !t.by_user.contains_key(&a),
            "empty index entries are dropped"
        );
        assert!(!t.by_room.contains_key(&r2));
    }
}
