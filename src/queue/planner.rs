//! [`FanoutPlanner`]: turns "send P to room R except C" into jobs on a [`JobQueue`].

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::job::{JobContext, JobKey, JobPacker};
use super::{JobQueue, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use crate::backoff;
use crate::broadcast::{Payload, Target};
use crate::error::{Error, Result};
use crate::ids::{ConnectionId, RoomId, UserId};
use crate::store::ConnectionStore;

/// Tuning of queued fan-out, shared by the planner ([`FanoutPlanner`]) and the worker
/// ([`FanoutWorker`](super::FanoutWorker)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueConfig {
    /// The most targets in one job (default 500). It bounds the duplicates a worker that dies
    /// mid-job can cause (SQS redelivers the job whole) and the work of one job: 500 posts at
    /// the broadcaster's default concurrency of 64 take well under a second.
    pub targets_per_job: usize,
    /// Sends of one batch entry before giving up (default 5; at least 1): per-entry failures
    /// and retryable call failures are sent again with exponential backoff and jitter.
    pub send_attempts: u32,
    /// The first backoff between sends (default 100 ms), doubling up to
    /// [`max_backoff`](Self::max_backoff).
    pub initial_backoff: Duration,
    /// The longest backoff between sends (default 2 s).
    pub max_backoff: Duration,
    /// The most remainder generations (default 5): a job of generation n whose targets
    /// still cannot all be delivered is re-enqueued as generation n + 1 with what is left; a job
    /// received with a generation above this fails untouched, so the queue's redrive policy
    /// moves it (only the undelivered targets) to the dead-letter queue.
    pub max_generations: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            targets_per_job: 500,
            send_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_generations: 5,
        }
    }
}

/// What [`FanoutPlanner`] enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Enqueued {
    /// The fan-out's id, in every job (and in the worker's logs).
    pub fanout_id: String,
    /// Jobs (queue messages) sent.
    pub jobs: usize,
    /// Targets in them.
    pub targets: usize,
}

/// Queued fan-out: lists the recipients, packs them into jobs and sends the jobs to a
/// [`JobQueue`], then returns — the [`FanoutWorker`](super::FanoutWorker)s deliver.
///
/// Rooms are read page by page ([`ConnectionStore::room_page`]), each page read while the one
/// before it is packed and sent, and jobs are sent as they fill, [`MAX_BATCH_ENTRIES`] per call
/// at most and [`MAX_BATCH_BYTES`] in total: memory stays bounded by two pages and one batch
/// whatever the room's size.
///
/// Cheap to clone; build one at start-up and keep it.
#[derive(Clone)]
pub struct FanoutPlanner {
    store: Arc<dyn ConnectionStore>,
    queue: Arc<dyn JobQueue>,
    config: QueueConfig,
    default_endpoint: Option<Arc<str>>,
    key: Option<JobKey>,
}

impl fmt::Debug for FanoutPlanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanoutPlanner")
            .field("store", &self.store)
            .field("queue", &self.queue)
            .field("config", &self.config)
            .field("default_endpoint", &self.default_endpoint)
            .field("key", &self.key)
            .finish()
    }
}

impl FanoutPlanner {
    /// A planner reading `store` and sending to `queue`, with the default [`QueueConfig`].
    pub fn new(store: Arc<dyn ConnectionStore>, queue: Arc<dyn JobQueue>) -> Self {
        Self {
            store,
            queue,
            config: QueueConfig::default(),
            default_endpoint: None,
            key: None,
        }
    }

    /// Signs every job with `key` (HMAC-SHA256; see [`JobKey`]), so that workers given the same
    /// key run only jobs this planner wrote. `None` (the default) writes unsigned jobs.
    #[must_use]
    pub fn with_job_key(mut self, key: impl Into<Option<JobKey>>) -> Self {
        self.key = key.into();
        self
    }

    /// Sets the tuning `config`.
    #[must_use]
    pub fn with_config(mut self, config: QueueConfig) -> Self {
        self.config = config;
        self
    }

