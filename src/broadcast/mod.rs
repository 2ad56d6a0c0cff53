//! Pushing messages to clients: the [`Broadcaster`] over a [`ConnectionSender`].
//!
//! "Any function can message any client": a handler, or a service that never saw a WebSocket,
//! looks the recipients up in the [`ConnectionStore`] and posts to each through the API Gateway
//! Management API. The [`Broadcaster`] does that well:
//!
//! - **fast**: posts run concurrently, [`BroadcastConfig::concurrency`] at a time (64 by
//!   default), on all the runtime's threads;
//! - **polite**: a 429 halves the concurrency (at most once per backoff interval) and successes
//!   win it back one slot at a time — the account's 10,000 requests/s are shared by every API
//!   Gateway API of the account and region;
//! - **lossless**: retryable failures (429, 5xx, timeouts) are retried with exponential backoff
//!   and jitter; every target ends in exactly one bucket of the [`BroadcastReport`] — delivered,
//!   gone, failed (with the error) or not attempted (deadline, or a 403 that stopped the run);
//! - **self-cleaning**: connections that answer 410 Gone are removed from **all** their rooms
//!   after the fan-out, in batches; a cleanup failure is in the report, not hidden;
//! - **exactly once**: a user in two rooms gets one copy; duplicate targets are collapsed.
//!
//! ```
//! use std::sync::Arc;
//! use stateless_ws::broadcast::{Broadcaster, Payload, RecordingSender};
//! use stateless_ws::store::{ConnectionStore, InMemoryStore};
//! use stateless_ws::{Membership, ConnectionId, RoomId};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let store = Arc::new(InMemoryStore::new());
//! let sender = RecordingSender::new(); // ApiGatewaySender in production
//! let room = RoomId::new("general")?;
//! for id in ["a=", "b=", "c="] {
//!     store.join(&Membership::new(ConnectionId::new(id)?, room.clone())).await?;
//! }
//! sender.set_gone(&ConnectionId::new("c=")?); // a client that vanished
//!
//! let broadcaster = Broadcaster::new(store.clone(), Arc::new(sender.clone()));
//! let sender_id = ConnectionId::new("a=")?;
//! let report = broadcaster
//!     .broadcast(&room, &Payload::json(&serde_json::json!({"message": "hi"}))?, Some(&sender_id))
//!     .await?;
//! assert_eq!(report.delivered, [ConnectionId::new("b=")?]);
//! assert_eq!(report.gone, [ConnectionId::new("c=")?]);
//! assert_eq!(report.cleaned_records, 1); // c= is out of every room
//! assert_eq!(store.room_connections(&room).await?.len(), 2);
//! # Ok::<(), stateless_ws::Error>(()) }).unwrap();
//! ```

use std::collections::HashSet;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::ids::{ConnectionId, RoomId, UserId};
use crate::store::ConnectionStore;
use crate::store::Membership;

#[cfg(feature = "apigw")]
mod apigw;
mod payload;
mod recording;
mod sender;

#[cfg(feature = "apigw")]
pub use apigw::{ApiGatewaySender, DEFAULT_CALL_TIMEOUT};
pub use payload::Payload;
pub use recording::{InjectedFailure, RecordingSender};
pub use sender::{ConnectionInfo, ConnectionSender, Target};

/// Tuning of a [`Broadcaster`]. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BroadcastConfig {
    /// Posts in flight at once (default 64). With API Gateway's ~10–30 ms per post that is
    /// roughly 2,000–6,000 posts/s, well inside the account's 10,000 requests/s.
    pub concurrency: usize,
    /// The floor adaptive throttling never goes below (default 1).
    pub min_concurrency: usize,
    /// Lower the concurrency on 429s and raise it back on successes (default `true`).
    pub adaptive: bool,
    /// Retries of one post after a retryable failure — 429, 5xx, timeout (default 3, so at most
    /// 4 attempts; 0 disables retries).
    pub retries: u32,
    /// Backoff before the first retry; it doubles per retry, with jitter (default 50 ms).
    pub initial_backoff: Duration,
    /// Longest backoff (default 2 s).
    pub max_backoff: Duration,
    /// Remove connections that answered 410 Gone from all their rooms after the fan-out
    /// (default `true`).
    pub cleanup_gone: bool,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            min_concurrency: 1,
            adaptive: true,
            retries: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            cleanup_gone: true,
        }
    }
}

