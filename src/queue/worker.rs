//! [`FanoutWorker`]: delivers one job through the [`Broadcaster`], and the SQS Lambda glue.

use std::fmt;
use std::sync::Arc;

use tracing::Instrument;

use super::JobQueue;
use super::job::Job;
use super::planner::{QueueConfig, send_all};
use crate::broadcast::{Broadcaster, Target};
use crate::error::Error;

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
        /// Targets in the remainder job.
        remainder: usize,
    },
    /// The job failed as a whole and must come back from the queue (and, after its
    /// `maxReceiveCount`, go to the dead-letter queue): a body that is not a job, a generation
    /// past [`QueueConfig::max_generations`], no progress at all (403, throttled throughout,
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
#[derive(Clone)]
pub struct FanoutWorker {
    broadcaster: Broadcaster,
    queue: Arc<dyn JobQueue>,
    config: QueueConfig,
}

impl fmt::Debug for FanoutWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanoutWorker")
            .field("broadcaster", &self.broadcaster)
            .field("queue", &self.queue)
            .field("config", &self.config)
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
        self.broadcaster = self.broadcaster.with_deadline(deadline);
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
        let report = self.broadcaster.send_to(job.targets(), &payload).await;

        // Retry later: not attempted (deadline, or stopped by a 403) and failures safe to repeat.
        let mut leftover: Vec<Target> = report
            .not_attempted
            .iter()
            .cloned()
            .map(Target::from)
            .collect();
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
            tracing::info!(delivered, gone, failed, "fan-out job done");
            return JobOutcome::Completed {
                job: summary,
                delivered,
                gone,
                failed,
            };
        }
        if delivered + gone + failed == 0 {
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
        let outcome = send_all(self.queue.as_ref(), &self.config, vec![remainder.to_body()]).await;
        match outcome.error {
            None => {
                tracing::info!(
                    delivered,
                    gone,
                    failed,
                    remainder = leftover.len(),
                    "fan-out job partly done; the rest re-enqueued"
                );
                JobOutcome::Requeued {
                    job: summary,
                    delivered,
                    gone,
                    failed,
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
}
