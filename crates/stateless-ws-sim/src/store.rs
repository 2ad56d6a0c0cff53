//! [`SimStore`]: DynamoDB's read and write costs around the real [`InMemoryStore`].
//!
//! Modelled (DynamoDB developer guide; FACTS.md):
//!
//! - **Pages of 1 MB**: a `Query` page holds at most 1 MB, so the rows per page follow from a
//!   record's size ([`StoreParams::record_bytes`], default 81 bytes: the ~12,900 rows MiniStack
//!   and DynamoDB return per page of this table's layout — PK, SK `room#<name>`, userId,
//!   managementEndpoint, connectedAt, ttl).
//! - **Read capacity**: an eventually consistent read costs ½ RCU per 4 KB, so a full page costs
//!   128 RCU. Every record of a room lives in one partition of the room GSI, and a partition
//!   serves at most 3,000 RCU/s: over that the read is throttled, and waits (as the SDK's
//!   retries with backoff would) until the partition has the capacity; each wait counts as a
//!   throttle.
//! - **Write capacity**: writes to a room's records (a join; the removal of a gone connection's
//!   record) cost 1 WCU per KB on the room's GSI partition, 1,000 WCU/s per partition.
//! - **Latency**: a page takes [`StoreParams::page_latency`] plus
//!   [`StoreParams::page_latency_per_mb`] per MB returned (assumed 5 ms + 20 ms/MB); other
//!   calls take [`StoreParams::op_latency`] (assumed 4 ms).
//!
//! Not modelled: adaptive capacity splitting a hot partition by sort key, on-demand table
//! limits, the base table's partitions (keyed by connection id, so spread out), strongly
//! consistent reads costing twice as much, and `BatchWriteItem`'s `UnprocessedItems`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use stateless_ws::clock::Clock;
use stateless_ws::store::{ConnectionStore, InMemoryStore, Page, PageCursor};
use stateless_ws::{ConnectionId, Membership, Result, RoomId, UserId};

use crate::bucket::TokenBucket;
use crate::clock::SimClock;

/// The largest `Query` page.
pub const PAGE_BYTES: usize = 1_048_576;

/// Parameters of the DynamoDB model.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreParams {
    /// Bytes of one record (default 81: ~12,900 per 1 MB page).
    pub record_bytes: usize,
    /// RCU per second of one partition (default 3,000).
    pub partition_rcu: u64,
    /// WCU per second of one partition (default 1,000).
    pub partition_wcu: u64,
    /// Fixed time of one `Query` page (default 5 ms).
    pub page_latency: Duration,
    /// Added time per MB of a page (default 20 ms).
    pub page_latency_per_mb: Duration,
    /// Time of any other call (default 4 ms).
    pub op_latency: Duration,
}

impl Default for StoreParams {
    fn default() -> Self {
        Self {
            record_bytes: 81,
            partition_rcu: 3_000,
            partition_wcu: 1_000,
            page_latency: Duration::from_millis(5),
            page_latency_per_mb: Duration::from_millis(20),
            op_latency: Duration::from_millis(4),
        }
    }
}

impl StoreParams {
    /// Records in one 1 MB page (at least 1).
    pub fn rows_per_page(&self) -> usize {
        (PAGE_BYTES / self.record_bytes.max(1)).max(1)
    }

    /// RCU of an eventually consistent read of `bytes`: ½ per started 4 KB, rounded up.
    pub fn read_units(bytes: usize) -> u64 {
        (bytes.div_ceil(4_096) as u64).div_ceil(2).max(1)
    }
}

/// What the store served, for the scenario's table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// `Query` pages read.
    pub pages: u64,
    /// Read capacity consumed.
    pub rcu: u64,
    /// Write capacity consumed.
    pub wcu: u64,
    /// Reads throttled by a partition's limit (each retry counted).
    pub read_throttles: u64,
    /// Writes throttled by a partition's limit.
    pub write_throttles: u64,
}

