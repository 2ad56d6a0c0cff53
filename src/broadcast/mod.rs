//! Pushing messages to clients: the [`Broadcaster`] over a [`ConnectionSender`].
//!
//! "Any function can message any client": a handler, or a service that never saw a WebSocket,
//! looks the recipients up in the [`ConnectionStore`] and posts to each through the API Gateway
//! Management API. The [`Broadcaster`] does that well:
//!
//! - **fast**: posts run concurrently, [`BroadcastConfig::concurrency`] at a time (64 by
//!   default), on all the runtime's threads;
//! - **polite**: when 429s show that the *account* is throttled (many distinct connections, a
//!   rising share of the answers) the concurrency halves, at most once per backoff interval, and
//!   successes win it back one slot at a time — the account's 10,000 requests/s are shared by
//!   every API Gateway API of the account and region. A few connections answering 429 on their
//!   own (a client that does not read fills its buffer) slow nobody else: they are retried on a
//!   short backoff and fail after their own retries;
//! - **bounded in time**: with a [deadline](Broadcaster::with_deadline) the call returns by it,
//!   whatever the endpoint does — posts in flight are cut, and the cleanup keeps a reserved slice;
//! - **accounted for**: failures that are safe to repeat (429, 5xx, connection refused) are
//!   retried with exponential backoff and jitter; every target ends in exactly one bucket of the
//!   [`BroadcastReport`] — delivered, gone, failed (with the error) or not attempted (deadline,
//!   or a 403 that stopped the run). What a post with no answer means is in
//!   [delivery semantics](Broadcaster#delivery-semantics): at most once by default, never
//!   "exactly once";
//! - **self-cleaning**: connections that answer 410 Gone are removed from **all** their rooms
//!   (except clients still in their `$connect`, which answer 410 too: see
//!   [`connect_grace`](BroadcastConfig::connect_grace))
//!   after the fan-out, in batches; a cleanup failure is in the report, not hidden;
//! - **one post per connection**: a user in two rooms is posted to once; duplicate targets are
//!   collapsed.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, SystemTime};
//! use stateless_ws::broadcast::{Broadcaster, Payload, RecordingSender};
//! use stateless_ws::clock::ManualClock;
//! use stateless_ws::store::{ConnectionStore, InMemoryStore};
//! use stateless_ws::{Membership, ConnectionId, RoomId};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let clock = ManualClock::new(SystemTime::now()); // the system clock in production
//! let store = Arc::new(InMemoryStore::new().with_clock(clock.clone()));
//! let sender = RecordingSender::new(); // ApiGatewaySender in production
//! let room = RoomId::new("general")?;
//! for id in ["a=", "b=", "c="] {
//!     store.join(&Membership::new(ConnectionId::new(id)?, room.clone())).await?;
//! }
//! sender.set_gone(&ConnectionId::new("c=")?); // a client that vanished
//! clock.advance(Duration::from_secs(3_600)); // an hour later: past the connect grace
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
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::ids::{ConnectionId, RoomId, UserId};
use crate::store::ConnectionStore;
use crate::store::Membership;
use source::{RoomSource, Source};

#[cfg(feature = "apigw")]
mod apigw;
mod config;
mod fan_out;
mod limiter;
mod payload;
mod recording;
mod report;
mod sender;
mod source;

#[cfg(feature = "apigw")]
pub use apigw::{ApiGatewaySender, DEFAULT_CALL_TIMEOUT};
pub use config::BroadcastConfig;
pub use payload::Payload;
pub use recording::{InjectedFailure, RecordingSender};
pub use report::{BroadcastReport, FailedDelivery};
pub use sender::{ConnectionInfo, ConnectionSender, Target};

