//! [`InMemoryQueue`]: SQS's delivery semantics in one process, and [`WorkerPool`] to drain it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{FanoutWorker, JobQueue, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use crate::error::{Error, Result};

/// A message handed to a consumer by [`InMemoryQueue::receive`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Received {
    /// The message's id (stable across receives, like SQS's `MessageId`).
    pub message_id: String,
    /// This receive's handle, for [`InMemoryQueue::delete`] (new on every receive).
    pub receipt: String,
    /// The body.
    pub body: String,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
}

/// A message moved to the dead-letter list after `max_receive_count` receives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The message's id.
    pub message_id: String,
    /// The body.
    pub body: String,
    /// Receives before it was moved.
    pub receive_count: u32,
}

#[derive(Debug)]
struct Message {
    id: String,
    body: String,
    receive_count: u32,
}

#[derive(Debug, Default)]
struct State {
    visible: VecDeque<Message>,
    /// By receipt: the message and when it becomes visible again.
    in_flight: HashMap<String, (Message, Instant)>,
    dead: Vec<DeadLetter>,
    next_id: u64,
    next_receipt: u64,
}

impl State {
    /// Messages whose visibility timeout passed go back to the end of the queue.
    fn expire(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .in_flight
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(receipt, _)| receipt.clone())
            .collect();
        for receipt in expired {
            if let Some((message, _)) = self.in_flight.remove(&receipt) {
                self.visible.push_back(message);
            }
        }
    }

    fn next_visibility(&self) -> Option<Instant> {
        self.in_flight.values().map(|(_, at)| *at).min()
    }
}

/// A job queue in memory with SQS's semantics: at-least-once delivery with a visibility timeout,
/// explicit deletes, and a dead-letter list after `max_receive_count` receives. For tests, the
/// local gateway and demos; production uses `SqsQueue` (feature `sqs`).
///
/// - [`receive`](Self::receive) hides each message it returns for the visibility timeout (30 s
///   by default, SQS's); [`delete`](Self::delete) removes it; a message not deleted in time is
///   visible again and its receive count grows;
/// - [`send_batch`](JobQueue::send_batch) refuses what SQS refuses: more than 10 entries or
///   1 MiB per call, a message over the queue's size, and (failing the whole call, as SQS's
///   `InvalidMessageContents`) a body with a character outside `#x9 | #xA | #xD |
///   #x20–#xD7FF | #xE000–#xFFFD | #x10000–#x10FFFF` — U+FFFE, U+FFFF, control characters;
/// - a message received more than `max_receive_count` times (5 by default) moves to the
///   [`dead_letters`](Self::dead_letters) instead of being handed out;
/// - [`spawn_workers`](Self::spawn_workers) runs N [`FanoutWorker`]s on it as tokio tasks.
///
/// Time is Tokio's clock, so `tokio::time::pause` moves visibility timeouts in tests. Cheap to
/// clone (clones share the queue).
#[derive(Clone)]
pub struct InMemoryQueue {
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    visibility_timeout: Duration,
    max_receive_count: u32,
    max_message_bytes: usize,
}

impl fmt::Display for InMemoryQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InMemoryQueue")
    }
}

impl fmt::Debug for InMemoryQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        write!(
            f,
            "InMemoryQueue({} visible, {} in flight, {} dead)",
            state.visible.len(),
            state.in_flight.len(),
            state.dead.len()
        )
    }
}

impl Default for InMemoryQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryQueue {
    /// An empty queue: 30 s visibility timeout, 5 receives before the dead-letter list, 1 MiB
    /// messages (SQS's defaults).
    pub fn new() -> Self {
        Self {
            state: Arc::default(),
            changed: Arc::default(),
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 5,
            max_message_bytes: MAX_BATCH_BYTES,
        }
    }

    /// With `timeout` as the visibility timeout.
    #[must_use]
    pub fn with_visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// With `count` receives before a message moves to the dead-letter list (at least 1).
    #[must_use]
    pub fn with_max_receive_count(mut self, count: u32) -> Self {
        self.max_receive_count = count.max(1);
        self
    }