#[derive(Debug, Default)]
struct State {
    reads: HashMap<RoomId, TokenBucket>,
    writes: HashMap<RoomId, TokenBucket>,
    stats: StoreStats,
}

/// DynamoDB as a model: the real [`InMemoryStore`] behind page sizes, capacity limits per
/// partition and latency. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SimStore {
    inner: Arc<InMemoryStore>,
    params: StoreParams,
    state: Arc<Mutex<State>>,
}

impl SimStore {
    /// An empty store on a [`SimClock::fixed`] clock.
    pub fn new(params: StoreParams) -> Self {
        let inner = InMemoryStore::new()
            .with_page_size(params.rows_per_page())
            .with_clock(SimClock::fixed());
        Self {
            inner: Arc::new(inner),
            params,
            state: Arc::default(),
        }
    }

    /// The store without the model (to load a scenario's records at no simulated cost).
    pub fn inner(&self) -> &Arc<InMemoryStore> {
        &self.inner
    }

    /// The parameters.
    pub fn params(&self) -> &StoreParams {
        &self.params
    }

    /// The statistics so far.
    pub fn stats(&self) -> StoreStats {
        self.lock().stats
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `units` from the room partition's read (or write) bucket, waiting while it is
    /// throttled.
    async fn consume(&self, room: &RoomId, units: u64, write: bool) {
        loop {
            let wait = {
                let mut state = self.lock();
                let (rate, map) = if write {
                    (self.params.partition_wcu, &mut state.writes)
                } else {
                    (self.params.partition_rcu, &mut state.reads)
                };
                let bucket = map
                    .entry(room.clone())
                    .or_insert_with(|| TokenBucket::new(rate, rate));
                // A request larger than a second's capacity is let through once the bucket is
                // full (DynamoDB serves a 1 MB page whatever the partition's rate).
                let units = units.min(bucket.burst());
                match bucket.wait_for(units) {
                    Some(d) if d.is_zero() => {
                        bucket.try_take(units);
                        None
                    }
                    Some(d) => Some(d),
                    None => Some(Duration::from_secs(1)),
                }
            };
            let Some(wait) = wait else {
                return;
            };
            {
                let mut state = self.lock();
                if write {
                    state.stats.write_throttles += 1;
                } else {
                    state.stats.read_throttles += 1;
                }
            }
            // The throttled request's round trip, then the SDK's backoff until capacity is back.
            tokio::time::sleep(self.params.op_latency + wait).await;
        }
    }

    async fn write_units(&self, records: &[Membership]) {
        for record in records {
            self.consume(&record.room, 1, true).await;
            self.lock().stats.wcu += 1;
        }
    }
}

impl fmt::Display for SimStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SimStore(InMemoryStore)")
    }
}

#[async_trait]
impl ConnectionStore for SimStore {
    async fn join(&self, connection: &Membership) -> Result<()> {
        tokio::time::sleep(self.params.op_latency).await;
        self.write_units(std::slice::from_ref(connection)).await;
        self.inner.join(connection).await
    }

    async fn leave(&self, connection: &ConnectionId, room: &RoomId) -> Result<()> {
        tokio::time::sleep(self.params.op_latency).await;
        self.inner.leave(connection, room).await
    }

    async fn remove_connections(&self, connections: &[ConnectionId]) -> Result<Vec<Membership>> {
        tokio::time::sleep(self.params.op_latency).await;
        let removed = self.inner.remove_connections(connections).await?;
        self.write_units(&removed).await;
        Ok(removed)
    }

