//! The seams of scenario (c), the reconnect storm ([`crate::storm`]), that the fan-out
//! scenarios did not need:
//!
//! - [`LambdaAccount`] and [`SyncFunction`]: Lambda invoked **synchronously** (API Gateway's
//!   `$connect` and message routes), where a full account is a throttle (the invocation is
//!   refused at once, API Gateway fails the request) rather than a poller that waits, as the SQS
//!   [`EventSourceMapping`](crate::lambda::EventSourceMapping) does. One account concurrency
//!   limit is shared by every function; each function keeps its own warm instances, each with
//!   its own [`SimCore`].
//! - [`StormSender`]: a [`SimSender`] that knows which connections are open. API Gateway opens a
//!   connection only once its `$connect` returned, and a post to it before that answers 410
//!   (FACTS.md; the `presence` module's docs): during a storm, presence posts meet many
//!   connections still in their `$connect`. It also keeps the figures of each kind of post
//!   (presence, resume) apart, with their latency from the event that caused them.
//! - [`MeteredStore`]: the [`SimStore`] with the reads it does not charge counted — `GetItem`
//!   (`membership`) and the user index's `Query` (`user_connections`).

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use stateless_ws::broadcast::{ConnectionInfo, ConnectionSender, Payload, Target};
use stateless_ws::clock::Clock;
use stateless_ws::store::{ConnectionStore, Page, PageCursor};
use stateless_ws::{ConnectionId, Error, Membership, Result, RoomId, UserId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::core::SimCore;
use crate::histogram::Histogram;
use crate::sender::SimSender;
use crate::store::SimStore;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The account's Lambda concurrency in a region, shared by every function.
#[derive(Debug)]
pub struct LambdaAccount {
    permits: Arc<Semaphore>,
    limit: usize,
    state: Mutex<(usize, usize)>,
    _held: Option<OwnedSemaphorePermit>,
}

impl LambdaAccount {
    /// An account with `limit` concurrent executions, `others` of them taken for the whole run
    /// by the account's other functions.
    pub fn new(limit: usize, others: usize) -> Arc<Self> {
        let permits = Arc::new(Semaphore::new(limit));
        let taken = u32::try_from(others.min(limit)).unwrap_or(u32::MAX);
        let held = if taken > 0 {
            Arc::clone(&permits).try_acquire_many_owned(taken).ok()
        } else {
            None
        };
        Arc::new(Self {
            permits,
            limit,
            state: Mutex::new((0, 0)),
            _held: held,
        })
    }

    /// The concurrency limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Executions of this run's functions at once, at most (the others' not counted).
    pub fn peak(&self) -> usize {
        lock(&self.state).1
    }
}

/// What a [`SyncFunction`] did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct FunctionStats {
    /// Invocations run.
    pub invocations: u64,
    /// Invocations refused because the account was at its concurrency limit.
    pub throttles: u64,
    /// Instances started.
    pub cold_starts: u64,
    /// Executions at once, at most.
    pub peak: usize,
    /// Billed duration, summed (cold starts included).
    pub billed: Duration,
    /// Invocation duration, cold start included.
    pub duration: Histogram,
}

#[derive(Debug, Default)]
struct FunctionState {
    idle: Vec<SimCore>,
    running: usize,
    stats: FunctionStats,
}

/// One Lambda function invoked synchronously: an invocation takes one of the account's
/// executions or is throttled at once; it runs on a warm instance or starts one.
#[derive(Debug)]
pub struct SyncFunction {
    account: Arc<LambdaAccount>,
    cold_start: Duration,
    state: Mutex<FunctionState>,
}

impl SyncFunction {
    /// A function of `account` whose new instances take `cold_start` first.
    pub fn new(account: Arc<LambdaAccount>, cold_start: Duration) -> Self {
        Self {
            account,
            cold_start,
            state: Mutex::default(),
        }
    }

    /// The statistics so far.
    pub fn stats(&self) -> FunctionStats {
        lock(&self.state).stats.clone()
    }

