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
//!   every API Gateway API of the account and region. Posts answered 429 then are waited out
//!   and sent again (a 429 is a definite "not delivered"), so a fan-out faster than the
//!   account slows to its rate instead of failing posts. A few connections answering 429 on their
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
//! assert_eq!(report.removed.len(), 1); // c= is out of every room
//! assert_eq!(store.room_connections(&room).await?.len(), 2);
//! # Ok::<(), stateless_ws::Error>(()) }).unwrap();
//! ```
//!
//! # What it promises, compared with a loop
//!
//! | | a loop over `post_to_connection` | [`Broadcaster`] |
//! |---|---|---|
//! | speed | one POST after another | [`concurrency`](BroadcastConfig::concurrency) in flight (64) |
//! | 429 `LimitExceededException` | fails, or hammers | account throttling (429s from many connections) halves the concurrency, which then recovers, and the post is sent again ([`account_throttle_retries`](BroadcastConfig::account_throttle_retries): 10, about 11 s); one connection's own 429 is retried (5) and then reported, without slowing the others |
//! | 5xx, a connection refused | abort, or lose the message | retried ([`retries`](BroadcastConfig::retries): 3; 0 disables) |
//! | a timeout (outcome unknown) | retried blindly: duplicates | reported failed with [`Error::OutcomeUnknown`], not retried unless [`retry_unknown_outcome`](BroadcastConfig::retry_unknown_outcome) |
//! | 403 `ForbiddenException` | fails for every target | stops at once; [`BroadcastReport::config_error`] says to check the stage, API and IAM |
//! | 410 `GoneException` | cleaned from one room | removed from **every** room after the fan-out |
//! | a user in two rooms | two copies | one post per connection |
//! | payload > 128 KB | 413 per target | refused before any send ([`Error::PayloadTooLarge`]) |
//! | the Lambda's deadline | cut off silently | [`with_deadline`](Broadcaster::with_deadline): ends in time, posts in flight reported failed, the rest not attempted, the cleanup keeps a reserved slice |
//! | result | the first error | a [`BroadcastReport`]: every target in exactly one bucket |
//!
//! Nothing is dropped silently: every target that did not get the message is in the report.
//! Whether a message may arrive twice is the broadcaster's
//! [delivery semantics](Broadcaster#delivery-semantics): **at most once** by default, **at
//! least once** with `retry_unknown_outcome`; neither is exactly once (`PostToConnection` has no
//! idempotency key), so give messages an id if duplicates matter.
//!
//! In a Lambda, give each invocation its own copy with the invocation's deadline:
//! `broadcaster.clone().with_deadline(lambda::deadline(&context))` (feature `lambda`; the
//! deadline already keeps a 250 ms margin). Posting then stops
//! [`cleanup_reserve`](BroadcastConfig::cleanup_reserve) earlier still, for the Gone cleanup, and
//! posts stop starting [`in_flight_reserve`](BroadcastConfig::in_flight_reserve) before that, so
//! that the posts in flight are answered rather than cut — `report.not_attempted` says who was
//! skipped (each reserve takes at most a share of the time left, so a short budget still
//! posts). A context without a deadline (`Context::default()` in tests) means no deadline.
//!
//! # Which management endpoint
//!
//! Each post goes to the endpoint of its target's record: `Membership::for_connect` stores the
//! event's `https://{domainName}/{stage}` (attribute `managementEndpoint`), so one table can
//! serve several APIs, stages or regions. A record without one (written by older code) falls
//! back, in this order, to the broadcaster's
//! [`with_default_endpoint`](Broadcaster::with_default_endpoint) (per invocation, typically the
//! event's [`management_endpoint`](crate::RequestContext::management_endpoint)), then to the
//! sender's default (`ApiGatewaySender::from_env` reads `APIGW_MANAGEMENT_URL`; or
//! `ApiGatewaySender::new(&sdk).with_default_endpoint(url)?`: process-wide). Behind a custom
//! domain name, `domainName` does not serve `@connections`: store
//! [`execute_api_endpoint(region)`](crate::RequestContext::execute_api_endpoint) instead.
//!
//! # Streaming: one invocation, any room
//!
//! [`broadcast`](Broadcaster::broadcast) runs in the invocation that calls it and **streams**
//! the room: it reads a small first page ([`ConnectionStore::room_page`] with
//! [`first_page`](BroadcastConfig::first_page), 100 records) and its workers post while the next
//! page is read (for DynamoDB a 1 MB `Query` page, about 12,900 records of this layout), each page read while
//! the one before it is posted. The first post leaves after one small read, whatever the room's
//! size, and memory is two pages plus a bounded queue of targets (1,024, or 4 × the
//! concurrency). A page that cannot be read once posting has
//! begun, or a deadline arriving before the last page, ends up in the report
//! ([`listing_error`](BroadcastReport::listing_error), and
//! [`unread_from`](BroadcastReport::unread_from), the cursor to resume from), never in a lost
//! target. For very large rooms set [`BroadcastConfig::list_delivered`] to `false`: the report
//! then keeps the delivered *count* and the exceptions, not every id.
//!
//! Measured (`cargo bench --all-features --bench streaming`: 4,000-record pages of 50 ms, posts
//! of 1 ms, peak memory the fan-out added, one process per run, listing and posting alone):
//!
//! | | members | first post | total | peak memory |
//! |---|---|---|---|---|
//! | listing alone (`room_connections`) | 100,000 | — | 1.43 s | 26.1 MB |
//! | posting alone (`send_to`, records in hand) | 100,000 | 93 ms | 3.62 s | 32.9 MB |
//! | collect first (before 0.1) | 1,000 | 53 ms | 0.09 s | 0.9 MB |
//! | collect first (before 0.1) | 100,000 | 1,472 ms | 5.01 s | 33.1 MB |
//! | `broadcast` | 1,000 | 52 ms | 0.14 s | 0.9 MB |
//! | `broadcast` | 10,000 | 52 ms | 0.44 s | 2.8 MB |
//! | `broadcast` | 100,000 | 52 ms | 3.73 s (1.03× max(listing, posting)) | 9.8 MB |
//! | `broadcast`, `list_delivered = false` | 100,000 | 53 ms | 3.68 s (1.02×) | 3.4 MB (1.25× the 10,000 figure) |
//!
//! (Without the read-ahead: 4.45 s at 100,000.) The small first read costs a room of one backend
//! page one more read (1,000: 0.14 s, not 0.09 s): [`BroadcastConfig::first_page`] 0 avoids it.
//!
//! # When one invocation is not enough
//!
//! | limit | value | what it means for in-line fan-out |
//! |---|---|---|
//! | the route's integration timeout | 29 s | a `send` route that fans out in-line cannot serve a room that takes longer |
//! | Lambda duration and memory | 15 min; 128 MB–10 GB | one function's concurrency posts everything |
//! | the account's API Gateway throttle | 10,000 requests/s per region, shared by every API and `@connections` call | a 1,000,000-member room needs ≥ 100 s whatever the client does |
//!
//! At the default concurrency of 64 and ~30 ms per post at API Gateway, one invocation posts
//! about 2,100 messages/s: a `send` route serves rooms of a few tens of thousands in-line
//! (10,000 ≈ 5 s), not beyond. Larger rooms, or callers that must answer at once, hand the room
//! to queue workers instead: [`queue`](crate::queue), where
//! [`RoomDispatch`](crate::queue::RoomDispatch) picks in-line or queued by a room's size.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
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
mod limiter;
mod payload;
mod pool;
mod recording;
mod report;
mod sender;
#[cfg(feature = "apigw")]
mod signed;
mod source;