    async fn room_page(
        &self,
        room: &RoomId,
        cursor: Option<&PageCursor>,
        limit: Option<usize>,
    ) -> Result<Page> {
        let rows = limit.map_or(self.params.rows_per_page(), |n| {
            n.clamp(1, self.params.rows_per_page())
        });
        let mut page = self.inner.room_page(room, cursor, Some(rows)).await?;
        // DynamoDB stops at `Limit` (or at 1 MB) and returns a `LastEvaluatedKey` even when
        // nothing follows: a listing whose last page is exactly full makes one more, empty
        // request. The in-memory store knows there is nothing after it; DynamoDB does not.
        if page.next.is_none() && page.records.len() == rows {
            page.next = page
                .records
                .last()
                .map(|last| PageCursor::after(last.connection_id.clone()));
        }
        let bytes = page.records.len().max(1) * self.params.record_bytes;
        let units = StoreParams::read_units(bytes);
        self.consume(room, units, false).await;
        {
            let mut state = self.lock();
            state.stats.pages += 1;
            state.stats.rcu += units;
        }
        let transfer = self
            .params
            .page_latency_per_mb
            .mul_f64(bytes as f64 / PAGE_BYTES as f64);
        tokio::time::sleep(self.params.page_latency + transfer).await;
        Ok(page)
    }

    async fn user_connections(&self, user: &UserId) -> Result<Vec<Membership>> {
        tokio::time::sleep(self.params.op_latency).await;
        self.inner.user_connections(user).await
    }

    async fn connection_rooms(&self, connection: &ConnectionId) -> Result<Vec<Membership>> {
        tokio::time::sleep(self.params.op_latency).await;
        self.inner.connection_rooms(connection).await
    }

    async fn membership(
        &self,
        connection: &ConnectionId,
        room: &RoomId,
    ) -> Result<Option<Membership>> {
        tokio::time::sleep(self.params.op_latency).await;
        self.inner.membership(connection, room).await
    }

    async fn refresh(&self, connection: &ConnectionId) -> Result<usize> {
        tokio::time::sleep(self.params.op_latency).await;
        self.inner.refresh(connection).await
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        self.inner.clock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `members` connections in `room`, at no simulated cost.
    async fn load(store: &SimStore, room: &RoomId, members: usize) {
        for i in 0..members {
            let id = ConnectionId::new(format!("c{i:05}=")).unwrap();
            store
                .inner()
                .join(&Membership::new(id, room.clone()))
                .await
                .unwrap();
        }
    }

    #[test]
    fn a_full_page_is_128_rcu_and_12_900_rows() {
        let p = StoreParams::default();
        assert_eq!(p.rows_per_page(), 12_945);
        assert_eq!(StoreParams::read_units(PAGE_BYTES), 128);
        assert_eq!(StoreParams::read_units(100), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hot_room_partition_throttles_reads() {
        let params = StoreParams {
            record_bytes: 1_024,
            partition_rcu: 256,
            ..StoreParams::default()
        };
        let store = SimStore::new(params);
        let room = RoomId::new("hot").unwrap();
        load(&store, &room, 4_096).await;
        // 1,024 rows of 1 KB a page: 128 RCU a page, 256 RCU/s → 4 pages take ≥ 1 s. The
        // fourth is full, so DynamoDB asks for a fifth, empty one (½ unit, rounded up to 1).
        let start = tokio::time::Instant::now();
        let all = store.room_connections(&room).await.unwrap();
        assert_eq!(all.len(), 4_096);
        let stats = store.stats();
        assert_eq!((stats.pages, stats.rcu), (5, 513));
        assert!(stats.read_throttles >= 1);
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn an_exactly_full_last_page_costs_one_more_empty_request_as_on_dynamodb() {
        for (members, requests) in [(999, 2), (1_000, 3), (1_001, 3), (0, 1)] {
            let store = SimStore::new(StoreParams {
                record_bytes: PAGE_BYTES / 500,
                page_latency: Duration::ZERO,
                page_latency_per_mb: Duration::ZERO,
                ..StoreParams::default()
            });
            let room = RoomId::new("exact").unwrap();
            load(&store, &room, members).await;
            let all = store.room_connections(&room).await.unwrap();
            assert_eq!(all.len(), members);
            assert_eq!(store.stats().pages, requests, "{members} members");
        }
    }
}
