//! The worker pool of one fan-out: workers pull targets off a bounded channel fed by a
//! [`source`](super::source) (a list, or a room read page by page), post through the sender
//! under the [`Limiter`]'s slots, retry what is retryable, and put every target in exactly one
//! bucket of the [`BroadcastReport`].

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures_util::FutureExt;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::config::BroadcastConfig;
use super::limiter::{Answer, Limiter, Slot};
use super::payload::Payload;
use super::report::{BroadcastReport, FailedDelivery};
use super::sender::{ConnectionSender, Target};
use super::source::{Listed, Source};
use crate::error::Error;

/// Targets waiting for a worker, at most: with the page being read, this bounds a fan-out's
/// memory whatever the room's size. Large enough that the next page is read while the workers
/// post this one.
fn queued_targets(config: &BroadcastConfig) -> usize {
    config.concurrency.saturating_mul(4).max(1024)
}

/// Posts `payload` to every target `source` yields and reports the outcome of each.
///
/// `deadlines.start_by` is when posts stop starting (the source stops reading then too, and no
/// retry is begun after it); `deadlines.cut` is when the posts still in flight are abandoned.
///
/// Fills the delivery buckets, `retries`, `stopped_early`, `final_concurrency` and what the
/// source could not list (`unread_from`, `listing_error`); the cleanup of gone connections and
/// the timing are the caller's.
pub(super) async fn run(
    sender: Arc<dyn ConnectionSender>,
    payload: Payload,
    config: BroadcastConfig,
    deadlines: Deadlines,
    source: Source,
) -> BroadcastReport {
    let Deadlines { start_by, cut } = deadlines;
    let limiter = Limiter::new(&config);
    let (tx, rx) = mpsc::channel::<Target>(queued_targets(&config));
    let rx = Arc::new(Mutex::new(rx));
    let shared = Arc::new(Shared {
        sender,
        payload,
        config,
        start_by,
        cut,
        stop: AtomicBool::new(false),
        retries: AtomicU64::new(0),
        targets: Arc::clone(&rx),
    });
    // A fixed pool of workers pulling off one channel — no task or map entry per target. The
    // limiter's slots, not the number of workers, bound the posts in flight.
    // A room of 10 gets 10 workers, not `concurrency` (64) of which 54 find the channel
    // closed: spawning them cost more than the posts' own bookkeeping (the simulator's
    // Centrifugo scenario, 50,000 broadcasts a second to rooms of 10).
    let workers = source
        .max_targets()
        .map_or(limiter.max(), |n| n.clamp(1, limiter.max()));
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        tasks.spawn(worker(Arc::clone(&shared), Arc::clone(&limiter)));
    }
    let stop = Arc::clone(&shared);
    let workers = async move {
        let mut report = BroadcastReport::default();
        while let Some(done) = tasks.join_next().await {
            // Workers catch their senders' panics, so a join error means the runtime is
            // shutting down; what that worker had posted is then missing from the counts.
            if let Ok(part) = done {
                report.merge(part);
            }
        }
        // Every worker has stopped (done, deadline or 403): the source must stop too, and
        // whatever it still holds is not attempted.
        stop.targets.lock().await.close();
        report
    };
    let (listed, mut report) =
        tokio::join!(source.feed(tx, start_by, || shared.stopped()), workers);
    let Listed {
        unsent,
        unread_from,
        listing_error,
    } = listed;
    report.not_attempted.extend(unsent);
    // Targets queued but never taken.
    let mut rx = rx.lock().await;
    while let Ok(target) = rx.try_recv() {
        report.not_attempted.push(target.connection_id);
    }
    report.unread_from = unread_from;
    report.listing_error = listing_error;
    report.retries = shared.retries.load(Ordering::Relaxed);
    report.stopped_early = shared.stopped();
    report.final_concurrency = limiter.limit();
    report
}

/// When a fan-out's posting ends: no post starts after `start_by`, and a post still in flight
/// at `cut` is abandoned (`start_by` ≤ `cut`; `None`: never).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Deadlines {
    pub(super) start_by: Option<Instant>,
    pub(super) cut: Option<Instant>,
}