/// Fans messages out to connections; see the [module docs](self).
///
/// Cheap to clone (the store and sender are shared); build one at start-up and keep it.
///
/// The `with_*` methods ([`with_config`](Self::with_config),
/// [`with_deadline`](Self::with_deadline), [`with_time_budget`](Self::with_time_budget),
/// [`with_default_endpoint`](Self::with_default_endpoint)) are builder setters: they take
/// `self` and return it changed, as every `with_*` in this crate does. A broadcaster kept for
/// the process lives on, and each invocation clones its own:
/// `self.broadcaster.clone().with_deadline(lambda::deadline(&context))`.
///
/// # Delivery semantics
///
/// A post to the management API has three kinds of outcome:
///
/// - **an answer**: 200 (delivered), 410 (gone), 429 / 5xx (not taken — retried), 403 / 413
///   (refused — not retried);
/// - **never sent**: the connection to the endpoint could not be made (refused, unreachable,
///   DNS, TLS) — retried, since the message cannot have arrived;
/// - **unknown**: the request may have been sent but no answer came — the call timed out, the
///   connection dropped mid-request, or the deadline cut the post in flight
///   ([`Error::OutcomeUnknown`]). API Gateway may well have
///   delivered it.
///
/// By default an unknown outcome is **not** repeated: each connection receives a message **at
/// most once**, and the target is reported failed with `OutcomeUnknown` (it may have the message
/// anyway). With [`BroadcastConfig::retry_unknown_outcome`] the post is repeated within
/// [`retries`](BroadcastConfig::retries): **at least once** as long as one attempt gets through,
/// at the price of possible duplicates — give messages an id clients deduplicate on. Neither
/// setting is "exactly once", and none can be: API Gateway's `PostToConnection` has no
/// idempotency key.
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

    /// Sets the tuning `config`.
    #[must_use]
    pub fn with_config(mut self, config: BroadcastConfig) -> Self {
        self.config = config;
        self
    }

    /// Makes every call end by `deadline`, whatever the endpoint does.
    ///
    /// Posting stops [`cleanup_reserve`](BroadcastConfig::cleanup_reserve) before it (at most
    /// half the time left), so that the cleanup of gone connections still runs:
    ///
    /// - targets not yet tried then are reported **not attempted** — nothing was sent;
    /// - posts in flight then are abandoned and reported **failed** with
    ///   [`Error::OutcomeUnknown`] — the request may have
    ///   reached API Gateway, so "not attempted" would be untrue — and are not repeated;
    /// - no retry is scheduled past it;
    /// - the cleanup runs until `deadline`; if it cannot finish, the report's `cleanup_error`
    ///   says so.
    ///
    /// In a Lambda: `broadcaster.with_deadline(lambda::deadline(&context))` (feature `lambda`),
    /// the invocation's deadline less a margin for the answer. `None` means no deadline.
    #[must_use]
    pub fn with_deadline(mut self, deadline: impl Into<Option<std::time::Instant>>) -> Self {
        self.deadline = deadline.into().map(Instant::from_std);
        self
    }

    /// Delivers to connections whose record names no management endpoint (records
    /// written by older code) through `endpoint` — typically the current event's
    /// [`management_endpoint`](crate::RequestContext::management_endpoint). Targets that name
    /// one keep it.
    ///
    /// The order, once: the record's `managementEndpoint`, then this per-invocation default,
    /// then the sender's process-wide default (`ApiGatewaySender::with_default_endpoint`, or
    /// `APIGW_MANAGEMENT_URL` read by `ApiGatewaySender::from_env`).
    #[must_use]
    pub fn with_default_endpoint(mut self, endpoint: impl Into<Arc<str>>) -> Self {
        self.default_endpoint = Some(endpoint.into());
        self
    }

    /// Sets a deadline `budget` from now.
    ///
    /// "Now" is Tokio's clock, so a budget follows a paused test clock
    /// (`tokio::time::pause`) exactly.
    #[must_use]
    pub fn with_time_budget(mut self, budget: Duration) -> Self {
        self.deadline = Some(Instant::now() + budget);
        self
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
            // The first page is read before anything is sent: a room that cannot be listed is
            // the call's error. The rest is read while the workers post.
            let first = self.store.room_page(room, None).await?;
            let source = Source::Room(RoomSource {
                store: Arc::clone(&self.store),
                room: room.clone(),
                exclude: exclude.cloned(),
                default_endpoint: self.default_endpoint.clone(),
                first,
            });
            let report = self.fan_out(source, payload).await;
            tracing::Span::current().record("targets", report.targets());
            Ok(report)
        }
        .instrument(span)
        .await
    }

    /// Sends `payload` to every connection of `user`, posting to each once however many rooms it
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
                .fan_out(self.list(connections.iter().map(Target::from)), payload)
                .await)
        }
        .instrument(span)
        .await
    }

    /// Sends `payload` to an explicit list of targets: [`ConnectionId`]s, [`Target`]s, or
    /// [`Membership`] records, owned or borrowed (e.g. a listing you filtered
    /// yourself; each record's management endpoint is kept). Duplicates are sent once.
    pub async fn send_to<T: Into<Target>>(
        &self,
        targets: impl IntoIterator<Item = T>,
        payload: &Payload,
    ) -> BroadcastReport {
        let source = self.list(targets.into_iter().map(Into::into));
        let span = tracing::info_span!(
            "send_to",
            targets = match &source {
                Source::List(t) => t.len(),
                Source::Room(_) => 0,
            }
        );
        self.fan_out(source, payload).instrument(span).await
    }

    /// A list source: duplicates dropped, the default endpoint filled in.
    fn list(&self, targets: impl Iterator<Item = Target>) -> Source {
        let mut seen = HashSet::new();
        Source::List(
            targets
                .filter(|t| seen.insert(t.connection_id.clone()))
                .map(|mut t| {
                    if t.endpoint.is_none() {
                        t.endpoint.clone_from(&self.default_endpoint);
                    }
                    t
                })
                .collect(),
        )
    }

    /// Removes the gone connections from every room — except those with a record younger than
    /// [`connect_grace`](BroadcastConfig::connect_grace), which are most likely clients still
    /// in their `$connect` (API Gateway answers 410 to them too); those go to `kept`.
    async fn remove_gone(
        &self,
        gone: &[ConnectionId],
        kept: &mut Vec<ConnectionId>,
    ) -> Result<Vec<Membership>> {
        let grace = self.config.connect_grace.as_secs();
        if grace == 0 {
            return self.store.remove_connections(gone).await;
        }
        let now = crate::clock::unix_seconds(self.store.clock().now());
        let mut old = Vec::with_capacity(gone.len());
        for id in gone {
            let records = self.store.connection_rooms(id).await?;
            let connecting = records.iter().any(|r| {
                r.connected_at
                    .is_some_and(|t| t.saturating_add(grace) > now)
            });
            if connecting {
                kept.push(id.clone());
            } else {
                old.push(id.clone());
            }
        }
        if !kept.is_empty() {
            tracing::info!(
                kept = kept.len(),
                "gone connections younger than the connect grace are kept"
            );
        }
        if old.is_empty() {
            return Ok(Vec::new());
        }
        self.store.remove_connections(&old).await
    }

    async fn fan_out(&self, source: Source, payload: &Payload) -> BroadcastReport {
        let started = Instant::now();

        // Posting stops early enough to leave the cleanup its reserved slice of the deadline.
        let post_deadline = self.deadline.map(|deadline| {
            if !self.config.cleanup_gone {
                return deadline;
            }
            let left = deadline.saturating_duration_since(started);
            deadline - self.config.cleanup_reserve.min(left / 2)
        });
        let mut report = fan_out::run(
            Arc::clone(&self.sender),
            payload.clone(),
            self.config.clone(),
            post_deadline,
            source,
        )
        .await;
        if self.config.cleanup_gone && !report.gone.is_empty() {
            let cleanup = self.remove_gone(&report.gone, &mut report.kept_connecting);
            let outcome = match self.deadline {
                None => cleanup.await,
                Some(deadline) => tokio::time::timeout_at(deadline, cleanup)
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::Store {
                            // The trait has no Display, and Debug may list every record.
                            backend: "connection store (broadcast cleanup)".to_owned(),
                            source: "removing gone connections did not finish by the broadcast \
                                     deadline"
                                .into(),
                        })
                    }),
            };
            match outcome {
                Ok(removed) => {
                    report.cleaned_records = removed.len();
                    report.removed = removed;
                }
                Err(e) => {
                    tracing::warn!(error = %e, gone = report.gone.len(), "removing gone connections failed");
                    report.cleanup_error = Some(e);
                }
            }
        }
        report.elapsed = started.elapsed();
        tracing::info!(
            targets = report.targets(),
            delivered = report.delivered_count,
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
