//! [`FanoutWorker`]: delivers one job through the [`Broadcaster`], and the SQS Lambda glue.

use std::fmt;
use std::sync::Arc;

use tracing::Instrument;

use super::JobQueue;
use super::job::{Job, JobKey};
use super::planner::{QueueConfig, send_all};
use crate::broadcast::{Broadcaster, Target};
use crate::error::Error;
use crate::presence::Presence;
use crate::store::Membership;

/// Membership look-ups in flight at once when the worker checks a room job's targets.
const MEMBERSHIP_CONCURRENCY: usize = 32;

/// Which job an outcome is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobSummary {
    /// The fan-out.
    pub fanout_id: String,
    /// The job's index in it.
    pub shard: u32,
    /// Its remainder generation.
    pub generation: u32,
    /// Its targets.
    pub targets: usize,
}

impl From<&Job> for JobSummary {
    fn from(job: &Job) -> Self {
        Self {
            fanout_id: job.fanout_id().to_owned(),
            shard: job.shard(),
            generation: job.generation(),
            targets: job.len(),
        }
    }
}

/// What became of one job; [`is_ack`](Self::is_ack) says whether to delete it from the queue.
#[derive(Debug)]
#[non_exhaustive]
pub enum JobOutcome {
    /// Every target was delivered, found gone, or failed for good (reported in the log).
    /// Delete the message.
    Completed {
        /// The job.
        job: JobSummary,
        /// Targets delivered.
        delivered: usize,
        /// Targets found gone (and removed from the store).
        gone: usize,
        /// Targets failed for good (413, unknown outcome, other refusals).
        failed: usize,
        /// The records the Gone cleanup removed (every room of every gone target): the
        /// departures, announced as `"left"` when the worker has a
        /// [`Presence`] ([`FanoutWorker::with_presence`]).
        removed: Vec<Membership>,
        /// Targets the worker refused to post to: an endpoint not in its allow-list, or (with
        /// the membership check) not a member of the job's room. Logged at ERROR.
        refused: usize,
    },
    /// Some targets could not be delivered now; they were enqueued as a remainder job of the
    /// next generation. Delete the message.
    Requeued {
        /// The job.
        job: JobSummary,
        /// Targets delivered.
        delivered: usize,
        /// Targets found gone.
        gone: usize,
        /// Targets failed for good.
        failed: usize,
        /// The records the Gone cleanup removed (see `Completed`).
        removed: Vec<Membership>,
        /// Targets refused (see `Completed`).
        refused: usize,
        /// Targets in the remainder job.
        remainder: usize,
    },
    /// The job failed as a whole and must come back from the queue (and, after its
    /// `maxReceiveCount`, go to the dead-letter queue): a body that is not a job, a job of more
    /// than [`QueueConfig::targets_per_job`] targets, a missing or wrong signature (worker with a
    /// [`JobKey`]), a generation past [`QueueConfig::max_generations`], no progress at all (403, throttled throughout,
    /// out of time), or a remainder that could not be enqueued. Do not delete the message.
    Failed {
        /// The job, when the body could be read.
        job: Option<JobSummary>,
        /// Why.
        error: Error,
    },
}

impl JobOutcome {
    /// Whether the message is done with and should be deleted.
    pub fn is_ack(&self) -> bool {
        !matches!(self, JobOutcome::Failed { .. })
    }
}