/// State shared by the workers of one fan-out.
struct Shared {
    sender: Arc<dyn ConnectionSender>,
    payload: Payload,
    config: BroadcastConfig,
    start_by: Option<Instant>,
    cut: Option<Instant>,
    /// Set by a 403: configuration errors fail every post the same way.
    stop: AtomicBool,
    retries: AtomicU64,
    /// Where the workers take their targets from.
    targets: Arc<Mutex<mpsc::Receiver<Target>>>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The next target, or `None` when there is none left or the deadline passed first.
    async fn next_target(&self) -> Option<Target> {
        let next = async { self.targets.lock().await.recv().await };
        match self.start_by {
            None => next.await,
            Some(deadline) => tokio::time::timeout_at(deadline, next).await.ok().flatten(),
        }
    }
}

/// Where one target ended up; maps onto the report's buckets.
enum Outcome {
    Delivered,
    Gone,
    /// The last error and the number of posts tried.
    Failed(Error, u32),
}

/// One worker: takes targets until none is left, the deadline passes or a 403 stops the run,
/// and returns the buckets of the targets it took.
async fn worker(shared: Arc<Shared>, limiter: Arc<Limiter>) -> BroadcastReport {
    let mut report = BroadcastReport::default();
    loop {
        if shared.stopped() {
            break;
        }
        let Some(slot) = limiter.acquire_until(shared.start_by).await else {
            break;
        };
        if shared.stopped() {
            break;
        }
        let Some(target) = shared.next_target().await else {
            break;
        };
        if shared.stopped() {
            report.not_attempted.push(target.connection_id);
            break;
        }
        let delivery = deliver(&shared, &limiter, &target, slot);
        let outcome = match AssertUnwindSafe(delivery).catch_unwind().await {
            Ok(outcome) => outcome,
            // A sender that panicked: the target still gets its bucket.
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                Outcome::Failed(
                    Error::Delivery {
                        connection_id: target.connection_id.clone(),
                        status: None,
                        retryable: false,
                        source: format!("the sender panicked: {what}").into(),
                    },
                    1,
                )
            }
        };
        let id = target.connection_id;
        match outcome {
            Outcome::Delivered => {
                report.delivered_count += 1;
                if shared.config.list_delivered {
                    report.delivered.push(id);
                }
            }
            Outcome::Gone => report.gone.push(id),
            Outcome::Failed(error, attempts) => report.failed.push(FailedDelivery {
                connection_id: id,
                error,
                attempts,
            }),
        }
    }
    report
}