    /// Invokes `handler` on an instance's core; `None` when the account's concurrency is
    /// exhausted (Lambda's 429 `TooManyRequestsException`: nothing ran).
    pub async fn invoke<F, Fut, T>(&self, handler: F) -> Option<T>
    where
        F: FnOnce(SimCore) -> Fut,
        Fut: Future<Output = T>,
    {
        let Ok(permit) = Arc::clone(&self.account.permits).try_acquire_owned() else {
            lock(&self.state).stats.throttles += 1;
            return None;
        };
        {
            let mut account = lock(&self.account.state);
            account.0 += 1;
            account.1 = account.1.max(account.0);
        }
        let start = Instant::now();
        let (core, cold) = {
            let mut s = lock(&self.state);
            s.running += 1;
            s.stats.invocations += 1;
            s.stats.peak = s.stats.peak.max(s.running);
            match s.idle.pop() {
                Some(core) => (core, false),
                None => {
                    s.stats.cold_starts += 1;
                    (SimCore::new(), true)
                }
            }
        };
        if cold {
            tokio::time::sleep(self.cold_start).await;
        }
        let out = handler(core.clone()).await;
        let took = start.elapsed();
        {
            let mut s = lock(&self.state);
            s.running -= 1;
            s.stats.billed += took;
            s.stats.duration.record(took);
            s.idle.push(core);
        }
        lock(&self.account.state).0 -= 1;
        drop(permit);
        Some(out)
    }
}

/// Which kind of post a [`StormSender`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostKind {
    /// A presence announcement's post.
    Presence,
    /// A resume's `room.history` page.
    Resume,
    /// A `$disconnect`'s `"left"` announcement's post.
    Departure,
}

/// The figures of one kind of post.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostStats {
    /// Posts made, retries included.
    pub posts: u64,
    /// Posts delivered to an open connection.
    pub delivered: u64,
    /// Posts answered 410 because the connection was still in its `$connect`.
    pub connecting: u64,
    /// Posts answered 410 because the connection was cut (its record not yet removed).
    pub cut: u64,
    /// Posts answered 429 by the account throttle.
    pub throttled: u64,
    /// Latency of each delivery from the event that caused it (the join written, the resume
    /// asked).
    pub latency: Histogram,
}

/// The connections open and the figures of the posts, shared by every [`StormSender`].
#[derive(Debug, Default)]
pub struct Ledger {
    open: Mutex<HashSet<ConnectionId>>,
    cut: Mutex<HashSet<ConnectionId>>,
    presence: Mutex<PostStats>,
    resume: Mutex<PostStats>,
    departure: Mutex<PostStats>,
}

impl Ledger {
    /// An empty ledger: no connection open.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Marks `connection` open (its `$connect` returned).
    pub fn open(&self, connection: ConnectionId) {
        lock(&self.open).insert(connection);
    }

    /// Marks `connection` cut: API Gateway closed it (posts to it answer 410).
    pub fn cut(&self, connection: &ConnectionId) {
        lock(&self.open).remove(connection);
        lock(&self.cut).insert(connection.clone());
    }

    /// Whether `connection` is open.
    pub fn is_open(&self, connection: &ConnectionId) -> bool {
        lock(&self.open).contains(connection)
    }

    /// Whether `connection` was cut.
    pub fn was_cut(&self, connection: &ConnectionId) -> bool {
        lock(&self.cut).contains(connection)
    }

    /// The figures of `kind`.
    pub fn stats(&self, kind: PostKind) -> PostStats {
        lock(self.of(kind)).clone()
    }

    fn of(&self, kind: PostKind) -> &Mutex<PostStats> {
        match kind {
            PostKind::Presence => &self.presence,
            PostKind::Resume => &self.resume,
            PostKind::Departure => &self.departure,
        }
    }
}

/// A [`SimSender`] (one Lambda instance's core, the region's throttle) that answers 410 for a
/// connection not open (still in `$connect`, or cut) and books its posts as `kind`, timed from
/// `origin`.
#[derive(Debug, Clone)]
pub struct StormSender {
    inner: SimSender,
    ledger: Arc<Ledger>,
    kind: PostKind,
    origin: Instant,
}

impl StormSender {
    /// Posts through `inner`, booked in `ledger` as `kind`, latency measured from `origin`.
    pub fn new(inner: SimSender, ledger: Arc<Ledger>, kind: PostKind, origin: Instant) -> Self {
        Self {
            inner,
            ledger,
            kind,
            origin,
        }
    }
}

impl fmt::Display for StormSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StormSender")
    }
}