#[cfg(feature = "apigw")]
pub use apigw::{ApiGatewaySender, DEFAULT_CALL_TIMEOUT};
pub use config::BroadcastConfig;
pub use payload::Payload;
pub use recording::{InjectedFailure, RecordingSender};
pub use report::{BroadcastReport, FailedDelivery};
pub use sender::{ConnectionInfo, ConnectionSender, Target};
#[cfg(feature = "apigw")]
pub use signed::{DEFAULT_CONNECT_TIMEOUT, SigV4Sender};

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
    /// half the time left), so that the cleanup of gone connections still runs, and no post
    /// starts in the [`in_flight_reserve`](BroadcastConfig::in_flight_reserve) before that
    /// (at most a quarter of the time left), so that the posts in flight are answered in time:
    ///
    /// - targets not yet tried then are reported **not attempted** — nothing was sent;
    /// - posts still in flight when posting stops are abandoned and reported **failed** with
    ///   [`Error::OutcomeUnknown`] — the request may have
    ///   reached API Gateway, so "not attempted" would be untrue — and are not repeated;
    /// - no retry is scheduled past it;
    /// - the cleanup runs until `deadline`: the connect grace's reads until halfway there, the
    ///   removals (250 connections per store call) until the deadline itself. What was removed
    ///   by then stays removed; the gone connections left are in the report's `not_cleaned`,
    ///   and `cleanup_error` says why.
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

    /// The per-invocation default endpoint ([`with_default_endpoint`](Self::with_default_endpoint)).
    pub fn default_endpoint(&self) -> Option<&str> {
        self.default_endpoint.as_deref()
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
        let span = tracing::info_span!("broadcast", room = %room, store = %self.store, sender = %self.sender, targets = tracing::field::Empty);
        async {
            // The first page is read before anything is sent: a room that cannot be listed is
            // the call's error. The rest is read while the workers post.
            let limit = (self.config.first_page > 0).then_some(self.config.first_page);
            let first = self.store.room_page(room, None, limit).await?;
            let source = Source::Room(RoomSource {
                store: Arc::clone(&self.store),
                room: room.clone(),
                exclude: exclude.cloned(),
                default_endpoint: self.default_endpoint.clone(),
                first,
            });
            let report = self.deliver(source, payload).await;
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
        let span = tracing::info_span!("notify_user", user = %user, store = %self.store, sender = %self.sender, targets = tracing::field::Empty);
        async {
            let connections = self.store.user_connections(user).await?;
            tracing::Span::current().record("targets", connections.len());
            Ok(self
                .deliver(self.list(connections.iter().map(Target::from)), payload)
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
            sender = %self.sender,
            targets = match &source {
                Source::List(t) => t.len(),
                Source::Room(_) => 0,
            }
        );
        self.deliver(source, payload).instrument(span).await
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

    /// Removes the gone connections from every room, by `self.deadline` — except those with
    /// a record younger than [`connect_grace`](BroadcastConfig::connect_grace), which are most
    /// likely clients still in their `$connect` (API Gateway answers 410 to them too); those go
    /// to `kept`.
    ///
    /// The connect grace reads each gone connection's records, [`GRACE_READ_CONCURRENCY`]
    /// at a time, until halfway from now to the deadline (the removals get the other half);
    /// removals go [`REMOVE_CHUNK`] connections per store call, so what is removed before the
    /// deadline stays removed. Whatever was not read or removed in time, or failed, is
    /// `not_cleaned`.
    async fn remove_gone(&self, gone: &[ConnectionId], kept: &mut Vec<ConnectionId>) -> Cleanup {
        let mut out = Cleanup::default();
        let grace = self.config.connect_grace.as_secs();
        let old: Vec<ConnectionId> = if grace == 0 {
            gone.to_vec()
        } else {
            let now = crate::clock::unix_seconds(self.store.clock().now());
            let read_deadline = self.deadline.map(|deadline| {
                let start = Instant::now();
                start + deadline.saturating_duration_since(start) / 2
            });
            let mut reads = stream::iter(gone.iter().cloned())
                .map(|id| async move {
                    let records = self.store.connection_rooms(&id).await;
                    (id, records)
                })
                .buffer_unordered(GRACE_READ_CONCURRENCY);
            let mut old = Vec::with_capacity(gone.len());
            let mut checked = HashSet::with_capacity(gone.len());
            loop {
                let next = match read_deadline {
                    None => reads.next().await,
                    Some(at) => match tokio::time::timeout_at(at, reads.next()).await {
                        Ok(next) => next,
                        Err(_) => break,
                    },
                };
                let Some((id, records)) = next else { break };
                checked.insert(id.clone());
                match records {
                    Ok(records) => {
                        let connecting = records.iter().any(|r| {
                            r.connected_at
                                .is_some_and(|t| t.saturating_add(grace) > now)
                        });
                        if connecting {
                            kept.push(id);
                        } else {
                            old.push(id);
                        }
                    }
                    Err(e) => {
                        out.not_cleaned.push(id);
                        out.error.get_or_insert(e);
                    }
                }
            }
            drop(reads);
            out.not_cleaned
                .extend(gone.iter().filter(|id| !checked.contains(*id)).cloned());
            old
        };
        if !kept.is_empty() {
            tracing::info!(
                kept = kept.len(),
                "gone connections younger than the connect grace are kept"
            );
        }
        let mut chunks = old.chunks(REMOVE_CHUNK);
        for chunk in chunks.by_ref() {
            let removal = self.store.remove_connections(chunk);
            let result = match self.deadline {
                None => Ok(removal.await),
                Some(at) if Instant::now() >= at => Err(()),
                Some(at) => tokio::time::timeout_at(at, removal).await.map_err(|_| ()),
            };
            match result {
                Ok(Ok(removed)) => out.removed.extend(removed),
                Ok(Err(e)) => {
                    out.not_cleaned.extend(chunk.iter().cloned());
                    out.error.get_or_insert(e);
                }
                Err(()) => {
                    out.not_cleaned.extend(chunk.iter().cloned());
                    break;
                }
            }
        }
        for chunk in chunks {
            out.not_cleaned.extend(chunk.iter().cloned());
        }
        out
    }

    async fn deliver(&self, source: Source, payload: &Payload) -> BroadcastReport {
        let started = Instant::now();

        // Posting stops early enough to leave the cleanup its reserved slice of the deadline,
        // and posts stop starting early enough for those in flight to be answered by then.
        let post_deadline = self.deadline.map(|deadline| {
            if !self.config.cleanup_gone {
                return deadline;
            }
            let left = deadline.saturating_duration_since(started);
            deadline - self.config.cleanup_reserve.min(left / 2)
        });
        let start_by = self.deadline.zip(post_deadline).map(|(deadline, cut)| {
            let left = deadline.saturating_duration_since(started);
            cut - self.config.in_flight_reserve.min(left / 4)
        });
        if let Some(deadline) = self.deadline
            && deadline <= started
        {
            // Nothing will be posted: say so before the summary, with how late it is (a runner
            // that hands functions an impossible deadline shows up here).
            tracing::warn!(
                past_deadline_ms =
                    u64::try_from(started.duration_since(deadline).as_millis()).unwrap_or(u64::MAX),
                "fan-out begins past its deadline: nothing will be posted (see the summary's not_attempted)"
            );
        }
        let mut report = pool::run(
            Arc::clone(&self.sender),
            payload.clone(),
            self.config.clone(),
            pool::Deadlines {
                start_by,
                cut: post_deadline,
            },
            source,
        )
        .await;
        if self.config.cleanup_gone && !report.gone.is_empty() {
            let cleanup = self
                .remove_gone(&report.gone, &mut report.kept_connecting)
                .await;
            report.removed = cleanup.removed;
            let not_cleaned = cleanup.not_cleaned.len();
            report.not_cleaned = cleanup.not_cleaned;
            report.cleanup_error = cleanup.error.or_else(|| {
                (not_cleaned > 0).then(|| Error::Store {
                    backend: format!("{} (broadcast cleanup)", self.store),
                    source: format!(
                        "{not_cleaned} gone connection(s) not cleaned by the broadcast deadline"
                    )
                    .into(),
                })
            });
            if let Some(e) = &report.cleanup_error {
                tracing::warn!(
                    error = %e.chain(),
                    gone = report.gone.len(),
                    cleaned = report.removed.len(),
                    not_cleaned,
                    kept_connecting = report.kept_connecting.len(),
                    "removing gone connections failed or did not finish"
                );
            }
        }
        report.elapsed = started.elapsed();
        report::log_outcome(&report);
        report
    }
}

/// Gone connections whose records the connect grace reads at once: 1,000 reads of 2 ms take
/// 126 ms instead of 2 s.
const GRACE_READ_CONCURRENCY: usize = 16;

/// Gone connections removed per store call, so that a deadline keeps what was removed before it.
const REMOVE_CHUNK: usize = 250;

/// What the cleanup of gone connections did.
#[derive(Default)]
struct Cleanup {
    removed: Vec<Membership>,
    not_cleaned: Vec<ConnectionId>,
    error: Option<Error>,
}