impl BroadcastConfig {
    /// Sets [`concurrency`](Self::concurrency) (at least 1).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets [`retries`](Self::retries); 0 disables them.
    #[must_use]
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Sets [`initial_backoff`](Self::initial_backoff) and [`max_backoff`](Self::max_backoff).
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets [`adaptive`](Self::adaptive).
    #[must_use]
    pub fn adaptive(mut self, on: bool) -> Self {
        self.adaptive = on;
        self
    }

    /// Sets [`cleanup_gone`](Self::cleanup_gone).
    #[must_use]
    pub fn cleanup_gone(mut self, on: bool) -> Self {
        self.cleanup_gone = on;
        self
    }
}

/// A delivery that failed for good: the connection, the last error, and how many posts were
/// tried.
#[derive(Debug)]
#[non_exhaustive]
pub struct FailedDelivery {
    /// The connection.
    pub connection_id: ConnectionId,
    /// Why the last attempt failed.
    pub error: Error,
    /// Posts tried (1 + retries).
    pub attempts: u32,
}

/// The outcome of one fan-out. Every target is in exactly one of `delivered`, `gone`, `failed`
/// and `not_attempted`.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct BroadcastReport {
    /// Connections that received the message.
    pub delivered: Vec<ConnectionId>,
    /// Connections the management API reported gone (410).
    pub gone: Vec<ConnectionId>,
    /// Connections whose delivery failed for good.
    pub failed: Vec<FailedDelivery>,
    /// Connections never tried: the deadline passed, or a 403 stopped the broadcast.
    pub not_attempted: Vec<ConnectionId>,
    /// Retries made, over all connections.
    pub retries: u64,
    /// Records removed from the store for the gone connections (all their rooms).
    pub cleaned_records: usize,
    /// Why removing the gone connections from the store failed, if it did.
    pub cleanup_error: Option<Error>,
    /// Whether a 403 Forbidden (wrong endpoint, stage or IAM) stopped the broadcast early.
    pub stopped_early: bool,
    /// The concurrency limit at the end (lower than configured after throttling).
    pub final_concurrency: usize,
    /// Wall time of the fan-out and cleanup.
    pub elapsed: Duration,
}

impl BroadcastReport {
    /// Number of targets (all buckets).
    pub fn targets(&self) -> usize {
        self.attempted() + self.not_attempted.len()
    }

    /// Targets posted to at least once: delivered, gone or failed.
    pub fn attempted(&self) -> usize {
        self.delivered.len() + self.gone.len() + self.failed.len()
    }

    /// Whether every target was delivered or found gone, and the cleanup succeeded.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty() && self.not_attempted.is_empty() && self.cleanup_error.is_none()
    }

    /// The configuration error (403 Forbidden) that stopped the broadcast, if any.
    pub fn config_error(&self) -> Option<&Error> {
        self.failed
            .iter()
            .map(|f| &f.error)
            .find(|e| matches!(e, Error::Forbidden { .. }))
    }
}

impl fmt::Display for BroadcastReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} target(s): {} delivered, {} gone ({} record(s) cleaned), {} failed, {} not attempted, {} retries in {:?}",
            self.targets(),
            self.delivered.len(),
            self.gone.len(),
            self.cleaned_records,
            self.failed.len(),
            self.not_attempted.len(),
            self.retries,
            self.elapsed
        )?;
        if self.stopped_early {
            f.write_str(" (stopped early: 403 Forbidden)")?;
        }
        if self.cleanup_error.is_some() {
            f.write_str(" (cleanup failed)")?;
        }
        Ok(())
    }
}