    /// Writes `endpoint` into targets whose record names no management endpoint, as
    /// [`Broadcaster::with_default_endpoint`](crate::broadcast::Broadcaster::with_default_endpoint)
    /// does; without it such targets go to the worker's sender default.
    #[must_use]
    pub fn with_default_endpoint(mut self, endpoint: impl Into<Arc<str>>) -> Self {
        self.default_endpoint = Some(endpoint.into());
        self
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn JobQueue> {
        &self.queue
    }

    /// The tuning.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Enqueues `payload` for every connection in `room` except `exclude`, reading the room page
    /// by page, and returns once the jobs are in the queue.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the queue's message size cannot hold a job of this payload (before
    /// anything is sent); [`Error::Enqueue`] when listing or sending fails part-way — it says
    /// how many jobs and targets are queued (those will be delivered).
    pub async fn enqueue_broadcast(
        &self,
        room: &RoomId,
        payload: &Payload,
        exclude: Option<&ConnectionId>,
    ) -> Result<Enqueued> {
        let mut run = self.start(JobContext::room(room.clone()), payload)?;
        let span = tracing::info_span!("enqueue_broadcast", %room, fanout_id = %run.fanout_id, store = %self.store, queue = %self.queue);
        async {
            let mut page = match self.store.room_page(room, None, None).await {
                Ok(page) => page,
                Err(e) => return Err(run.partial(e)),
            };
            loop {
                // Read ahead: the next page is read while this one's jobs are packed and sent
                // (one page ahead; memory stays bounded by two pages and one batch).
                let next = async {
                    match &page.next {
                        Some(cursor) => Some(self.store.room_page(room, Some(cursor), None).await),
                        None => None,
                    }
                };
                let push = async {
                    for record in &page.records {
                        if Some(&record.connection_id) != exclude {
                            run.push(self, Target::from(record)).await?;
                        }
                    }
                    Ok::<(), Error>(())
                };
                let (pushed, next) = tokio::join!(push, next);
                pushed?;
                page = match next {
                    None => return run.finish(self).await,
                    Some(Ok(next)) => next,
                    Some(Err(e)) => return Err(run.partial(e)),
                };
            }
        }
        .instrument(span)
        .await
    }

    /// Enqueues `payload` for every connection of `user`, each once.
    ///
    /// # Errors
    ///
    /// As [`enqueue_broadcast`](Self::enqueue_broadcast).
    pub async fn enqueue_notify_user(&self, user: &UserId, payload: &Payload) -> Result<Enqueued> {
        let mut run = self.start(JobContext::user(user.clone()), payload)?;
        let span = tracing::info_span!("enqueue_notify_user", %user, fanout_id = %run.fanout_id, store = %self.store, queue = %self.queue);
        async {
            let connections = match self.store.user_connections(user).await {
                Ok(c) => c,
                Err(e) => return Err(run.partial(e)),
            };
            for record in &connections {
                run.push(self, Target::from(record)).await?;
            }
            run.finish(self).await
        }
        .instrument(span)
        .await
    }

    /// Enqueues `payload` for explicit targets (duplicates once), with `context` for the
    /// dead-letter queue.
    ///
    /// # Errors
    ///
    /// As [`enqueue_broadcast`](Self::enqueue_broadcast), without a listing.
    pub fn enqueue_targets<T: Into<Target>>(
        &self,
        targets: impl IntoIterator<Item = T>,
        payload: &Payload,
        context: JobContext,
    ) -> impl Future<Output = Result<Enqueued>> + Send + '_ {
        // Collected before the future is made, so the future is `Send` whatever the iterator.
        let targets: Vec<Target> = targets.into_iter().map(Into::into).collect();
        let run = self.start(context, payload);
        async move {
            let mut run = run?;
            let span = tracing::info_span!("enqueue_targets", fanout_id = %run.fanout_id, queue = %self.queue);
            async {
                for target in targets {
                    run.push(self, target).await?;
                }
                run.finish(self).await
            }
            .instrument(span)
            .await
        }
    }

    fn start(&self, context: JobContext, payload: &Payload) -> Result<Run> {
        let fanout_id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let now_ms = crate::clock::unix_millis(self.store.clock().now());
        let max_bytes = self.queue.max_message_bytes().min(MAX_BATCH_BYTES);
        let packer = JobPacker::new(
            fanout_id.clone(),
            context,
            payload,
            self.config.targets_per_job,
            max_bytes,
            now_ms,
            self.key.clone(),
        )?;
        Ok(Run {
            fanout_id,
            packer,
            seen: HashSet::new(),
            batch: Vec::new(),
            batch_bytes: 0,
            queued_jobs: 0,
            queued_targets: 0,
            unknown_jobs: 0,
            unknown_targets: 0,
        })
    }
}

/// One enqueueing in progress: the job being filled, the batch being gathered, what is queued.
struct Run {
    fanout_id: String,
    packer: JobPacker,
    /// Connections already packed: each once per fan-out (rule 10 lists each once per room, but
    /// explicit target lists may repeat).
    seen: HashSet<ConnectionId>,
    batch: Vec<(String, usize)>,
    batch_bytes: usize,
    queued_jobs: usize,
    queued_targets: usize,
    /// Jobs sent by a call with an unknown outcome: maybe queued, not sent again.
    unknown_jobs: usize,
    unknown_targets: usize,
}

impl Run {
    async fn push(&mut self, planner: &FanoutPlanner, mut target: Target) -> Result<()> {
        if !self.seen.insert(target.connection_id.clone()) {
            return Ok(());
        }
        if target.endpoint.is_none() {
            target.endpoint.clone_from(&planner.default_endpoint);
        }
        let closed = self.packer.push(&target).map_err(|e| self.partial(e))?;
        if let Some(job) = closed {
            self.add(planner, job).await?;
        }
        Ok(())
    }

