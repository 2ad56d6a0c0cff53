//! Scenario (b): one broadcast to a room of N members, in-line or queued with W workers.
//!
//! The in-line run is one [`Broadcaster::broadcast`] on one core (one Lambda). The queued run is
//! the caller's [`FanoutPlanner::enqueue_broadcast`], then [`FanoutWorker`]s in Lambda instances
//! ([`EventSourceMapping`]) until the queue is empty. Both post to one region's [`SimApi`] and
//! read one [`SimStore`]. Time is Tokio's paused clock: the figures are virtual time, and a run
//! is a function of its parameters and seed.

use std::sync::Arc;
use std::time::Duration;

use stateless_ws::broadcast::{BroadcastConfig, Broadcaster, Payload};
use stateless_ws::queue::{FanoutPlanner, FanoutWorker, InMemoryQueue, Job, JobKey, QueueConfig};
use stateless_ws::store::ConnectionStore;
use stateless_ws::{ConnectionId, Membership, Result, RoomId};
use tokio::time::Instant;

use crate::core::SimCore;
use crate::cost::{Arch, Cost, US_EAST_1_2026_12, Usage};
use crate::lambda::{EventSourceMapping, LambdaParams, WorkerFactory};
use crate::sender::{ApiParams, SimApi, SimSender};
use crate::store::{SimStore, StoreParams};

/// How the room is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One `Broadcaster::broadcast` in the caller's invocation.
    InLine,
    /// The planner enqueues jobs; Lambda workers deliver them.
    Queued,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::InLine => "in-line",
            Mode::Queued => "queued",
        })
    }
}

/// The scenario's parameters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BroadcastScenario {
    /// Members of the room (default 1,000,000).
    pub members: usize,
    /// Seeds every model and the crate's own jitter (default 1).
    pub seed: u64,
    /// The management API model (its `seed` is replaced by [`seed`](Self::seed)).
    pub api: ApiParams,
    /// The DynamoDB model.
    pub store: StoreParams,
    /// The Lambda model of the queued run; its `concurrency` is the number of workers W.
    pub lambda: LambdaParams,
    /// The broadcaster's posts in flight, in-line and in each worker (default 64, the crate's).
    pub concurrency: usize,
    /// Targets per job (default 500, the crate's).
    pub targets_per_job: usize,
}

impl Default for BroadcastScenario {
    fn default() -> Self {
        Self {
            members: 1_000_000,
            seed: 1,
            api: ApiParams::default(),
            store: StoreParams::default(),
            lambda: LambdaParams {
                concurrency: 50,
                ..LambdaParams::default()
            },
            concurrency: 64,
            targets_per_job: 500,
        }
    }
}

/// One run's figures.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunResult {
    /// How the room was reached.
    pub mode: Mode,
    /// Members of the room.
    pub members: usize,
    /// Virtual time from publish to the last delivery (queued: queue empty).
    pub simulated: Duration,
    /// How long the caller waited (in-line: the whole broadcast; queued: the planner).
    pub caller_wait: Duration,
    /// Connections delivered to (distinct).
    pub delivered: u64,
    /// Deliveries beyond the first to a connection.
    pub duplicates: u64,
    /// Connections answered 410 (distinct).
    pub gone: u64,
    /// Connections failed for good or not attempted (in-line: after the broadcaster's
    /// retries; queued: reported failed by a worker, or in a dead-lettered job).
    pub failed: u64,
    /// Posts answered 429.
    pub throttled: u64,
    /// Posts made, retries included.
    pub posts: u64,
    /// Median delivery latency from publish.
    pub p50: Duration,
    /// 99th percentile delivery latency from publish.
    pub p99: Duration,
    /// The slowest delivery from publish.
    pub max: Duration,
    /// The throttle's bound: members / rate.
    pub bound: Duration,
    /// Lambda invocations (in-line: 1).
    pub invocations: u64,
    /// Invocations at once, at most (in-line: 1).
    pub peak_concurrency: usize,
    /// Lambda instances started.
    pub cold_starts: u64,
    /// DynamoDB `Query` pages read.
    pub pages: u64,
    /// Read capacity consumed.
    pub rcu: u64,
    /// Write capacity consumed (the cleanup of gone connections).
    pub wcu: u64,
    /// Reads throttled by the room's GSI partition.
    pub read_throttles: u64,
    /// Writes throttled by the room's GSI partition (the cleanup of gone connections).
    pub write_throttles: u64,
    /// Jobs enqueued (queued runs).
    pub jobs: usize,
    /// Lambda's billed duration: in-line, the one invocation; queued, the workers' (cold
    /// starts included) and the planner's.
    pub billed: Duration,
    /// Posts delivered, duplicates included (API Gateway bills each).
    pub messages: u64,
    /// Real time the simulation took.
    pub wall: Duration,
}