/// Fans messages out to connections; see the [module docs](self).
///
/// Cheap to clone (the store and sender are shared); build one at start-up and keep it.
#[derive(Clone)]
pub struct Broadcaster {
    store: Arc<dyn ConnectionStore>,
    sender: Arc<dyn ConnectionSender>,
    config: BroadcastConfig,
    deadline: Option<Instant>,
    default_endpoint: Option<Arc<str>>,
}

impl fmt::Debug for Broadcaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcaster")
            .field("store", &self.store)
            .field("sender", &self.sender)
            .field("config", &self.config)
            .field("deadline", &self.deadline)
            .field("default_endpoint", &self.default_endpoint)
            .finish()
    }
}

impl Broadcaster {
    /// A broadcaster with the default [`BroadcastConfig`].
    pub fn new(store: Arc<dyn ConnectionStore>, sender: Arc<dyn ConnectionSender>) -> Self {
        Self {
            store,
            sender,
            config: BroadcastConfig::default(),
            deadline: None,
            default_endpoint: None,
        }
    }

    /// Replaces the tuning.
    #[must_use]
    pub fn with_config(mut self, config: BroadcastConfig) -> Self {
        self.config = config;
        self
    }

    /// A copy that stops starting posts at `deadline`: targets not yet tried then are reported as
    /// not attempted, and no retry is scheduled past it. In a Lambda, use the invocation deadline
    /// minus a margin for the cleanup.
    #[must_use]
    pub fn with_deadline(&self, deadline: std::time::Instant) -> Self {
        let mut copy = self.clone();
        copy.deadline = Some(Instant::from_std(deadline));
        copy
    }

    /// A copy that delivers to connections whose record names no management endpoint (records
    /// written by older code) through `endpoint` — typically the current event's
    /// [`management_endpoint`](crate::RequestContext::management_endpoint). Targets that name
    /// one keep it.
    #[must_use]
    pub fn with_default_endpoint(&self, endpoint: impl Into<Arc<str>>) -> Self {
        let mut copy = self.clone();
        copy.default_endpoint = Some(endpoint.into());
        copy
    }