    /// With `bytes` as the largest message accepted.
    #[must_use]
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Up to `max` messages, waiting up to `wait` for the first one (long polling). Each is
    /// hidden for the visibility timeout.
    pub async fn receive(&self, max: usize, wait: Duration) -> Vec<Received> {
        let until = Instant::now() + wait;
        loop {
            // Registered before looking, so a send between the look and the wait is not missed.
            let changed = self.changed.notified();
            let next_visible = {
                let mut state = self.lock();
                let now = Instant::now();
                state.expire(now);
                let dead_before = state.dead.len();
                let mut out = Vec::new();
                while out.len() < max {
                    let Some(mut message) = state.visible.pop_front() else {
                        break;
                    };
                    message.receive_count += 1;
                    if message.receive_count > self.max_receive_count {
                        state.dead.push(DeadLetter {
                            message_id: message.id,
                            body: message.body,
                            receive_count: message.receive_count - 1,
                        });
                        continue;
                    }
                    state.next_receipt += 1;
                    let receipt = format!("{}#{}", message.id, state.next_receipt);
                    out.push(Received {
                        message_id: message.id.clone(),
                        receipt: receipt.clone(),
                        body: message.body.clone(),
                        receive_count: message.receive_count,
                    });
                    state
                        .in_flight
                        .insert(receipt, (message, now + self.visibility_timeout));
                }
                // A message dead-lettered here changes the queue too: `wait_until_empty` may be
                // waiting for exactly that.
                if !out.is_empty() || state.dead.len() > dead_before {
                    self.changed.notify_waiters();
                }
                if !out.is_empty() || now >= until {
                    return out;
                }
                state.next_visibility()
            };
            let wake = next_visible.map_or(until, |at| at.min(until));
            let _ = tokio::time::timeout_at(wake, changed).await;
        }
    }

    /// Deletes a received message; `false` when the receipt is unknown or stale (its
    /// visibility timeout passed and it went back to the queue).
    pub fn delete(&self, receipt: &str) -> bool {
        let removed = self.lock().in_flight.remove(receipt).is_some();
        if removed {
            self.changed.notify_waiters();
        }
        removed
    }

    /// Makes a received message visible again at once (like SQS's `ChangeMessageVisibility`
    /// to 0); `false` when the receipt is unknown or stale.
    pub fn release(&self, receipt: &str) -> bool {
        let mut state = self.lock();
        let Some((message, _)) = state.in_flight.remove(receipt) else {
            return false;
        };
        state.visible.push_back(message);
        drop(state);
        self.changed.notify_waiters();
        true
    }

    /// Messages waiting to be received (visible now or once their timeout passes) plus those
    /// received and not yet deleted; the dead-letter list is not counted.
    pub fn len(&self) -> usize {
        let state = self.lock();
        state.visible.len() + state.in_flight.len()
    }

    /// Whether [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages received and not deleted.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }

    /// The messages moved to the dead-letter list.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().dead.clone()
    }

    /// Waits until the queue is empty: every message deleted or dead-lettered.
    pub async fn wait_until_empty(&self) {
        loop {
            let changed = self.changed.notified();
            if self.is_empty() {
                return;
            }
            // In-flight messages may come back by timeout without anyone calling us. Expired ones
            // go back first, or `next_visibility` is in the past and this loop spins.
            let next = {
                let mut state = self.lock();
                state.expire(Instant::now());
                state.next_visibility()
            };
            match next {
                Some(at) => {
                    let _ = tokio::time::timeout_at(at, changed).await;
                }
                None => changed.await,
            }
        }
    }

    /// Starts `workers` tokio tasks, each receiving one job at a time and handing it to
    /// `worker`; a job is deleted when its outcome is
    /// [acknowledged](super::JobOutcome::is_ack), otherwise left to come back after the
    /// visibility timeout. [`WorkerPool::shutdown`] stops them after the jobs in hand.
    ///
    /// **Each job gets a deadline inside its visibility timeout**: the receive time plus the
    /// timeout less a margin ([`visibility_deadline`]: a fifth of the timeout, at most 5 s), set
    /// on the worker with [`FanoutWorker::with_deadline`] (replacing any deadline it had). What
    /// a slow endpoint leaves undone by then goes back to the queue as a remainder job, as in a
    /// Lambda near its deadline, and the job is deleted while its receipt is still valid — so a
    /// slow job is not received again by another worker and sent twice. A delete that fails
    /// anyway (the receipt went stale) is logged at WARN with the cause and counted in
    /// [`WorkerPool::report`].
    ///
    /// Measured (test `a_job_slower_than_its_visibility_timeout_is_not_delivered_again`: 10
    /// targets, 250 ms a post one at a time, 1 s visibility, 2 workers): without the deadline
    /// every target received 5 copies and the job was dead-lettered; with it every target
    /// receives exactly one, over 10 jobs, no dead letter, no failed delete (the broadcaster's
    /// [`in_flight_reserve`](crate::broadcast::BroadcastConfig::in_flight_reserve) lets the post
    /// in flight be answered before the deadline). `benches/slow_endpoint.rs` measures the same
    /// against the old loop.
    pub fn spawn_workers(&self, worker: &FanoutWorker, workers: usize) -> WorkerPool {
        let (stop, stopped) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let tasks = (0..workers)
            .map(|_| {
                let queue = self.clone();
                let worker = worker.clone();
                let counters = Arc::clone(&counters);
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    loop {
                        let batch = tokio::select! {
                            _ = stopped.wait_for(|s| *s) => break,
                            // One job at a time: a job received with others would wait its
                            // turn while its visibility timeout runs, and come back to another
                            // worker as a duplicate.
                            batch = queue.receive(1, Duration::from_secs(20)) => batch,
                        };
                        for message in batch {
                            let received = Instant::now();
                            let deadline =
                                received + visibility_deadline(queue.visibility_timeout);
                            let outcome = worker
                                .clone()
                                .with_deadline(deadline.into_std())
                                .process(&message.body)
                                .await;
                            counters.count(&outcome);
                            if !outcome.is_ack() {
                                counters.failed.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            if !queue.delete(&message.receipt) {
                                counters.failed_deletes.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(
                                    queue = %queue,
                                    message_id = %message.message_id,
                                    took_ms = u64::try_from(received.elapsed().as_millis()).unwrap_or(u64::MAX),
                                    visibility_timeout_ms = u64::try_from(queue.visibility_timeout.as_millis()).unwrap_or(u64::MAX),
                                    "deleting a finished job failed: its receipt is stale (the visibility \
                                     timeout passed before the job finished), so the message is visible \
                                     again and will be delivered again"
                                );
                            }
                        }
                        if *stopped.borrow() {
                            break;
                        }
                    }
                })
            })
            .collect();
        WorkerPool {
            stop,
            tasks,
            counters,
        }
    }
}

