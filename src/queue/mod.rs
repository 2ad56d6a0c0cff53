//! Queued fan-out: hand a room that outgrows one invocation to queue workers.
//!
//! A [`Broadcaster::broadcast`](crate::broadcast::Broadcaster::broadcast) runs inside the
//! invocation that calls it: the caller's route waits for it (API Gateway gives a route 29 s),
//! and one function's concurrency posts every message. Queued fan-out splits the work instead:
//!
//! 1. the [`FanoutPlanner`] (the *planner*) reads the room page by page, packs the targets into
//!    [`Job`]s of at most [`QueueConfig::targets_per_job`] targets (500 by default) that fit the
//!    queue's message size, sends them to a [`JobQueue`] in batches, and returns
//!    [`Enqueued`]` { fanout_id, jobs, targets }` — in milliseconds for a room of thousands;
//! 2. [`FanoutWorker`]s — an SQS-triggered Lambda in production (`lambda::sqs::run`, features
//!    `lambda` + `sqs`), tokio tasks on an [`InMemoryQueue`] locally ([`WorkerPool`]) — each
//!    deliver one job at a time through an ordinary [`Broadcaster`](crate::broadcast::Broadcaster)
//!    (retries, throttling, Gone cleanup, deadline).
//!
//! | backend | feature | for |
//! |---|---|---|
//! | [`InMemoryQueue`] | always | tests, the local gateway, demos: SQS's semantics in one process |
//! | `SqsQueue` | `sqs` | production: an Amazon SQS standard queue with a dead-letter queue |
//!
//! In production SQS and Lambda's event source mapping are the scheduler; the crate adds none:
//!
//! ```text
//! send route ── FanoutPlanner::enqueue_broadcast ──▶ SQS queue ──▶ worker Lambda × R ──▶ @connections
//!   (answers "queued" at once)                      │ jobs of ≤ 500 targets   (FanoutWorker → Broadcaster)
//!                                                   └─▶ dead-letter queue after maxReceiveCount
//! ```
//!
//! The planner runs on `SqsQueue::from_env_with(&sdk_config)?` (`FANOUT_QUEUE_URL`; the
//! `SqsQueue` docs have the example and the IAM actions), and the worker is a few lines with
//! `lambda::sqs::run(worker)` (features `lambda` + `sqs`; see
//! `examples/chat/src/bin/lambda_fanout_worker.rs`). The worker answers `batchItemFailures`, so
//! map the event source with `FunctionResponseTypes: [ReportBatchItemFailures]`.
//!
//! The example below runs the same planner and workers in one process, on an
//! [`InMemoryQueue`] — SQS's semantics (visibility timeout, redelivery, dead letters) without AWS:
//!
//! ```
//! use std::sync::Arc;
//! use stateless_ws::broadcast::{Broadcaster, Payload, RecordingSender};
//! use stateless_ws::queue::{FanoutPlanner, FanoutWorker, InMemoryQueue};
//! use stateless_ws::store::{ConnectionStore, InMemoryStore};
//! use stateless_ws::{ConnectionId, Membership, RoomId};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let store = Arc::new(InMemoryStore::new());
//! let room = RoomId::new("general")?;
//! for i in 0..1_200 {
//!     store.join(&Membership::new(ConnectionId::new(format!("c{i}="))?, room.clone())).await?;
//! }
//! let queue = Arc::new(InMemoryQueue::new());
//! let planner = FanoutPlanner::new(store.clone(), queue.clone());
//! let enqueued = planner.enqueue_broadcast(&room, &Payload::text("hi")?, None).await?;
//! assert_eq!((enqueued.jobs, enqueued.targets), (3, 1_200)); // 500 + 500 + 200
//!
//! // Two workers in this process (an SQS-triggered Lambda in production).
//! let sender = RecordingSender::new();
//! let worker = FanoutWorker::new(Broadcaster::new(store, Arc::new(sender.clone())), queue.clone());
//! let pool = queue.spawn_workers(&worker, 2);
//! queue.wait_until_empty().await;
//! pool.shutdown().await;
//! assert_eq!(sender.total_delivered(), 1_200);
//! # Ok::<(), stateless_ws::Error>(()) }).unwrap();
//! ```
//!
//! # Choosing in-line or queued
//!
//! A queued fan-out costs a listing, the jobs and a worker's start before the first post; a
//! small room is served sooner in-line. [`RoomDispatch`] makes the choice for each payload,
//! from a [`Broadcaster`](crate::broadcast::Broadcaster), a [`FanoutPlanner`] and `queue_above`:
//!
//! - a room's size is its number of connections **other than the excluded one** (the sender):
//!   the posts a send makes. Rooms of more than `queue_above` go through the queue, the others
//!   in-line ([`Dispatched::InLine`] or [`Dispatched::Queued`]);
//! - deciding reads the room only until more than `queue_above` recipients are seen, and a
//!   small room is sent to from the records read (no second listing); `queue_above = 0` queues
//!   every room without reading it;
//! - [`send_within`](RoomDispatch::send_within) also withholds a room of more than `max`
//!   recipients ([`Dispatched::TooLarge`]) from the same read:
//!   [`Presence`](crate::presence::Presence) uses it for
//!   [`max_room_size`](crate::presence::PresenceConfig::max_room_size).
//!
//! [`Presence`](crate::presence::Presence) and the chat example send through it, so a room is
//! "large" by the same count everywhere.
//!
//! Where to put `queue_above`: in-line while a room's fan-out fits well inside what the caller
//! can wait — a route has 29 s, and one invocation posts about 2,000 messages/s (see the
//! broadcaster's [limits](crate::broadcast#when-one-invocation-is-not-enough)) — queued when a
//! room can outgrow that, or when the caller must answer at once. The chat example does both:
//! rooms above `CHAT_QUEUE_ABOVE` members go through the queue (`cargo run -p chat --
//! --queue-above 0` queues every room, on an [`InMemoryQueue`]).
//!
//! # Measured
//!
//! `cargo bench --all-features --bench queue`: 10,000 connections, a stand-in management API
//! answering after 5 ms, the real SDK client and SigV4 on loopback, 2 cores shared by
//! everything:
//!
//! | | time | deliveries/s | the caller waits |
//! |---|---|---|---|
//! | in-line broadcast | 1.38 s | 7,241 | 1.38 s |
//! | queued, 1 in-process worker | 1.79 s | 5,574 | 8.5 ms |
//! | queued, 4 in-process workers | 2.05 s | 4,874 | 8.5 ms |
//!
//! On one machine more workers add no CPU — signing and HTTP are the bound — so these numbers
//! show the cost of the queue, not its gain; the gain is the caller's wait (10,000 members
//! enqueue in 8.5 ms) and, on Lambda, R workers with a CPU each.
//!
//! # Sizes
//!
//! A job carries the payload (≤ 128 KB, as text or — when JSON escaping would make it longer —
//! base64, whichever is shorter) and its targets (about 30 bytes each, plus the management
//! endpoint when the record names one). The planner measures each job before adding a target,
//! so a job never exceeds [`JobQueue::max_message_bytes`]: for SQS the queue's
//! `MaximumMessageSize` (1 KiB–1 MiB; `SqsQueue` assumes 256 KiB unless told, which holds 500
//! targets with a full 128 KB payload). Jobs are sent [`MAX_BATCH_ENTRIES`] (10) at a time and
//! at most [`MAX_BATCH_BYTES`] (1 MiB) per call, SQS's `SendMessageBatch` limits; entries the
//! queue fails are sent again with backoff, [`QueueConfig::send_attempts`] times.
//! A failure part-way is [`Error::Enqueue`](crate::Error::Enqueue), with the `queued_jobs` and
//! `queued_targets` so far: what was queued will be delivered. Tell `SqsQueue` the queue's size
//! with `FANOUT_QUEUE_MAX_MESSAGE_BYTES`, or let `read_max_message_bytes()` read the queue's
//! `MaximumMessageSize`.
//!
//! # Delivery semantics
//!
//! - **At least once per job.** A job is deleted from the queue only after its worker is done
//!   with it. A worker that dies mid-job (crash, timeout, lost network) lets the message become
//!   visible again after the queue's visibility timeout, and another worker delivers the job
//!   again — re-sending to **at most that job's targets** ([`QueueConfig::targets_per_job`]).
//! - **No target is lost.** Each target is in exactly one queued job until it is delivered,
//!   found gone, or failed for good. Targets a worker could not deliver now (429/5xx after the
//!   broadcaster's retries, or not attempted by the invocation's deadline) go back to the queue
//!   as a smaller **remainder** job (`generation` + 1) before the original is acknowledged, so
//!   a retry never re-sends what was delivered. If the remainder cannot be enqueued, the whole
//!   job is reported failed and redelivered: duplicates stay bounded by one job.
//!   Tested: a worker killed mid-job (1,000 targets, jobs of 100) left no target without a copy
//!   and caused about 50 duplicates (at most one job).
//! - **Poison jobs go to the dead-letter queue.** A body that is not a job, a job past
//!   [`QueueConfig::max_generations`], or a job that made no progress (every post refused with
//!   403, or throttled throughout) fails, and the queue redelivers it until its
//!   `maxReceiveCount`, then moves it to the dead-letter queue. A job names its fan-out, shard,
//!   room or user and counts — never tokens or authorizer context.
//! - **Failed for good is reported, not retried**: 413 and other refusals, and posts whose
//!   outcome is unknown (they may have arrived; see the broadcaster's
//!   [delivery semantics](crate::broadcast::Broadcaster#delivery-semantics)), are logged and the
//!   job is acknowledged.
//! - **No order across jobs**: jobs are delivered concurrently, remainders later.
//! - **A send with an unknown outcome is not sent again.** When `SendMessageBatch` times out,
//!   loses its connection mid-request or answers unreadably, SQS may have queued the jobs
//!   ([`Error::QueueOutcomeUnknown`](crate::Error::QueueOutcomeUnknown)); standard queues do not
//!   deduplicate, so sending again could queue every job twice and deliver every target twice.
//!   The planner stops and reports them: [`Error::Enqueue`](crate::Error::Enqueue)'s
//!   `unknown_jobs` / `unknown_targets` (maybe queued), beside `queued_jobs` (queued) — the
//!   caller decides, never blindly. A worker whose remainder send has an unknown outcome
//!   acknowledges its job (redelivering the whole job too would duplicate it) and logs WARN with
//!   the counts. A send that failed to connect never left and is retried.
//!
//!   Chosen over the alternatives: FIFO queues deduplicate by `MessageDeduplicationId` for 5
//!   minutes, which would make a resend safe, but cap throughput per message group and cost more
//!   per message; a worker-side "job done" record (a conditional write per job) would cost a
//!   DynamoDB write per job and a table of its own. An unknown outcome is rare (an SQS call
//!   without an answer) and is reported, not silent.
//! - **Within the visibility timeout**: a worker must finish a job before the queue's visibility
//!   timeout ends, or the job comes back to another worker and its targets are sent twice. In a
//!   Lambda the invocation's deadline (function timeout ≤ visibility / 6) bounds it;
//!   [`WorkerPool`] gives each job the receive time + visibility − a margin as its deadline, and
//!   reports a delete that failed anyway ([`PoolReport::failed_deletes`]).
//! - **Departures are announced**: targets found gone are removed from the store (as in-line)
//!   and, with [`FanoutWorker::with_presence`], announced as `"left"` to their rooms; the
//!   outcome lists them (`removed`).
//!
//! # Jobs are input
//!
//! Anyone with `sqs:SendMessage` on the queue can write a job, so the worker checks what it
//! reads (see [`FanoutWorker`]): at most [`QueueConfig::targets_per_job`] targets (else
//! poison), endpoints only from its allow-list (others refused, not posted), with a [`JobKey`]
//! (`FANOUT_JOB_KEY`) the planner's HMAC-SHA256 signature, and without one each room target's
//! membership of the job's room. Bodies never contain what SQS refuses: U+FFFE and U+FFFF are
//! written as `\ufffe` / `\uffff` (serde_json writes them raw), and [`InMemoryQueue`] refuses
//! bodies SQS would refuse.
//!
//! # Throttling across workers
//!
//! API Gateway allows 10,000 requests/s per account and region, shared by every API and by
//! `@connections`. Each worker's broadcaster backs off when 429s show the account is throttled,
//! but the knobs that keep the fleet under the limit are the worker function's **reserved
//! concurrency** R (how many invocations run at once) and the broadcaster's **concurrency** C
//! (posts in flight per invocation): at a post latency L, the fleet posts about R × C / L per
//! second. With C = 64 and L ≈ 30 ms, one invocation posts ≈ 2,100/s, so R = 4 gives ≈ 8,500/s
//! and leaves room for the rest of the account; R = 10 (≈ 21,000/s) would throttle everyone.
//! The event source's **batch size** B (jobs per invocation) does not raise the rate — a worker
//! delivers its jobs one after another — but sets how long an invocation runs (B × K / 2,100 s:
//! 5 jobs of 500 ≈ 1.2 s) and so the function timeout, and the queue's visibility timeout
//! (≥ 6 × the function timeout, AWS's advice for SQS event sources).
//!
//! The seam is [`JobQueue`]: one object-safe trait, so handlers hold `Arc<dyn JobQueue>`.