    /// A copy with a deadline `budget` from now.
    #[must_use]
    pub fn with_time_budget(&self, budget: Duration) -> Self {
        self.with_deadline(std::time::Instant::now() + budget)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ConnectionStore> {
        &self.store
    }

    /// The sender.
    pub fn sender(&self) -> &Arc<dyn ConnectionSender> {
        &self.sender
    }

    /// The tuning.
    pub fn config(&self) -> &BroadcastConfig {
        &self.config
    }

    /// Sends `payload` to one connection (retries, and cleanup if it is gone, included).
    pub async fn send(&self, target: impl Into<Target>, payload: &Payload) -> BroadcastReport {
        self.send_to([target.into()], payload).await
    }

    /// Sends `payload` to every connection in `room`, except `exclude` (typically the sender).
    ///
    /// # Errors
    ///
    /// Only when the room cannot be listed; delivery failures are in the report.
    pub async fn broadcast(
        &self,
        room: &RoomId,
        payload: &Payload,
        exclude: Option<&ConnectionId>,
    ) -> Result<BroadcastReport> {
        let span = tracing::info_span!("broadcast", room = %room, targets = tracing::field::Empty);
        async {
            let members = self.store.room_connections(room).await?;
            let targets: Vec<Target> = members
                .iter()
                .filter(|c| Some(&c.connection_id) != exclude)
                .map(Target::from)
                .collect();
            tracing::Span::current().record("targets", targets.len());
            Ok(self.fan_out(targets, payload).await)
        }
        .instrument(span)
        .await
    }

    /// Sends `payload` to every connection of `user`, each exactly once however many rooms it
    /// is in.
    ///
    /// # Errors
    ///
    /// Only when the user's connections cannot be listed.
    pub async fn notify_user(&self, user: &UserId, payload: &Payload) -> Result<BroadcastReport> {
        let span =
            tracing::info_span!("notify_user", user = %user, targets = tracing::field::Empty);
        async {
            let connections = self.store.user_connections(user).await?;
            tracing::Span::current().record("targets", connections.len());
            Ok(self
                .fan_out(connections.iter().map(Target::from).collect(), payload)
                .await)
        }
        .instrument(span)
        .await
    }

    /// Sends `payload` to an explicit list of targets (connection ids, records or [`Target`]s).
    /// Duplicates are sent once.
    pub async fn send_to<T: Into<Target>>(
        &self,
        targets: impl IntoIterator<Item = T>,
        payload: &Payload,
    ) -> BroadcastReport {
        let targets: Vec<Target> = targets.into_iter().map(Into::into).collect();
        let span = tracing::info_span!("send_to", targets = targets.len());
        self.fan_out(targets, payload).instrument(span).await
    }

    /// Sends to the connections of `records` (e.g. a listing you filtered yourself).
    pub async fn send_to_records(
        &self,
        records: &[Membership],
        payload: &Payload,
    ) -> BroadcastReport {
        self.send_to(records.iter().map(Target::from), payload)
            .await
    }

    async fn fan_out(&self, targets: Vec<Target>, payload: &Payload) -> BroadcastReport {
        let started = Instant::now();
        let mut seen = HashSet::with_capacity(targets.len());
        let targets: Vec<Target> = targets
            .into_iter()
            .filter(|t| seen.insert(t.connection_id.clone()))
            .map(|mut t| {
                if t.endpoint.is_none() {
                    t.endpoint.clone_from(&self.default_endpoint);
                }
                t
            })
            .collect();
        drop(seen);

        let limiter = Limiter::new(&self.config);
        let shared = Arc::new(Shared {
            sender: Arc::clone(&self.sender),
            payload: payload.clone(),
            config: self.config.clone(),
            deadline: self.deadline,
            stop: AtomicBool::new(false),
            retries: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            targets: targets.into(),
        });
        // A pool of workers pulling targets off a shared index — no task, lock or map entry per
        // target. The limiter's slots, not the number of workers, bound the posts in flight.
        let workers = self.config.concurrency.max(1).min(shared.targets.len());
        let mut tasks = JoinSet::new();
        for _ in 0..workers {
            tasks.spawn(worker(Arc::clone(&shared), Arc::clone(&limiter)));
        }
        let mut outcomes: Vec<Option<Outcome>> = Vec::new();
        outcomes.resize_with(shared.targets.len(), || None);
        while let Some(done) = tasks.join_next().await {
            // Workers catch their senders' panics, so a join error means the runtime is
            // shutting down: whatever it held stays unaccounted below and is reported as not
            // attempted.
            if let Ok(results) = done {
                for (index, outcome) in results {
                    outcomes[index] = Some(outcome);
                }
            }
        }
        let mut report = BroadcastReport::default();
        for (target, outcome) in shared.targets.iter().zip(outcomes) {
            let id = target.connection_id.clone();
            match outcome.unwrap_or(Outcome::NotAttempted) {
                Outcome::Delivered => report.delivered.push(id),
                Outcome::Gone => report.gone.push(id),
                Outcome::Failed(error, attempts) => report.failed.push(FailedDelivery {
                    connection_id: id,
                    error,
                    attempts,
                }),
                Outcome::NotAttempted => report.not_attempted.push(id),
            }
        }

        report.retries = shared.retries.load(Ordering::Relaxed);
        report.stopped_early = shared.stop.load(Ordering::Relaxed);
        report.final_concurrency = limiter.limit();
        if self.config.cleanup_gone && !report.gone.is_empty() {
            match self.store.remove_connections(&report.gone).await {
                Ok(removed) => report.cleaned_records = removed.len(),
                Err(e) => {
                    tracing::warn!(error = %e, gone = report.gone.len(), "removing gone connections failed");
                    report.cleanup_error = Some(e);
                }
            }
        }
        report.elapsed = started.elapsed();
        tracing::info!(
            targets = report.targets(),
            delivered = report.delivered.len(),
            gone = report.gone.len(),
            failed = report.failed.len(),
            not_attempted = report.not_attempted.len(),
            retries = report.retries,
            cleaned = report.cleaned_records,
            stopped_early = report.stopped_early,
            duration_ms = u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
            "fan-out finished"
        );
        report
    }
}

/// State shared by the delivery tasks of one fan-out.
struct Shared {
    sender: Arc<dyn ConnectionSender>,
    payload: Payload,
    config: BroadcastConfig,
    deadline: Option<Instant>,
    /// Set by a 403: configuration errors fail every post the same way.
    stop: AtomicBool,
    retries: AtomicU64,
    /// Index of the next target to take.
    next: AtomicUsize,
    targets: Arc<[Target]>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

enum Outcome {
    Delivered,
    Gone,
    Failed(Error, u32),
    NotAttempted,
}

/// One worker: takes targets until none is left, the deadline passes or a 403 stops the run,
/// and returns `(target index, outcome)` for each target it took.
async fn worker(shared: Arc<Shared>, limiter: Arc<Limiter>) -> Vec<(usize, Outcome)> {
    let mut results = Vec::new();
    loop {
        if shared.stopped() {
            break;
        }
        let Some(slot) = limiter.acquire_until(shared.deadline).await else {
            break;
        };
        if shared.stopped() {
            break;
        }
        let index = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some(target) = shared.targets.get(index) else {
            break;
        };
        let delivery = deliver(&shared, &limiter, target, slot);
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
        results.push((index, outcome));
    }
    results
}

/// Posts to one target, retrying retryable failures; holds a concurrency slot while posting and
/// gives it back while backing off.
async fn deliver(shared: &Shared, limiter: &Arc<Limiter>, target: &Target, slot: Slot) -> Outcome {
    let mut slot = Some(slot);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let error = match shared.sender.post(target, &shared.payload).await {
            Ok(()) => {
                limiter.on_success();
                return Outcome::Delivered;
            }
            Err(Error::Gone { .. }) => return Outcome::Gone,
            Err(e) => e,
        };
        let retryable = match &error {
            Error::Forbidden { .. } => {
                shared.stop.store(true, Ordering::Relaxed);
                false
            }
            Error::Throttled { .. } => {
                limiter.on_throttle();
                true
            }
            Error::Delivery { retryable, .. } => *retryable,
            _ => false,
        };
        if !retryable || attempt > shared.config.retries || shared.stopped() {
            return Outcome::Failed(error, attempt);
        }
        let wait = crate::backoff::delay(
            attempt,
            shared.config.initial_backoff,
            shared.config.max_backoff,
        );
        if shared.deadline.is_some_and(|d| Instant::now() + wait >= d) {
            return Outcome::Failed(error, attempt);
        }
        drop(slot.take());
        tokio::time::sleep(wait).await;
        match limiter.acquire_until(shared.deadline).await {
            Some(s) => slot = Some(s),
            None => return Outcome::Failed(error, attempt),
        }
        shared.retries.fetch_add(1, Ordering::Relaxed);
    }
}

/// A concurrency limit that can shrink (429s) and grow back (successes): additive increase,
/// multiplicative decrease over a semaphore. Shrinking takes effect as in-flight posts finish
/// (their permits are retired instead of returned).
struct Limiter {
    semaphore: Arc<Semaphore>,
    state: Mutex<LimiterState>,
    max: usize,
    min: usize,
    adaptive: bool,
    cooldown: Duration,
}

struct LimiterState {
    limit: usize,
    /// Permits to retire as they come back, after a decrease.
    debt: usize,
    successes: usize,
    last_cut: Option<Instant>,
}

/// One concurrency slot; returning it honours a pending decrease.
struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    limiter: Arc<Limiter>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let mut state = self.limiter.lock();
        if state.debt > 0 {
            state.debt -= 1;
            permit.forget();
        }
    }
}