/// The time a worker may spend on a job received with visibility timeout `timeout`: the
/// timeout less a margin for re-enqueueing the remainder and deleting the message — a fifth of
/// it, at most 5 s (30 s → 25 s; 1 s → 800 ms).
pub fn visibility_deadline(timeout: Duration) -> Duration {
    timeout - (timeout / 5).min(Duration::from_secs(5))
}

#[derive(Debug, Default)]
struct Counters {
    processed: AtomicU64,
    failed: AtomicU64,
    failed_deletes: AtomicU64,
    delivered: AtomicU64,
    failed_targets: AtomicU64,
}

impl Counters {
    fn count(&self, outcome: &super::JobOutcome) {
        use super::JobOutcome;
        self.processed.fetch_add(1, Ordering::Relaxed);
        let (delivered, failed) = match outcome {
            JobOutcome::Completed {
                delivered, failed, ..
            }
            | JobOutcome::Requeued {
                delivered, failed, ..
            } => (*delivered, *failed),
            JobOutcome::Failed { .. } => (0, 0),
        };
        self.delivered
            .fetch_add(delivered as u64, Ordering::Relaxed);
        self.failed_targets
            .fetch_add(failed as u64, Ordering::Relaxed);
    }

    fn report(&self) -> PoolReport {
        PoolReport {
            processed: self.processed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            failed_deletes: self.failed_deletes.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed_targets: self.failed_targets.load(Ordering::Relaxed),
        }
    }
}

/// What a [`WorkerPool`]'s workers did so far ([`WorkerPool::report`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolReport {
    /// Jobs handed to the worker.
    pub processed: u64,
    /// Jobs whose outcome was a failure (left to come back, or to go to the dead letters).
    pub failed: u64,
    /// Finished jobs whose delete failed because the receipt was stale: the job outlived its
    /// visibility timeout and will be delivered again. Should stay 0; see the WARN logs.
    pub failed_deletes: u64,
    /// Targets delivered, over all jobs.
    pub delivered: u64,
    /// Targets failed for good, over all jobs (e.g. posts cut in flight by a job's deadline:
    /// their outcome is unknown and, at most once, they are not sent again).
    pub failed_targets: u64,
}