/// Lambda memory for [`RunResult::cost`]: 1,769 MB, one vCPU — each instance is one
/// [`SimCore`].
pub const LAMBDA_MB: u64 = 1_769;

/// DynamoDB write request units per record deleted: the base table and the room and user
/// indexes.
pub const WRU_PER_DELETE: u64 = 3;

impl RunResult {
    /// What the broadcast cost, priced as a one-off at [`US_EAST_1_2026_12`] on x86: each
    /// delivered post a message (410s and 429s are not billed), Lambda at [`LAMBDA_MB`] (one
    /// vCPU, the one [`SimCore`] of an instance), [`WRU_PER_DELETE`] per record the gone cleanup
    /// removed, the pages' read units, and SQS: one `SendMessageBatch` per 10 jobs, and a
    /// `ReceiveMessage` and a `DeleteMessageBatch` per worker invocation.
    pub fn cost(&self) -> Cost {
        let sqs = if self.jobs == 0 {
            0
        } else {
            self.jobs.div_ceil(10) as u64 + 2 * (self.invocations - 1)
        };
        let usage = Usage {
            apigw_messages: self.messages as f64,
            lambda_requests: self.invocations as f64,
            lambda_gb_seconds: self.billed.as_secs_f64() * LAMBDA_MB as f64 / 1_024.0,
            wru: (self.wcu * WRU_PER_DELETE) as f64,
            rru: self.rcu as f64,
            sqs_requests: sqs as f64,
            ..Usage::default()
        };
        US_EAST_1_2026_12.monthly(&usage, Arch::X86)
    }

    /// Deliveries per second of virtual time.
    pub fn posts_per_sec(&self) -> f64 {
        self.delivered as f64 / self.simulated.as_secs_f64().max(1e-9)
    }

    /// Virtual time over the throttle's bound.
    pub fn ratio_to_bound(&self) -> f64 {
        self.simulated.as_secs_f64() / self.bound.as_secs_f64().max(1e-9)
    }
}

impl BroadcastScenario {
    /// Runs the scenario in `mode` on a fresh current-thread runtime with a paused clock,
    /// seeded with [`seed`](Self::seed).
    pub fn run(&self, mode: Mode) -> Result<RunResult> {
        let (mut result, wall) = crate::clock::run_paused(self.seed, self.run_async(mode))?;
        result.wall = wall;
        Ok(result)
    }

    fn broadcast_config(&self) -> BroadcastConfig {
        let mut config = BroadcastConfig::default();
        config.concurrency = self.concurrency;
        config.list_delivered = false;
        config
    }

