//! Scenario (c): the reconnect storm. API Gateway cuts every connection at 2 h, so clients that
//! connected together are cut together and reconnect together: N clients within a window,
//! each rejoining its personal room and one group room.
//!
//! Each client follows the crate's own client, `examples/chat/static/resumable.js`
//! (`ResumableSocket`): after a cut it waits `delay(0)`, then tries; a refused handshake waits
//! `delay(attempt)` — exponential from 500 ms, capped at 15 s, full jitter
//! (`random() × min(15000, 500 × 2^attempt)` ms) — and the attempt count starts again only after
//! a connection lasted `stableMs` (5 s), which a 2-hour connection did, so every client starts
//! at attempt 0. Once open it resumes every room, and a second time `settleMs` (1.5 s) later
//! when no live message came (none does in this scenario).
//!
//! **The cut** (on by default, [`StormScenario::disconnect`]): every client starts with its old
//! connection's two records in the store (connected 2 h before). At its cut API Gateway closes
//! the old connection — posts to it answer 410, and the broadcaster's Gone cleanup removes its
//! records — and invokes `$disconnect` once (`storm_handlers`): an execution of the same
//! account's concurrency or a throttle, which API Gateway does not retry (the records stay until
//! a post's 410 or the TTL removes them). The handler removes both records
//! (`ConnectionStoreExt::disconnect`: 1 WCU each on the rooms' partitions) and announces
//! `"left"` to the group room with the real [`Presence::left`](stateless_ws::presence::Presence::left) through the account throttle.
//! While the old record exists, a new connection of the same user is not its first in the room,
//! so `Presence::entered` announces no `"joined"`.
//!
//! A handshake meets, in turn:
//!
//! 1. **API Gateway's new-connection quota**: 500 per second per account and region (FACTS.md),
//!    a [`TokenBucket`] whose burst is the rate (AWS publishes no burst for this quota: an
//!    assumption). Over it the handshake is refused (429) after [`StormScenario::handshake_rtt`].
//! 2. **The `$connect` Lambda** ([`SyncFunction`]): the account's concurrency (1,000, shared with
//!    the message route's and `$disconnect`'s functions, less
//!    [`StormScenario::other_concurrency`]) or a throttle — API Gateway then fails the handshake
//!    and the client backs off as for a 429. The authorizer is skipped. The handler, on the
//!    instance's core, spends [`StormScenario::connect_cpu`], writes both records
//!    ([`ConnectionStore::join`] through the [`SimStore`]: the room GSI partition of a room of 10
//!    is not hot; the base table is keyed by connection id and spreads) and announces the join to
//!    the group room with the real
//!    [`Presence::entered`](stateless_ws::presence::Presence::entered), posting through a
//!    [`StormSender`] on the region's [`SimApi`] (the account throttle, 10,000/s, shared with the
//!    resumes' and the `"left"` announcements' posts). The connection is open when the handler
//!    returns.
//! 3. **Resume** (optional): one message-route invocation per room, each a `membership` read then
//!    the real [`Publisher::resume`](stateless_ws::history::Publisher::resume) from the start of the room's history in an [`InMemoryLog`]
//!    (group rooms hold [`StormScenario::missed_messages`]), posting its `room.history` page. A
//!    throttled invocation is asked again after the client's `answerTimeoutMs` (10 s).
//!
//! **Running it.** Each handshake refused by the quota costs the client only a backoff draw, and
//! a million clients make over a hundred million of them at the default quota, so refused
//! attempts do not run as tasks: one scheduler (the `storm_attempts` module) keeps every client's
//! pending attempt in a binary heap ordered by time, then a fixed scramble of the client number,
//! with each client's rng and attempt count in vectors, and tries every attempt due against the
//! quota in that order.
//! An admitted client gets a task that runs its `$connect` invocation and, once open, its
//! resumes; a `$connect` that fails or is throttled puts the client back in the heap (the same
//! backoff) and ends the task. The model is the per-client loop's: the same draws in the same
//! sequence per client, at the same millisecond ticks; only the order of attempts falling due in
//! the same millisecond differs (heap order instead of the timer wheel's).
//!
//! Not modelled: the authorizer, presence in the personal room, the client's `members` request, API Gateway's own latency apart from
//! [`StormScenario::handshake_rtt`], and clients that give up.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use stateless_ws::broadcast::{BroadcastConfig, Broadcaster};
use stateless_ws::history::{InMemoryLog, LogMessage, MessageLog};
use stateless_ws::store::ConnectionStore;
use stateless_ws::{ConnectionId, Membership, Result, RoomId, UserId};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::bucket::TokenBucket;
use crate::clock::SimClock;
use crate::sender::{ApiParams, SimApi};
use crate::store::{SimStore, StoreParams};
use crate::storm_attempts::Attempts;
use crate::storm_handlers;
use crate::storm_report::{ClientFigures, StormResult, Totals};
use crate::storm_seams::{
    LambdaAccount, Ledger, MeteredStore, PostKind, StormSender, SyncFunction,
};