impl Limiter {
    fn new(config: &BroadcastConfig) -> Arc<Self> {
        let max = config.concurrency.max(1);
        Arc::new(Self {
            semaphore: Arc::new(Semaphore::new(max)),
            state: Mutex::new(LimiterState {
                limit: max,
                debt: 0,
                successes: 0,
                last_cut: None,
            }),
            max,
            min: config.min_concurrency.clamp(1, max),
            adaptive: config.adaptive,
            cooldown: config.initial_backoff.max(Duration::from_millis(10)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn limit(&self) -> usize {
        self.lock().limit
    }

    /// A slot, or `None` if `deadline` passes first.
    async fn acquire_until(self: &Arc<Self>, deadline: Option<Instant>) -> Option<Slot> {
        let acquire = Arc::clone(&self.semaphore).acquire_owned();
        let permit = match deadline {
            None => acquire.await.ok()?,
            Some(d) => {
                if Instant::now() >= d {
                    return None;
                }
                tokio::select! {
                    biased;
                    permit = acquire => permit.ok()?,
                    () = tokio::time::sleep_until(d) => return None,
                }
            }
        };
        Some(Slot {
            permit: Some(permit),
            limiter: Arc::clone(self),
        })
    }

    fn on_success(&self) {
        if !self.adaptive {
            return;
        }
        let mut state = self.lock();
        if state.limit >= self.max {
            return;
        }
        state.successes += 1;
        // One more slot per "window" of successes at the current limit.
        if state.successes >= state.limit {
            state.successes = 0;
            state.limit += 1;
            if state.debt > 0 {
                state.debt -= 1;
            } else {
                self.semaphore.add_permits(1);
            }
        }
    }

    fn on_throttle(&self) {
        if !self.adaptive {
            return;
        }
        let now = Instant::now();
        let mut state = self.lock();
        // Many posts in flight see the same burst of 429s: cut once per cooldown.
        if state
            .last_cut
            .is_some_and(|t| now.duration_since(t) < self.cooldown)
        {
            return;
        }
        let new_limit = (state.limit / 2).max(self.min);
        // Retire idle permits now; the rest as in-flight posts finish.
        let cut = state.limit - new_limit;
        state.debt += cut - self.semaphore.forget_permits(cut);
        state.limit = new_limit;
        state.successes = 0;
        state.last_cut = Some(now);
        tracing::debug!(limit = new_limit, "throttled: lowering concurrency");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limiter_halves_on_throttle_and_grows_back() {
        let config = BroadcastConfig::default().concurrency(8);
        let limiter = Limiter::new(&config);
        let slots: Vec<Slot> =
            futures_util::future::join_all((0..8).map(|_| limiter.acquire_until(None)))
                .await
                .into_iter()
                .map(Option::unwrap)
                .collect();
        limiter.on_throttle();
        assert_eq!(limiter.limit(), 4);
        limiter.on_throttle();
        assert_eq!(limiter.limit(), 4, "one cut per cooldown");
        drop(slots);
        assert_eq!(
            limiter.semaphore.available_permits(),
            4,
            "retired permits are not returned"
        );
        for _ in 0..4 {
            limiter.on_success();
        }
        assert_eq!(limiter.limit(), 5);
        assert_eq!(limiter.semaphore.available_permits(), 5);
    }

    #[tokio::test]
    async fn limiter_respects_the_floor_and_the_deadline() {
        let mut config = BroadcastConfig::default()
            .concurrency(2)
            .backoff(Duration::ZERO, Duration::ZERO);
        config.min_concurrency = 2;
        let limiter = Limiter::new(&config);
        limiter.on_throttle();
        assert_eq!(limiter.limit(), 2);
        let _a = limiter.acquire_until(None).await.unwrap();
        let _b = limiter.acquire_until(None).await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(20);
        assert!(limiter.acquire_until(Some(deadline)).await.is_none());
    }
}