    async fn run_async(&self, mode: Mode) -> Result<RunResult> {
        let store = SimStore::new(self.store.clone());
        let room = RoomId::new("big")?;
        load_room(&store, &room, self.members).await?;
        let api_params = ApiParams {
            seed: self.seed,
            ..self.api.clone()
        };
        let api = SimApi::new(api_params);
        let payload = Payload::text(r#"{"type":"message","text":"hello, everyone"}"#)?;
        let shared: Arc<dyn ConnectionStore> = Arc::new(store.clone());
        let start = Instant::now();
        api.set_published(start);
        let (caller_wait, invocations, peak, cold, jobs, failed, billed) = match mode {
            Mode::InLine => {
                let sender = SimSender::on_core(Arc::clone(&api), SimCore::new());
                let broadcaster =
                    Broadcaster::new(shared, Arc::new(sender)).with_config(self.broadcast_config());
                let report = broadcaster.broadcast(&room, &payload, None).await?;
                let failed = report.failed.len() + report.not_attempted.len();
                let took = start.elapsed();
                (took, 1, 1, 1, 0, failed as u64, took)
            }
            Mode::Queued => {
                let queue =
                    InMemoryQueue::new().with_visibility_timeout(self.lambda.visibility_timeout);
                let key = JobKey::new([0x5a; 32])?;
                let mut queue_config = QueueConfig::default();
                queue_config.targets_per_job = self.targets_per_job;
                let planner = FanoutPlanner::new(Arc::clone(&shared), Arc::new(queue.clone()))
                    .with_job_key(key.clone())
                    .with_config(queue_config.clone());
                let factory: WorkerFactory = {
                    let (api, queue, config) =
                        (Arc::clone(&api), queue.clone(), self.broadcast_config());
                    Arc::new(move |core: &SimCore| {
                        let sender = SimSender::on_core(Arc::clone(&api), core.clone());
                        let broadcaster = Broadcaster::new(Arc::clone(&shared), Arc::new(sender))
                            .with_config(config.clone());
                        FanoutWorker::new(broadcaster, Arc::new(queue.clone()))
                            .with_job_key(key.clone())
                            .with_config(queue_config.clone())
                    })
                };
                let mapping =
                    EventSourceMapping::start(queue.clone(), factory, self.lambda.clone());
                let enqueued = planner.enqueue_broadcast(&room, &payload, None).await?;
                let caller_wait = start.elapsed();
                queue.wait_until_empty().await;
                let stats = mapping.shutdown().await;
                let dead: u64 = queue
                    .dead_letters()
                    .iter()
                    .filter_map(|d| Job::parse(&d.body).ok())
                    .map(|job| job.len() as u64)
                    .sum();
                // The publisher's invocation (the planner) besides the workers'.
                (
                    caller_wait,
                    stats.invocations + 1,
                    stats.peak_concurrency,
                    stats.cold_starts,
                    enqueued.jobs,
                    stats.failed_targets + dead,
                    stats.billed + caller_wait,
                )
            }
        };
        let simulated = start.elapsed();
        let api_stats = api.stats();
        let store_stats = store.stats();
        let rate = self.api.rate.max(1) as f64;
        Ok(RunResult {
            mode,
            members: self.members,
            simulated,
            caller_wait,
            delivered: api_stats.distinct_delivered,
            duplicates: api_stats.delivered - api_stats.distinct_delivered,
            gone: api_stats.distinct_gone,
            failed,
            throttled: api_stats.throttled,
            posts: api_stats.posts,
            p50: api_stats.latency.quantile(0.5),
            p99: api_stats.latency.quantile(0.99),
            max: api_stats.latency.max(),
            bound: Duration::from_secs_f64(self.members as f64 / rate),
            invocations,
            peak_concurrency: peak,
            cold_starts: cold,
            pages: store_stats.pages,
            rcu: store_stats.rcu,
            wcu: store_stats.wcu,
            read_throttles: store_stats.read_throttles,
            write_throttles: store_stats.write_throttles,
            jobs,
            billed,
            messages: api_stats.delivered,
            wall: Duration::ZERO,
        })
    }
}

/// Loads `members` connections into `room`, connected an hour before the run (past the
/// broadcaster's connect grace), at no simulated cost.
async fn load_room(store: &SimStore, room: &RoomId, members: usize) -> Result<()> {
    let an_hour_ago = crate::clock::unix_now(store).saturating_sub(3_600);
    for i in 0..members {
        let id = ConnectionId::new(format!("C{i:08x}="))?;
        let record = Membership::new(id, room.clone()).with_connected_at(an_hour_ago);
        store.inner().join(&record).await?;
    }
    Ok(())
}