/// The client's reconnect policy (`resumable.js`'s defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// `initialMs` (500 ms).
    pub initial: Duration,
    /// `maxMs` (15 s).
    pub max: Duration,
    /// `jitter` (full jitter: a uniform draw below the cap).
    pub jitter: bool,
    /// `settleMs`: the second resume after an open with no live message (1.5 s).
    pub settle: Duration,
    /// `answerTimeoutMs`: a resume not answered is asked again (10 s).
    pub answer_timeout: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(15),
            jitter: true,
            settle: Duration::from_millis(1_500),
            answer_timeout: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// `delay(attempt)`: `min(max, initial × 2^min(attempt, 30))`, times a uniform draw when
    /// jittered (whole milliseconds, as `Math.floor`).
    pub fn delay(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        let cap = self
            .initial
            .saturating_mul(1u32 << attempt.min(30))
            .min(self.max);
        if self.jitter {
            Duration::from_millis((rng.f64() * cap.as_millis() as f64).floor() as u64)
        } else {
            cap
        }
    }
}

/// The scenario's parameters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StormScenario {
    /// Clients reconnecting (default 1,000,000).
    pub clients: usize,
    /// Members of each group room (default 10).
    pub group_size: usize,
    /// The cuts spread uniformly over this window (default 300 s).
    pub window: Duration,
    /// Seeds every draw (default 1).
    pub seed: u64,
    /// New connections per second, account and region (default 500).
    pub new_connections_rate: u64,
    /// The new-connection bucket's burst (default `None`: the rate).
    pub new_connections_burst: Option<u64>,
    /// A handshake's round trip until the client sees it refused (default 50 ms, assumed).
    pub handshake_rtt: Duration,
    /// The account's Lambda concurrency (default 1,000).
    pub lambda_limit: usize,
    /// Executions the account's other functions hold throughout (default 0).
    pub other_concurrency: usize,
    /// A new instance's start-up (default 250 ms).
    pub cold_start: Duration,
    /// CPU of a `$connect` besides its posts: event parsing, the response (default 1 ms, assumed).
    pub connect_cpu: Duration,
    /// CPU of a message-route invocation besides its posts (default 0.5 ms, assumed).
    pub message_cpu: Duration,
    /// Lambda memory, for the cost (default 512 MB, assumed).
    pub memory_mb: u64,
    /// The management API model (account throttle; `gone_fraction` is set to 0: the
    /// reconnected connections are live, and those in `$connect` answer 410 by the ledger).
    pub api: ApiParams,
    /// The DynamoDB model.
    pub store: StoreParams,
    /// The client's reconnect policy.
    pub backoff: Backoff,
    /// Announce joins to the group room (default true).
    pub presence: bool,
    /// Resume both rooms once open (default true).
    pub resume: bool,
    /// Resume a second time after `settleMs` (default true, as `resumable.js` does).
    pub settle: bool,
    /// Cut the old connections and run their `$disconnect`s (default true); false: the old
    /// records are taken as removed, and their `"left"` announcements as made, before the storm.
    pub disconnect: bool,
    /// Messages each group room's log holds that its clients missed (default 3).
    pub missed_messages: usize,
    /// The run stops here; clients not connected by then are counted failed (default 4 h).
    pub horizon: Duration,
    /// DynamoDB write request units per join: the base table and the room and user indexes
    /// (default 3).
    pub wru_per_join: u64,
}

