//! [`EventSourceMapping`]: Lambda's SQS event source mapping, with a concurrency limit and
//! cold starts, driving real [`FanoutWorker`]s from an [`InMemoryQueue`].
//!
//! Modelled (AWS Lambda developer guide; FACTS.md):
//!
//! - **Batches** of at most [`LambdaParams::batch_size`] messages (SQS's `ReceiveMessage`
//!   returns ≤ 10), processed one after another in one invocation as `lambda::sqs::run`
//!   does; a message is deleted when its job is acknowledged, otherwise it comes back after the
//!   queue's visibility timeout (the queue's own semantics).
//! - **Concurrency**: at most [`LambdaParams::concurrency`] invocations at once — the function's
//!   maximum concurrency, bounded by the account's limit (1,000 by default).
//! - **Cold starts**: an invocation with no idle instance starts a new one, which first spends
//!   [`LambdaParams::cold_start`] (default 250 ms); instances are reused afterwards. Each
//!   instance has its own [`SimCore`] (one vCPU) and its own worker on it.
//! - **Deadline**: each invocation's worker gets the deadline `spawn_workers` gives a job — the
//!   receive time plus the visibility timeout less a fifth of it (at most 5 s) — so what is not
//!   delivered by then goes back as a remainder job.
//!
//! Not modelled: the mapping's gradual scale-up of pollers, the function timeout apart from the
//! visibility timeout, and `ReceiveMessage`'s own latency.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use stateless_ws::queue::InMemoryQueue;
use stateless_ws::queue::memory::visibility_deadline;
use stateless_ws::queue::{FanoutWorker, JobOutcome};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::core::SimCore;

/// Parameters of the Lambda model.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LambdaParams {
    /// Invocations at once (default 1,000: the account's default concurrency limit).
    pub concurrency: usize,
    /// A new instance's start-up (default 250 ms).
    pub cold_start: Duration,
    /// Messages per invocation, 1–10 (default 10).
    pub batch_size: usize,
    /// CPU per job on the instance's core before its posts: reading and checking the job
    /// (default 0.5 ms, an assumption; the posts' own CPU is the sender's).
    pub job_cpu: Duration,
    /// The queue's visibility timeout, for the invocation's deadline (default 30 s, SQS's).
    pub visibility_timeout: Duration,
}

impl Default for LambdaParams {
    fn default() -> Self {
        Self {
            concurrency: 1_000,
            cold_start: Duration::from_millis(250),
            batch_size: 10,
            job_cpu: Duration::from_micros(500),
            visibility_timeout: Duration::from_secs(30),
        }
    }
}

/// What the mapping did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LambdaStats {
    /// Invocations.
    pub invocations: u64,
    /// Instances started (cold starts).
    pub cold_starts: u64,
    /// Invocations running at once, at most.
    pub peak_concurrency: usize,
    /// Jobs processed.
    pub jobs: u64,
    /// Jobs whose outcome was a failure (left to come back).
    pub failed_jobs: u64,
    /// Targets failed for good (reported by the worker, not retried).
    pub failed_targets: u64,
    /// CPU charged to all instances' cores.
    pub cpu: Duration,
    /// Billed duration, summed over invocations (a cold start's init included).
    pub billed: Duration,
}

/// Makes the worker of a new instance, on that instance's core.
pub type WorkerFactory = Arc<dyn Fn(&SimCore) -> FanoutWorker + Send + Sync>;

#[derive(Clone)]
struct Instance {
    core: SimCore,
    worker: FanoutWorker,
}

#[derive(Default)]
struct State {
    idle: Vec<Instance>,
    cores: Vec<SimCore>,
    running: usize,
    stats: LambdaStats,
}

/// A running event source mapping; [`shutdown`](Self::shutdown) stops it.
pub struct EventSourceMapping {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for EventSourceMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSourceMapping")
            .field("stats", &self.stats())
            .finish()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EventSourceMapping {
    /// Starts polling `queue`, invoking workers made by `factory`.
    pub fn start(queue: InMemoryQueue, factory: WorkerFactory, params: LambdaParams) -> Self {
        let (stop, stopped) = watch::channel(false);
        let state: Arc<Mutex<State>> = Arc::default();
        let task = tokio::spawn(poll(queue, factory, params, stopped, Arc::clone(&state)));
        Self { stop, task, state }
    }

    /// The statistics so far.
    pub fn stats(&self) -> LambdaStats {
        stats_of(&self.state)
    }

    /// Stops polling (invocations running are abandoned) and returns the statistics.
    pub async fn shutdown(self) -> LambdaStats {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        stats_of(&self.state)
    }
}

fn stats_of(state: &Mutex<State>) -> LambdaStats {
    let state = lock(state);
    let mut stats = state.stats;
    stats.cpu = state.cores.iter().map(SimCore::busy).sum();
    stats
}

async fn poll(
    queue: InMemoryQueue,
    factory: WorkerFactory,
    params: LambdaParams,
    mut stopped: watch::Receiver<bool>,
    state: Arc<Mutex<State>>,
) {
    let permits = Arc::new(Semaphore::new(params.concurrency.max(1)));
    let batch_size = params.batch_size.clamp(1, 10);
    loop {
        let permit = tokio::select! {
            biased;
            _ = stopped.wait_for(|s| *s) => return,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let batch = tokio::select! {
            biased;
            _ = stopped.wait_for(|s| *s) => return,
            batch = queue.receive(batch_size, Duration::from_secs(20)) => batch,
        };
        if batch.is_empty() {
            continue;
        }
        let received = Instant::now();
        let (instance, cold) = {
            let mut s = lock(&state);
            s.stats.invocations += 1;
            s.running += 1;
            s.stats.peak_concurrency = s.stats.peak_concurrency.max(s.running);
            match s.idle.pop() {
                Some(instance) => (instance, false),
                None => {
                    s.stats.cold_starts += 1;
                    let core = SimCore::new();
                    s.cores.push(core.clone());
                    let worker = factory(&core);
                    (Instance { core, worker }, true)
                }
            }
        };
        let queue = queue.clone();
        let state = Arc::clone(&state);
        let job_cpu = params.job_cpu;
        let cold_start = params.cold_start;
        let deadline = received + visibility_deadline(params.visibility_timeout);
        tokio::spawn(async move {
            if cold {
                tokio::time::sleep(cold_start).await;
            }
            let worker = instance.worker.clone().with_deadline(deadline.into_std());
            let (mut jobs, mut failed, mut failed_targets) = (0, 0, 0);
            for message in batch {
                instance.core.run(job_cpu).await;
                let outcome = worker.process(&message.body).await;
                jobs += 1;
                if let JobOutcome::Completed { failed, .. } | JobOutcome::Requeued { failed, .. } =
                    &outcome
                {
                    failed_targets += *failed as u64;
                }
                if outcome.is_ack() {
                    queue.delete(&message.receipt);
                } else {
                    failed += 1;
                }
            }
            let mut s = lock(&state);
            s.stats.jobs += jobs;
            s.stats.failed_jobs += failed;
            s.stats.failed_targets += failed_targets;
            s.stats.billed += received.elapsed();
            s.running -= 1;
            s.idle.push(instance);
            drop(permit);
        });
    }
}