/// Posts to one target, retrying retryable failures; holds a concurrency slot while posting and
/// gives it back while backing off.
async fn deliver(shared: &Shared, limiter: &Arc<Limiter>, target: &Target, slot: Slot) -> Outcome {
    let mut slot = Some(slot);
    let mut attempt = 0u32;
    // Failed attempts by kind, each with its own retry budget: 429s that were this connection's
    // own (the account was not throttled), 429s of a throttled account, everything else.
    let mut own_throttles = 0u32;
    let mut account_throttles = 0u32;
    let mut other_failures = 0u32;
    loop {
        attempt += 1;
        let post = shared.sender.post(target, &shared.payload);
        let answer = match shared.cut {
            None => post.await,
            // The deadline bounds the whole call: a post still in flight at the cut is
            // abandoned. It may have been delivered, so it is failed with an unknown outcome
            // rather than reported "not attempted", and never repeated (there is no time left
            // anyway).
            Some(deadline) => tokio::time::timeout_at(deadline, post)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::OutcomeUnknown {
                        connection_id: target.connection_id.clone(),
                        reason: "cut in flight at the broadcast deadline".into(),
                        source: None,
                    })
                }),
        };
        let first_attempt = attempt == 1;
        let error = match answer {
            Ok(()) => {
                limiter.on_answer(first_attempt, Answer::Other);
                limiter.on_success();
                return Outcome::Delivered;
            }
            Err(Error::Gone { .. }) => {
                limiter.on_answer(first_attempt, Answer::Other);
                return Outcome::Gone;
            }
            Err(e) => e,
        };
        let mut backoff = shared.config.initial_backoff;
        // The retry of this kind about to be made (1 for the first), and whether it may be.
        let (nth, retryable) = match &error {
            Error::Forbidden { .. } => {
                shared.stop.store(true, Ordering::Relaxed);
                (0, false)
            }
            Error::Throttled { .. } => {
                // The account's throttling slows everyone down (the limiter cuts) and is waited
                // out; a connection's own 429 is retried soon, on its own, without slowing
                // anyone.
                if limiter.on_answer(first_attempt, Answer::Throttled) {
                    account_throttles += 1;
                    let budget = shared.config.account_throttle_retries;
                    (account_throttles, account_throttles <= budget)
                } else {
                    backoff = shared.config.connection_throttle_backoff;
                    own_throttles += 1;
                    let budget = shared.config.connection_throttle_retries;
                    (own_throttles, own_throttles <= budget)
                }
            }
            // No answer: nothing to learn about throttling.
            // May have been delivered: repeating it risks a second copy (see the config field).
            Error::OutcomeUnknown { .. } => {
                other_failures += 1;
                let allowed = shared.config.retry_unknown_outcome;
                (
                    other_failures,
                    allowed && other_failures <= shared.config.retries,
                )
            }
            Error::Delivery {
                retryable, status, ..
            } => {
                // Only an answer (a status) says something about the account.
                if status.is_some() {
                    limiter.on_answer(first_attempt, Answer::Other);
                }
                other_failures += 1;
                (
                    other_failures,
                    *retryable && other_failures <= shared.config.retries,
                )
            }
            _ => {
                limiter.on_answer(first_attempt, Answer::Other);
                (0, false)
            }
        };
        if !retryable || shared.stopped() {
            return Outcome::Failed(error, attempt);
        }
        let wait = crate::backoff::delay(nth, backoff, shared.config.backoff_cap());
        if shared.start_by.is_some_and(|d| Instant::now() + wait >= d) {
            return Outcome::Failed(error, attempt);
        }
        drop(slot.take());
        tokio::time::sleep(wait).await;
        match limiter.acquire_until(shared.start_by).await {
            Some(s) => slot = Some(s),
            None => return Outcome::Failed(error, attempt),
        }
        shared.retries.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::sync::atomic::AtomicUsize;

    use async_trait::async_trait;

    use super::*;
    use crate::broadcast::{Broadcaster, ConnectionInfo};
    use crate::ids::{ConnectionId, RoomId};
    use crate::store::{ConnectionStore, InMemoryStore, Membership};

    /// Records the most tasks alive on the runtime while a post is made.
    #[derive(Debug, Default)]
    struct TaskCounting {
        most: AtomicUsize,
    }

    impl fmt::Display for TaskCounting {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("TaskCounting")
        }
    }

    #[async_trait]
    impl ConnectionSender for TaskCounting {
        async fn post(&self, _target: &Target, _payload: &Payload) -> crate::Result<()> {
            let alive = tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks();
            self.most.fetch_max(alive, Ordering::Relaxed);
            Ok(())
        }

        async fn get(&self, _target: &Target) -> crate::Result<ConnectionInfo> {
            Ok(ConnectionInfo::default())
        }

        async fn delete(&self, _target: &Target) -> crate::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_small_room_gets_no_more_workers_than_members() {
        let store = Arc::new(InMemoryStore::new());
        let room = RoomId::new("small").unwrap();
        for i in 0..3 {
            let id = ConnectionId::new(format!("c{i}=")).unwrap();
            store
                .join(&Membership::new(id, room.clone()))
                .await
                .unwrap();
        }
        let sender = Arc::new(TaskCounting::default());
        let config = BroadcastConfig {
            concurrency: 64,
            ..BroadcastConfig::default()
        };
        let report = Broadcaster::new(store, Arc::clone(&sender) as Arc<dyn ConnectionSender>)
            .with_config(config)
            .broadcast(&room, &Payload::text("hi").unwrap(), None)
            .await
            .unwrap();
        assert_eq!(report.delivered_count, 3);
        // One worker per member; before, 64 were spawned for any room.
        let most = sender.most.load(Ordering::Relaxed);
        assert!((1..=3).contains(&most), "{most} tasks alive");
    }
}