#[async_trait]
impl JobQueue for InMemoryQueue {
    fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    async fn send_batch(&self, bodies: &[String]) -> Result<Vec<Result<()>>> {
        let total: usize = bodies.iter().map(String::len).sum();
        if bodies.len() > MAX_BATCH_ENTRIES || total > MAX_BATCH_BYTES {
            return Err(Error::Queue {
                queue: "InMemoryQueue".to_owned(),
                retryable: false,
                source: format!(
                    "a batch of {} entries and {total} bytes exceeds {MAX_BATCH_ENTRIES} entries or {MAX_BATCH_BYTES} bytes",
                    bodies.len()
                )
                .into(),
            });
        }
        // SQS validates the characters of every entry before queueing any: one refused
        // character fails the call (`InvalidMessageContents`), as SqsQueue reports it.
        for body in bodies {
            if let Some(c) = super::job::sqs_refused_char(body) {
                return Err(Error::Queue {
                    queue: "InMemoryQueue".to_owned(),
                    retryable: false,
                    source: format!(
                        "InvalidMessageContents: invalid character '#x{:X}' in a message body; SQS allows \
                         #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
                        c as u32
                    )
                    .into(),
                });
            }
        }
        let mut state = self.lock();
        let results = bodies
            .iter()
            .map(|body| {
                if body.len() > self.max_message_bytes {
                    return Err(Error::Queue {
                        queue: "InMemoryQueue".to_owned(),
                        retryable: false,
                        source: format!(
                            "a message of {} bytes exceeds the queue's {} bytes",
                            body.len(),
                            self.max_message_bytes
                        )
                        .into(),
                    });
                }
                state.next_id += 1;
                let id = format!("m{}", state.next_id);
                state.visible.push_back(Message {
                    id,
                    body: body.clone(),
                    receive_count: 0,
                });
                Ok(())
            })
            .collect();
        drop(state);
        self.changed.notify_waiters();
        Ok(results)
    }
}

/// Worker tasks started by [`InMemoryQueue::spawn_workers`].
#[derive(Debug)]
pub struct WorkerPool {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl WorkerPool {
    /// Stops receiving and waits for the jobs in hand to finish (a job interrupted here would
    /// come back anyway, after the visibility timeout); returns the final [`report`](Self::report).
    pub async fn shutdown(self) -> PoolReport {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.counters.report()
    }

    /// What the workers did so far: jobs processed and failed, deletes that failed, targets
    /// delivered and failed.
    pub fn report(&self) -> PoolReport {
        self.counters.report()
    }

    /// Kills the workers at once, mid-job — what a crash does: their jobs come back after the
    /// visibility timeout. For tests of redelivery.
    pub fn abort(self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> Vec<String> {
        vec![s.to_owned()]
    }

    #[tokio::test(start_paused = true)]
    async fn unacknowledged_messages_come_back_then_go_to_the_dead_letters() {
        let q = InMemoryQueue::new()
            .with_visibility_timeout(Duration::from_secs(10))
            .with_max_receive_count(2);
        q.send_batch(&body("job")).await.unwrap().remove(0).unwrap();
        let first = q.receive(10, Duration::ZERO).await;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].receive_count, 1);
        assert!(
            q.receive(10, Duration::from_secs(1)).await.is_empty(),
            "hidden"
        );
        // Long polling wakes when the visibility timeout ends.
        let second = q.receive(10, Duration::from_secs(20)).await;
        assert_eq!(second[0].receive_count, 2);
        assert!(!q.delete(&first[0].receipt), "a stale receipt");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(q.receive(10, Duration::ZERO).await.is_empty());
        let dead = q.dead_letters();
        assert_eq!((dead.len(), dead[0].body.as_str()), (1, "job"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn deleted_messages_are_gone_and_limits_are_sqs_limits() {
        let q = InMemoryQueue::new().with_max_message_bytes(4);
        let results = q
            .send_batch(&["ok".to_owned(), "too long".to_owned()])
            .await
            .unwrap();
        assert!(results[0].is_ok() && results[1].is_err());
        let got = q.receive(10, Duration::ZERO).await;
        assert!(q.delete(&got[0].receipt));
        q.wait_until_empty().await;
        let eleven = vec!["x".to_owned(); 11];
        assert!(q.send_batch(&eleven).await.is_err());
        for refused in ["\u{FFFE}", "a\u{FFFF}", "\u{1}", "\u{8}"] {
            let err = q
                .send_batch(&["ok".to_owned(), refused.to_owned()])
                .await
                .unwrap_err();
            assert!(err.to_string().contains("InMemoryQueue"), "{err}");
            assert!(!err.is_retryable());
        }
        assert!(q.is_empty(), "a refused call queues nothing");
        let allowed = "\t\n\r \u{D7FF}\u{E000}\u{FFFD}\u{10000}\u{10FFFF}".to_owned();
        let roomy = InMemoryQueue::new();
        roomy
            .send_batch(&[allowed])
            .await
            .unwrap()
            .remove(0)
            .unwrap();
    }
}