#[async_trait]
impl ConnectionSender for StormSender {
    async fn post(&self, target: &Target, payload: &Payload) -> Result<()> {
        let outcome = self.inner.post(target, payload).await;
        let open = self.ledger.is_open(&target.connection_id);
        let cut = !open && self.ledger.was_cut(&target.connection_id);
        let mut stats = lock(self.ledger.of(self.kind));
        stats.posts += 1;
        match outcome {
            Ok(()) if open => {
                stats.delivered += 1;
                stats.latency.record(self.origin.elapsed());
                Ok(())
            }
            Ok(()) => {
                if cut {
                    stats.cut += 1;
                } else {
                    stats.connecting += 1;
                }
                Err(Error::Gone {
                    connection_id: target.connection_id.clone(),
                })
            }
            Err(e) => {
                if matches!(e, Error::Throttled { .. }) {
                    stats.throttled += 1;
                }
                Err(e)
            }
        }
    }

    async fn get(&self, target: &Target) -> Result<ConnectionInfo> {
        if self.ledger.is_open(&target.connection_id) {
            self.inner.get(target).await
        } else {
            Err(Error::Gone {
                connection_id: target.connection_id.clone(),
            })
        }
    }

    async fn delete(&self, target: &Target) -> Result<()> {
        self.inner.delete(target).await
    }
}

/// Reads the [`SimStore`] does not charge, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadCounts {
    /// `GetItem`s (`membership`; strongly consistent: 1 RCU each).
    pub gets: u64,
    /// Index `Query`s other than room pages (`user_connections`, `connection_rooms`; ½ RCU
    /// each, counted 1).
    pub queries: u64,
}

/// The [`SimStore`] with its uncharged reads counted.
#[derive(Debug, Clone)]
pub struct MeteredStore {
    inner: SimStore,
    counts: Arc<Mutex<ReadCounts>>,
}

impl MeteredStore {
    /// Counts the reads of `inner`.
    pub fn new(inner: SimStore) -> Self {
        Self {
            inner,
            counts: Arc::default(),
        }
    }

    /// The store under the meter.
    pub fn inner(&self) -> &SimStore {
        &self.inner
    }

    /// The reads counted so far.
    pub fn counts(&self) -> ReadCounts {
        *lock(&self.counts)
    }
}

impl fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeteredStore({})", self.inner)
    }
}

#[async_trait]
impl ConnectionStore for MeteredStore {
    async fn join(&self, connection: &Membership) -> Result<()> {
        self.inner.join(connection).await
    }

    async fn leave(&self, connection: &ConnectionId, room: &RoomId) -> Result<()> {
        self.inner.leave(connection, room).await
    }

    async fn remove_connections(&self, connections: &[ConnectionId]) -> Result<Vec<Membership>> {
        self.inner.remove_connections(connections).await
    }

    async fn room_page(
        &self,
        room: &RoomId,
        cursor: Option<&PageCursor>,
        limit: Option<usize>,
    ) -> Result<Page> {
        self.inner.room_page(room, cursor, limit).await
    }

    async fn user_connections(&self, user: &UserId) -> Result<Vec<Membership>> {
        lock(&self.counts).queries += 1;
        self.inner.user_connections(user).await
    }

    async fn connection_rooms(&self, connection: &ConnectionId) -> Result<Vec<Membership>> {
        lock(&self.counts).queries += 1;
        self.inner.connection_rooms(connection).await
    }

    async fn membership(
        &self,
        connection: &ConnectionId,
        room: &RoomId,
    ) -> Result<Option<Membership>> {
        lock(&self.counts).gets += 1;
        self.inner.membership(connection, room).await
    }

    async fn refresh(&self, connection: &ConnectionId) -> Result<usize> {
        self.inner.refresh(connection).await
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        self.inner.clock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_account_throttles_at_once_and_instances_are_reused() {
        let account = LambdaAccount::new(3, 1);
        let f = Arc::new(SyncFunction::new(
            Arc::clone(&account),
            Duration::from_millis(250),
        ));
        let slow = |_core: SimCore| tokio::time::sleep(Duration::from_millis(100));
        let (a, b, c) = tokio::join!(f.invoke(slow), f.invoke(slow), f.invoke(slow));
        assert_eq!([a.is_some(), b.is_some(), c.is_some()], [true, true, false]);
        assert!(f.invoke(slow).await.is_some());
        let stats = f.stats();
        assert_eq!(
            (stats.invocations, stats.throttles, stats.cold_starts),
            (3, 1, 2)
        );
        assert_eq!((stats.peak, account.peak()), (2, 2));
        assert_eq!(stats.billed, Duration::from_millis(350 * 2 + 100));
    }
}