/// Delivers fan-out jobs: [`process`](Self::process) one body at a time. Cheap to clone.
///
/// The worker's [`Broadcaster`] does the posting — concurrency, throttling, retries, Gone
/// cleanup, and the deadline ([`with_deadline`](Self::with_deadline)).
/// The queue is where remainders go: the same queue the jobs come from.
///
/// # Jobs are input
///
/// Anyone with `sqs:SendMessage` on the queue can write a job, so the worker checks each one
/// before posting anything:
///
/// - **size**: a job of more than [`QueueConfig::targets_per_job`] targets (the planner never
///   writes one) fails as poison and goes to the dead-letter queue — give planner and worker the
///   same `QueueConfig`;
/// - **endpoints**: a target naming a management endpoint is posted to only if the endpoint is
///   allowed ([`with_allowed_endpoints`](Self::with_allowed_endpoints); by default the
///   sender's [default endpoint](crate::broadcast::ConnectionSender::default_endpoint) —
///   `APIGW_MANAGEMENT_URL` for `ApiGatewaySender::from_env` — and the broadcaster's
///   [`default_endpoint`](Broadcaster::default_endpoint)); others are refused: not posted,
///   counted in the outcome's `refused` and logged at ERROR. Targets naming none go to the
///   sender's default. So a forged job cannot make the worker send a signed request to an
///   endpoint of the forger's choosing;
/// - **signature**: with a [`JobKey`] ([`with_job_key`](Self::with_job_key), the planner's key)
///   a job must carry the planner's HMAC-SHA256, or it fails as poison. Then the job is
///   authentic: its room, targets and payload are the planner's;
/// - **room membership**: without a key the job's room cannot be trusted, so by default the
///   worker checks that each target of a room job is a member of that room
///   ([`ConnectionStore::membership`](crate::store::ConnectionStore::membership), one read per
///   target, 32 at a time) and refuses the others — a job for room `general` cannot reach
///   another room's members. Set [`with_membership_check`](Self::with_membership_check) to
///   choose. What it cannot stop: a forged job naming any room with that room's members, or a
///   user job (`JobContext::user`) or a job of explicit targets, which have no room to check —
///   only a key stops those. Use a key wherever the queue's `sqs:SendMessage` is not limited
///   to the planner.
#[derive(Clone)]
pub struct FanoutWorker {
    broadcaster: Broadcaster,
    queue: Arc<dyn JobQueue>,
    config: QueueConfig,
    key: Option<JobKey>,
    allowed_endpoints: Option<Vec<Arc<str>>>,
    membership_check: Option<bool>,
    presence: Option<Presence>,
}

impl fmt::Debug for FanoutWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanoutWorker")
            .field("broadcaster", &self.broadcaster)
            .field("queue", &self.queue)
            .field("config", &self.config)
            .field("key", &self.key)
            .field("allowed_endpoints", &self.allowed_endpoints)
            .field("membership_check", &self.membership_check)
            .field("presence", &self.presence)
            .finish()
    }
}

impl FanoutWorker {
    /// A worker delivering through `broadcaster` and re-enqueueing remainders on `queue`, with
    /// the default [`QueueConfig`].
    pub fn new(broadcaster: Broadcaster, queue: Arc<dyn JobQueue>) -> Self {
        Self {
            broadcaster,
            queue,
            config: QueueConfig::default(),
            key: None,
            allowed_endpoints: None,
            membership_check: None,
            presence: None,
        }
    }

    /// Announces the departures the Gone cleanup finds through `presence`: one `"left"` per
    /// room to its remaining members ([`Presence::left`]), as the in-line path does with
    /// [`Presence::departed`] — without it, members of queued rooms never learn that a gone
    /// member left. The announcement is best-effort: a failure is logged at WARN and does not
    /// fail the job. The worker's deadline ([`with_deadline`](Self::with_deadline)) applies to
    /// it too. Build `presence` with the same `queue_above` and planner as the senders', so a
    /// large room's `"left"` goes through the queue as well.
    #[must_use]
    pub fn with_presence(mut self, presence: Presence) -> Self {
        self.presence = Some(presence);
        self
    }

    /// Runs only jobs signed with `key` (the planner's; see [`JobKey`]), and signs the
    /// remainders it enqueues. `None` (the default) runs unsigned jobs.
    #[must_use]
    pub fn with_job_key(mut self, key: impl Into<Option<JobKey>>) -> Self {
        self.key = key.into();
        self
    }

    /// Allows targets to name these management endpoints (the APIs this worker serves, e.g.
    /// `https://abc.execute-api.eu-west-1.amazonaws.com/prod`; a trailing `/` does not matter),
    /// instead of the default: the sender's and the broadcaster's default endpoints.
    #[must_use]
    pub fn with_allowed_endpoints<E: Into<Arc<str>>>(
        mut self,
        endpoints: impl IntoIterator<Item = E>,
    ) -> Self {
        self.allowed_endpoints = Some(endpoints.into_iter().map(Into::into).collect());
        self
    }

    /// Whether to check that each target of a room job is a member of the job's room (one
    /// store read per target) and refuse those that are not. Default: on without a
    /// [`JobKey`], off with one (a signed job's room is the planner's).
    #[must_use]
    pub fn with_membership_check(mut self, check: bool) -> Self {
        self.membership_check = Some(check);
        self
    }

    fn endpoint_allowed(&self, endpoint: &str) -> bool {
        let want = endpoint.trim_end_matches('/');
        let same = |e: &str| e.trim_end_matches('/') == want;
        match &self.allowed_endpoints {
            Some(list) => list.iter().any(|e| same(e)),
            None => {
                self.broadcaster
                    .sender()
                    .default_endpoint()
                    .is_some_and(same)
                    || self.broadcaster.default_endpoint().is_some_and(same)
            }
        }
    }