    async fn add(&mut self, planner: &FanoutPlanner, job: (String, usize)) -> Result<()> {
        if self.batch.len() >= MAX_BATCH_ENTRIES || self.batch_bytes + job.0.len() > MAX_BATCH_BYTES
        {
            self.flush(planner).await?;
        }
        self.batch_bytes += job.0.len();
        self.batch.push(job);
        Ok(())
    }

    async fn finish(mut self, planner: &FanoutPlanner) -> Result<Enqueued> {
        if let Some(job) = self.packer.finish() {
            self.add(planner, job).await?;
        }
        self.flush(planner).await?;
        tracing::info!(
            fanout_id = %self.fanout_id,
            jobs = self.queued_jobs,
            targets = self.queued_targets,
            "fan-out enqueued"
        );
        Ok(Enqueued {
            fanout_id: self.fanout_id,
            jobs: self.queued_jobs,
            targets: self.queued_targets,
        })
    }

    async fn flush(&mut self, planner: &FanoutPlanner) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        if batch.is_empty() {
            return Ok(());
        }
        let bodies: Vec<String> = batch.iter().map(|(b, _)| b.clone()).collect();
        let outcome = send_all(planner.queue.as_ref(), &planner.config, bodies).await;
        for (i, (_, targets)) in batch.iter().enumerate() {
            if outcome.sent[i] {
                self.queued_jobs += 1;
                self.queued_targets += targets;
            } else if outcome.unknown[i] {
                self.unknown_jobs += 1;
                self.unknown_targets += targets;
            }
        }
        match outcome.error {
            None => Ok(()),
            Some(e) => Err(self.partial(e)),
        }
    }

    fn partial(&self, source: Error) -> Error {
        Error::Enqueue {
            fanout_id: self.fanout_id.clone(),
            queued_jobs: self.queued_jobs,
            queued_targets: self.queued_targets,
            unknown_jobs: self.unknown_jobs,
            unknown_targets: self.unknown_targets,
            source: Box::new(source),
        }
    }
}

/// What [`send_all`] achieved: which bodies the queue accepted, which may or may not be queued
/// (a call with an unknown outcome), and the error that stopped it.
#[derive(Debug)]
pub(crate) struct SendOutcome {
    pub(crate) sent: Vec<bool>,
    pub(crate) unknown: Vec<bool>,
    pub(crate) error: Option<Error>,
}

/// Sends `bodies` (≤ [`MAX_BATCH_ENTRIES`], ≤ [`MAX_BATCH_BYTES`]) in one batch, sending the
/// entries that failed retryably again with backoff, up to `config.send_attempts` times. A call
/// whose outcome is unknown ([`Error::QueueOutcomeUnknown`]) is never sent again: its entries
/// are reported `unknown`.
pub(crate) async fn send_all(
    queue: &dyn JobQueue,
    config: &QueueConfig,
    bodies: Vec<String>,
) -> SendOutcome {
    let mut sent = vec![false; bodies.len()];
    let mut unknown = vec![false; bodies.len()];
    let mut pending: Vec<usize> = (0..bodies.len()).collect();
    let attempts = config.send_attempts.max(1);
    let mut last_error = None;
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::time::sleep(backoff::delay(
                attempt - 1,
                config.initial_backoff,
                config.max_backoff,
            ))
            .await;
        }
        let batch: Vec<String> = pending.iter().map(|&i| bodies[i].clone()).collect();
        let results = match queue.send_batch(&batch).await {
            Ok(results) if results.len() == batch.len() => results,
            Ok(results) => {
                // A backend bug; nothing can be said about the entries.
                let e = Error::Queue {
                    queue: format!("{queue:?}"),
                    retryable: false,
                    source: format!(
                        "send_batch answered {} results for {} entries",
                        results.len(),
                        batch.len()
                    )
                    .into(),
                };
                return SendOutcome {
                    sent,
                    unknown,
                    error: Some(e),
                };
            }
            Err(e @ Error::QueueOutcomeUnknown { .. }) => {
                for &i in &pending {
                    unknown[i] = true;
                }
                return SendOutcome {
                    sent,
                    unknown,
                    error: Some(e),
                };
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e.chain(), attempt, entries = batch.len(), "send_batch failed; retrying");
                last_error = Some(e);
                continue;
            }
            Err(e) => {
                return SendOutcome {
                    sent,
                    unknown,
                    error: Some(e),
                };
            }
        };
        let mut still = Vec::new();
        for (&i, result) in pending.iter().zip(results) {
            match result {
                Ok(()) => sent[i] = true,
                Err(e) if e.is_retryable() => {
                    last_error = Some(e);
                    still.push(i);
                }
                Err(e) => {
                    return SendOutcome {
                        sent,
                        unknown,
                        error: Some(e),
                    };
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            return SendOutcome {
                sent,
                unknown,
                error: None,
            };
        }
        tracing::warn!(
            attempt,
            failed = pending.len(),
            error = %last_error.as_ref().map(|e| e.chain().to_string()).unwrap_or_default(),
            "queue entries failed; retrying"
        );
    }
    SendOutcome {
        sent,
        unknown,
        error: last_error,
    }
}