impl Default for StormScenario {
    fn default() -> Self {
        Self {
            clients: 1_000_000,
            group_size: 10,
            window: Duration::from_secs(300),
            seed: 1,
            new_connections_rate: 500,
            new_connections_burst: None,
            handshake_rtt: Duration::from_millis(50),
            lambda_limit: 1_000,
            other_concurrency: 0,
            cold_start: Duration::from_millis(250),
            connect_cpu: Duration::from_millis(1),
            message_cpu: Duration::from_micros(500),
            memory_mb: 512,
            api: ApiParams {
                gone_fraction: 0.0,
                ..ApiParams::default()
            },
            store: StoreParams::default(),
            backoff: Backoff::default(),
            presence: true,
            resume: true,
            settle: true,
            disconnect: true,
            missed_messages: 3,
            horizon: Duration::from_secs(4 * 3600),
            wru_per_join: 3,
        }
    }
}

/// What every client task shares.
pub(crate) struct World {
    pub(crate) s: StormScenario,
    pub(crate) start: Instant,
    quota: Mutex<TokenBucket>,
    pub(crate) api: Arc<SimApi>,
    store: MeteredStore,
    pub(crate) shared: Arc<dyn ConnectionStore>,
    pub(crate) log: Arc<dyn MessageLog>,
    pub(crate) ledger: Arc<Ledger>,
    connect_fn: SyncFunction,
    pub(crate) message_fn: SyncFunction,
    pub(crate) disconnect_fn: SyncFunction,
    figures: Mutex<ClientFigures>,
    attempts: Attempts,
}

impl World {
    pub(crate) fn figures(&self) -> std::sync::MutexGuard<'_, ClientFigures> {
        self.figures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn broadcaster(&self, sender: StormSender) -> Broadcaster {
        let mut config = BroadcastConfig::default();
        config.list_delivered = false;
        Broadcaster::new(Arc::clone(&self.shared), Arc::new(sender)).with_config(config)
    }
}

/// Client `i`'s connection cut by the storm.
pub(crate) fn old_id(i: usize) -> Result<ConnectionId> {
    ConnectionId::new(format!("O{i:08x}="))
}

/// Client `i`'s new connection, user, personal room and group room.
pub(crate) fn ids(i: usize, group_size: usize) -> Result<(ConnectionId, UserId, RoomId, RoomId)> {
    Ok((
        ConnectionId::new(format!("N{i:08x}="))?,
        UserId::new(format!("u{i}"))?,
        RoomId::new(format!("me-{i}"))?,
        RoomId::new(format!("g-{}", i / group_size.max(1)))?,
    ))
}

impl StormScenario {
    /// Runs the storm on a fresh current-thread runtime with a paused clock.
    ///
    /// # Errors
    ///
    /// When the runtime cannot start or the library's code fails on input the scenario made
    /// (an id it cannot build).
    pub fn run(&self) -> Result<StormResult> {
        let (mut result, wall) = crate::clock::run_paused(self.seed, self.run_async())?;
        result.wall = wall;
        Ok(result)
    }