    /// Sets the tuning `config` (the generation limit and the re-enqueue retries).
    #[must_use]
    pub fn with_config(mut self, config: QueueConfig) -> Self {
        self.config = config;
        self
    }

    /// Ends deliveries by `deadline` (see
    /// [`Broadcaster::with_deadline`]): targets not attempted by then go to the remainder.
    /// In a Lambda: `worker.with_deadline(lambda::deadline(&context))` (feature `lambda`;
    /// `lambda::sqs::run` does it for you). `None` means no deadline.
    #[must_use]
    pub fn with_deadline(mut self, deadline: impl Into<Option<std::time::Instant>>) -> Self {
        let deadline = deadline.into();
        self.broadcaster = self.broadcaster.with_deadline(deadline);
        self.presence = self.presence.map(|p| p.with_deadline(deadline));
        self
    }

    /// The broadcaster.
    pub fn broadcaster(&self) -> &Broadcaster {
        &self.broadcaster
    }

    /// Delivers the job in `body`; see [`JobOutcome`] for what to do with the message.
    pub async fn process(&self, body: &str) -> JobOutcome {
        let job = match Job::parse(body) {
            Ok(job) => job,
            Err(error) => {
                tracing::error!(error = %error.chain(), "not a fan-out job; it will go to the dead-letter queue");
                return JobOutcome::Failed { job: None, error };
            }
        };
        let summary = JobSummary::from(&job);
        if let Some(key) = &self.key
            && let Err(error) = job.verify(key)
        {
            tracing::error!(error = %error.chain(), fanout_id = %summary.fanout_id, "fan-out job refused; it will go to the dead-letter queue");
            return JobOutcome::Failed {
                job: Some(summary),
                error,
            };
        }
        let span = tracing::info_span!(
            "fanout_job",
            queue = %self.queue,
            fanout_id = %summary.fanout_id,
            shard = summary.shard,
            generation = summary.generation,
            room = job.context().room.as_ref().map(|r| r.as_str()),
            targets = summary.targets,
        );
        self.deliver(job, summary).instrument(span).await
    }

    async fn deliver(&self, job: Job, summary: JobSummary) -> JobOutcome {
        if job.len() > self.config.targets_per_job {
            let error = Error::invalid_body(
                format!(
                    "fan-out job: field `targets`: {} targets, more than the {} a job may hold",
                    job.len(),
                    self.config.targets_per_job
                ),
                None,
            );
            tracing::error!(error = %error.chain(), "fan-out job refused; it will go to the dead-letter queue");
            return JobOutcome::Failed {
                job: Some(summary),
                error,
            };
        }
        if job.generation() > self.config.max_generations {
            let error = Error::Queue {
                queue: format!("{:?}", self.queue),
                retryable: false,
                source: format!(
                    "fan-out job gave up: generation {} is past the limit of {}; {} target(s) undelivered",
                    job.generation(),
                    self.config.max_generations,
                    job.len()
                )
                .into(),
            };
            tracing::error!(error = %error.chain(), "fan-out job past its generation limit");
            return JobOutcome::Failed {
                job: Some(summary),
                error,
            };
        }
        let payload = match job.payload() {
            Ok(p) => p,
            Err(error) => {
                return JobOutcome::Failed {
                    job: Some(summary),
                    error,
                };
            }
        };
        let (targets, refused, mut leftover) = self.screen(&job).await;
        let mut report = self.broadcaster.send_to(targets, &payload).await;
        let removed = std::mem::take(&mut report.removed);
        self.announce_departures(&removed).await;

        // Retry later: not attempted (deadline, or stopped by a 403) and failures safe to repeat.
        leftover.extend(report.not_attempted.iter().cloned().map(Target::from));
        let mut failed = 0;
        let mut forbidden = None;
        for f in report.failed {
            if matches!(f.error, Error::Forbidden { .. }) {
                leftover.push(Target::from(f.connection_id));
                forbidden.get_or_insert(f.error);
            } else if f.error.is_retryable() {
                leftover.push(Target::from(f.connection_id));
            } else {
                tracing::warn!(connection = %f.connection_id, error = %f.error.chain(), attempts = f.attempts, "delivery failed for good");
                failed += 1;
            }
        }
        let (delivered, gone) = (report.delivered_count, report.gone.len());
        if leftover.is_empty() {
            tracing::info!(delivered, gone, failed, refused, "fan-out job done");
            return JobOutcome::Completed {
                job: summary,
                delivered,
                gone,
                failed,
                removed,
                refused,
            };
        }
        if delivered + gone + failed + refused == 0 {
            // Nothing was sent: redelivering the job as it is duplicates nothing, and the
            // queue's visibility timeout is the backoff.
            let error = forbidden.unwrap_or_else(|| Error::Queue {
                queue: format!("{:?}", self.queue),
                retryable: true,
                source: format!(
                    "no target of the job could be delivered ({} left to retry)",
                    leftover.len()
                )
                .into(),
            });
            tracing::warn!(error = %error.chain(), "fan-out job made no progress; the queue will redeliver it");
            return JobOutcome::Failed {
                job: Some(summary),
                error,
            };
        }
        // Targets keep the endpoint their job named; a not-attempted id lost it in the report.
        let endpoints: std::collections::HashMap<_, _> = job
            .targets()
            .into_iter()
            .map(|t| (t.connection_id, t.endpoint))
            .collect();
        for t in &mut leftover {
            if let Some(endpoint) = endpoints.get(&t.connection_id) {
                t.endpoint.clone_from(endpoint);
            }
        }
        let remainder = job.remainder(&leftover);
        let outcome = send_all(
            self.queue.as_ref(),
            &self.config,
            vec![remainder.to_signed_body(self.key.as_ref())],
        )
        .await;
        match outcome.error {
            None | Some(Error::QueueOutcomeUnknown { .. }) => {
                match &outcome.error {
                    None => tracing::info!(
                        delivered,
                        gone,
                        failed,
                        refused,
                        remainder = leftover.len(),
                        "fan-out job partly done; the rest re-enqueued"
                    ),
                    // The remainder may well be queued: redelivering the whole job as well would
                    // send every target twice. Acknowledged, and said loudly.
                    Some(error) => tracing::warn!(
                        error = %error.chain(),
                        delivered,
                        remainder = leftover.len(),
                        "re-enqueueing the remainder got no answer; it may or may not be queued and is not sent again: if it was lost, these targets miss this message"
                    ),
                }
                JobOutcome::Requeued {
                    job: summary,
                    delivered,
                    gone,
                    failed,
                    removed,
                    refused,
                    remainder: leftover.len(),
                }
            }
            Some(error) => {
                tracing::error!(error = %error.chain(), "re-enqueueing the remainder failed; the queue will redeliver the whole job");
                JobOutcome::Failed {
                    job: Some(summary),
                    error,
                }
            }
        }
    }