use std::fmt::{self, Debug};
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;

mod dispatch;
mod job;
mod key;
pub mod memory;
mod planner;
#[cfg(feature = "sqs")]
mod sqs;
mod worker;

pub use dispatch::{Dispatched, RoomDispatch};
pub use job::{Job, JobContext, JobKey};
pub use memory::{InMemoryQueue, PoolReport, WorkerPool};
pub use planner::{Enqueued, FanoutPlanner, QueueConfig};
#[cfg(feature = "sqs")]
pub use sqs::{DEFAULT_MAX_MESSAGE_BYTES, SqsQueue};
pub use worker::{FanoutWorker, JobOutcome, JobSummary};

/// The most entries in one [`JobQueue::send_batch`] call: SQS `SendMessageBatch`'s 10.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// The most bytes of bodies in one [`JobQueue::send_batch`] call: SQS `SendMessageBatch`'s
/// 1 MiB (1,048,576 bytes) in total.
pub const MAX_BATCH_BYTES: usize = 1_048_576;

/// A queue of fan-out jobs: where the [`FanoutPlanner`] and [`FanoutWorker`] put them.
///
/// # Contract
///
/// - [`send_batch`](Self::send_batch) gets at most [`MAX_BATCH_ENTRIES`] bodies of at most
///   [`max_message_bytes`](Self::max_message_bytes) each, [`MAX_BATCH_BYTES`] in total;
/// - it answers one result per body, in order: an entry that failed does not fail the others;
///   `Err` for the call as a whole means no entry is known to be queued;
/// - errors say whether sending again may help ([`Error::is_retryable`](crate::Error::is_retryable));
/// - delivery to workers is at least once: a message received and not deleted comes back.
///
/// `Display` names the backend and its queue (`SqsQueue(https://…/fanout)`), for logs.
#[async_trait]
pub trait JobQueue: Send + Sync + Debug + fmt::Display + 'static {
    /// The largest message body the queue accepts, in bytes.
    fn max_message_bytes(&self) -> usize;

    /// Sends `bodies` as one batch; one result per body, in order.
    async fn send_batch(&self, bodies: &[String]) -> Result<Vec<Result<()>>>;
}

#[async_trait]
impl<T: JobQueue + ?Sized> JobQueue for Arc<T> {
    fn max_message_bytes(&self) -> usize {
        (**self).max_message_bytes()
    }
    async fn send_batch(&self, bodies: &[String]) -> Result<Vec<Result<()>>> {
        (**self).send_batch(bodies).await
    }
}