    async fn run_async(&self) -> Result<StormResult> {
        let store = MeteredStore::new(SimStore::new(self.store.clone()));
        let log = InMemoryLog::new().with_clock(SimClock::fixed());
        let groups = self.clients.div_ceil(self.group_size.max(1));
        for g in 0..groups {
            let room = RoomId::new(format!("g-{g}"))?;
            for _ in 0..self.missed_messages {
                log.append(&room, LogMessage::new(Default::default()))
                    .await?;
            }
        }
        let account = LambdaAccount::new(self.lambda_limit, self.other_concurrency);
        let rate = self.new_connections_rate;
        let start = Instant::now();
        let world = Arc::new(World {
            s: self.clone(),
            start,
            quota: Mutex::new(TokenBucket::new(
                rate,
                self.new_connections_burst.unwrap_or(rate),
            )),
            api: SimApi::new(ApiParams {
                seed: self.seed,
                ..self.api.clone()
            }),
            shared: Arc::new(store.clone()),
            store,
            log: Arc::new(log),
            ledger: Ledger::new(),
            connect_fn: SyncFunction::new(Arc::clone(&account), self.cold_start),
            message_fn: SyncFunction::new(Arc::clone(&account), self.cold_start),
            disconnect_fn: SyncFunction::new(Arc::clone(&account), self.cold_start),
            figures: Mutex::default(),
            attempts: Attempts::new(self, start)?,
        });
        if self.disconnect {
            // The connections the storm cuts, 2 hours old, loaded at no simulated cost.
            let then = crate::clock::unix_now(&*world.shared).saturating_sub(2 * 3_600);
            for i in 0..self.clients {
                let (_, user, personal, group) = ids(i, self.group_size)?;
                let old = old_id(i)?;
                for room in [personal, group] {
                    let record = Membership::new(old.clone(), room)
                        .with_user(user.clone())
                        .with_connected_at(then);
                    world.store.inner().inner().join(&record).await?;
                }
                world.ledger.open(old);
            }
        }
        let cutter = tokio::spawn(storm_handlers::cut(Arc::clone(&world)));
        let sampler = tokio::spawn(sample(Arc::clone(&world)));
        let (reports, mut exits) = mpsc::unbounded_channel();
        let mut scheduler = tokio::spawn(schedule(Arc::clone(&world), reports));
        // Every client ends in one task that reports `Exit::Done` (or fails); its earlier tasks,
        // whose `$connect` failed, report `Exit::Retried`. Reports come in the order the tasks
        // end (a task's memory is freed as it ends, not kept until the tasks before it have
        // ended). Clients not done by the horizon are counted failed (not connected).
        let deadline = tokio::time::sleep_until(world.start + self.horizon);
        tokio::pin!(deadline);
        let (mut done, mut errors) = (0, Vec::new());
        while done < self.clients {
            tokio::select! {
                biased;
                exit = exits.recv() => {
                    match exit {
                        Some(Ok(Exit::Retried)) => continue,
                        Some(Ok(Exit::Done)) => {}
                        Some(Err(e)) => errors.push(e.chain().to_string()),
                        None => {
                            // The scheduler holds a sender and never returns: it panicked.
                            if let Err(join) = (&mut scheduler).await {
                                errors.push(format!("the scheduler failed: {join}"));
                            }
                            break;
                        }
                    }
                    done += 1;
                }
                () = &mut deadline => break,
            }
        }
        // The `$disconnect`s still running (a storm shorter than its window).
        match tokio::time::timeout_at(world.start + self.horizon, cutter).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => errors.push(e.chain().to_string()),
            Ok(Err(join)) => errors.push(format!("the cuts failed: {join}")),
            Err(_) => errors.push("the cuts did not finish by the horizon".to_owned()),
        }
        let simulated = world.start.elapsed();
        scheduler.abort();
        sampler.abort();
        let totals = Totals {
            api: world.api.stats(),
            store: world.store.inner().stats(),
            reads: world.store.counts(),
            presence: world.ledger.stats(PostKind::Presence),
            resume: world.ledger.stats(PostKind::Resume),
            departure: world.ledger.stats(PostKind::Departure),
            connect_fn: world.connect_fn.stats(),
            message_fn: world.message_fn.stats(),
            disconnect_fn: world.disconnect_fn.stats(),
            peak_concurrency: account.peak(),
        };
        let figures = std::mem::take(&mut *world.figures());
        Ok(StormResult::new(
            self.clone(),
            figures,
            totals,
            simulated,
            errors,
        ))
    }
}