    async fn announce_departures(&self, removed: &[Membership]) {
        let Some(presence) = &self.presence else {
            return;
        };
        if removed.is_empty() {
            return;
        }
        match presence.left(removed).await {
            Ok(report) => tracing::debug!(
                removed = removed.len(),
                announcements = report.announcements.len(),
                "departures announced"
            ),
            Err(error) => {
                tracing::warn!(error = %error.chain(), removed = removed.len(), "announcing the departures failed");
            }
        }
    }

    /// Splits the job's targets into those to post to, the number refused (endpoint not
    /// allowed, or not a member of the job's room), and those to retry later (membership could
    /// not be read).
    async fn screen(&self, job: &Job) -> (Vec<Target>, usize, Vec<Target>) {
        use futures_util::stream::{self, StreamExt as _};

        let mut refused = 0;
        let mut targets = Vec::with_capacity(job.len());
        for target in job.targets() {
            match target.endpoint.as_deref() {
                Some(endpoint) if !self.endpoint_allowed(endpoint) => {
                    tracing::error!(connection = %target.connection_id, endpoint, "target refused: its endpoint is not one this worker serves");
                    refused += 1;
                }
                _ => targets.push(target),
            }
        }
        let check = self.membership_check.unwrap_or(self.key.is_none());
        let Some(room) = job.context().room.as_ref().filter(|_| check) else {
            return (targets, refused, Vec::new());
        };
        let store = self.broadcaster.store();
        let looked_up: Vec<(Target, crate::error::Result<bool>)> = stream::iter(targets)
            .map(|target| async move {
                let member = store
                    .membership(&target.connection_id, room)
                    .await
                    .map(|m| m.is_some());
                (target, member)
            })
            .buffered(MEMBERSHIP_CONCURRENCY)
            .collect()
            .await;
        let (mut members, mut retry) = (Vec::new(), Vec::new());
        for (target, member) in looked_up {
            match member {
                Ok(true) => members.push(target),
                Ok(false) => {
                    tracing::error!(connection = %target.connection_id, %room, "target refused: not a member of the job's room");
                    refused += 1;
                }
                Err(error) => {
                    tracing::warn!(connection = %target.connection_id, %error, "membership could not be read; the target is retried later");
                    retry.push(target);
                }
            }
        }
        (members, refused, retry)
    }
}