/// Samples DynamoDB's capacity each second of virtual time.
async fn sample(world: Arc<World>) {
    let mut last = (0u64, 0u64);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let store = world.store.inner().stats();
        let reads = world.store.counts();
        let log_reads = world.figures().log_reads;
        let wcu = store.wcu;
        let rcu = store.rcu + reads.gets + reads.queries + log_reads;
        let mut f = world.figures();
        f.peak_wcu_per_s = f.peak_wcu_per_s.max(wcu - last.0);
        f.peak_rcu_per_s = f.peak_rcu_per_s.max(rcu - last.1);
        last = (wcu, rcu);
    }
}

/// How a client's task ended.
enum Exit {
    /// Its `$connect` failed or was throttled: the client is back in the scheduler's heap.
    Retried,
    /// Connected (and resumed, when the scenario resumes).
    Done,
}

/// The scheduler: tries each client's attempts against the quota as they fall due and spawns
/// a task for each admitted one ([`attempt`]), which reports how it ended to `reports`.
async fn schedule(world: Arc<World>, reports: mpsc::UnboundedSender<Result<Exit>>) {
    world
        .attempts
        .run(&world.quota, |admitted, refused| {
            if refused > 0 {
                world.figures().refused += refused;
            }
            for &i in admitted {
                let report = Report {
                    to: reports.clone(),
                    sent: false,
                };
                let world = Arc::clone(&world);
                tokio::spawn(async move { report.send(attempt(world, i).await) });
            }
        })
        .await;
}

/// A client task's report of how it ended; a task that ends without one (it panicked) reports
/// an error when the report is dropped.
struct Report {
    to: mpsc::UnboundedSender<Result<Exit>>,
    sent: bool,
}

impl Report {
    fn send(mut self, exit: Result<Exit>) {
        self.sent = true;
        // Nobody to tell once the run is over (the receiver is gone): ignored.
        let _ = self.to.send(exit);
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if !self.sent {
            let _ = self.to.send(Err(stateless_ws::Error::Config {
                message: "a client's task ended without reporting (it panicked)".to_owned(),
            }));
        }
    }
}

/// One admitted handshake of client `i`: its `$connect`, then, once open, its resumes as
/// `resumable.js` does. A failed or throttled `$connect` puts the client back in the heap.
async fn attempt(world: Arc<World>, i: u32) -> Result<Exit> {
    let s = &world.s;
    let (me, user, personal, group) = ids(i as usize, s.group_size)?;
    let w = Arc::clone(&world);
    let (me2, user2, personal2, group2) =
        (me.clone(), user.clone(), personal.clone(), group.clone());
    // Boxed: the task then holds a pointer during its resumes and the settle wait, not the
    // handler's future (kilobytes, times the clients connected at once).
    let outcome = Box::pin(world.connect_fn.invoke(move |core| async move {
        storm_handlers::connect(&w, core, me2, user2, personal2, group2).await
    }))
    .await;
    match outcome {
        Some(Ok(())) => {}
        Some(Err(_)) => {
            world.figures().connect_errors += 1;
            world.attempts.retry(i);
            return Ok(Exit::Retried);
        }
        None => {
            world.attempts.retry(i);
            return Ok(Exit::Retried);
        }
    }
    world.ledger.open(me.clone());
    let (first_attempt, attempts) = world.attempts.made(i);
    {
        let mut f = world.figures();
        f.connect_latency.record(first_attempt.elapsed());
        f.connected_at.push(world.start.elapsed());
        f.attempts += u64::from(attempts);
        f.max_attempts = f.max_attempts.max(attempts);
    }
    if s.resume {
        Box::pin(storm_handlers::resume_rooms(&world, &me, &personal, &group)).await;
        if s.settle {
            tokio::time::sleep(s.backoff.settle).await;
            Box::pin(storm_handlers::resume_rooms(&world, &me, &personal, &group)).await;
        }
    }
    Ok(Exit::Done)
}
