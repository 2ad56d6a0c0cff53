//! [`BroadcastConfig`]: the tuning of a [`Broadcaster`](super::Broadcaster).

use std::time::Duration;

/// Tuning of a [`Broadcaster`](super::Broadcaster): public fields, each with its default
/// documented. Out-of-range values are not rejected; they are clamped where they are used, as
/// each field says.
///
/// The struct is `#[non_exhaustive]` so fields can be added: start from the default and set what
/// you need.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use stateless_ws::broadcast::{BroadcastConfig, Broadcaster, RecordingSender};
/// use stateless_ws::store::InMemoryStore;
///
/// let mut config = BroadcastConfig::default();
/// config.concurrency = 16;
/// config.initial_backoff = Duration::from_millis(20);
/// let store = Arc::new(InMemoryStore::new());
/// let broadcaster = Broadcaster::new(store, Arc::new(RecordingSender::new())).with_config(config);
/// assert_eq!(broadcaster.config().concurrency, 16);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BroadcastConfig {
    /// Posts in flight at once (default 64). With API Gateway's ~10–30 ms per post that is
    /// roughly 2,000–6,000 posts/s, well inside the account's 10,000 requests/s. 0 is used as 1.
    pub concurrency: usize,
    /// The floor adaptive throttling never goes below (default 1). Used as at least 1 and at
    /// most [`concurrency`](Self::concurrency).
    pub min_concurrency: usize,
    /// Lower the concurrency when the account is throttled and raise it back on successes
    /// (default `true`). See [`throttle_window`](Self::throttle_window) for when 429s count as
    /// throttling of the account rather than of a few connections.
    pub adaptive: bool,
    /// The window over which answers are weighed to tell throttling of the account (API
    /// Gateway's requests-per-second quota, shared by every API of the account and region)
    /// from a few connections that answer 429 on their own (their client-side buffer is full)
    /// (default 1 s). Only each target's first post counts, so one connection's retries weigh
    /// once.
    pub throttle_window: Duration,
    /// The account counts as throttled when, within the window, at least this many distinct
    /// connections answered 429 (default 5; 0 is used as 1) …
    pub throttle_min_connections: usize,
    /// … and they are at least this share, in percent, of the connections answered
    /// (default 20; above 100 is used as 100). Then a 429 halves the concurrency.
    pub throttle_share_percent: u8,
    /// Retries of one post after a retryable failure — 5xx, a connection refused, a timeout when
    /// [`retry_unknown_outcome`](Self::retry_unknown_outcome) allows it (default 3, so at most
    /// 4 attempts; 0 disables retries). 429s have budgets of their own:
    /// [`account_throttle_retries`](Self::account_throttle_retries) and
    /// [`connection_throttle_retries`](Self::connection_throttle_retries).
    pub retries: u32,
    /// Retries of one post answered 429 while the account is throttled (default 10). A 429 is
    /// a definite "not delivered", so it is safe to send again; the concurrency halves, and
    /// each retry waits longer (from [`initial_backoff`](Self::initial_backoff), doubling to
    /// [`max_backoff`](Self::max_backoff), with jitter: about 11 s over 10 retries), so that
    /// a fan-out above the account's rate slows down to it instead of failing posts. Before
    /// 0.1 these counted against [`retries`](Self::retries) (3): a 10,000-member broadcast
    /// against a 2,000/s throttle lost 773 posts (`stateless-ws-sim`), with 10 none.
    pub account_throttle_retries: u32,
    /// Backoff before the first retry; it doubles per retry, with jitter (default 50 ms). It is
    /// also the interval within which further 429s do not lower the concurrency again (at least
    /// 10 ms).
    pub initial_backoff: Duration,
    /// Backoff before retrying a post whose 429 is the connection's own — the account is not
    /// throttled, so that client's buffer is full (default 10 ms); it doubles per retry, with
    /// jitter, up to [`max_backoff`](Self::max_backoff). Short, so that a client that does not
    /// read costs the broadcast little.
    pub connection_throttle_backoff: Duration,
    /// Retries of a post whose 429 is the connection's own (default 1); then it is reported
    /// failed with
    /// [`Error::Throttled`](crate::Error::Throttled). Few, because each retry is a round trip
    /// the whole broadcast waits for, and a client that does not read rarely drains its buffer
    /// within milliseconds.
    pub connection_throttle_retries: u32,
    /// Longest backoff (default 2 s). A value below
    /// [`initial_backoff`](Self::initial_backoff) is used as `initial_backoff`.
    pub max_backoff: Duration,
    /// Remove connections that answered 410 Gone from all their rooms after the fan-out
    /// (default `true`).
    pub cleanup_gone: bool,
    /// Gone connections with a record younger than this are not removed (default 30 s, just
    /// over API Gateway's 29 s integration timeout; zero removes every gone connection).
    /// API Gateway establishes a connection only when its `$connect` integration has returned
    /// ("Until execution of the integration associated with the `$connect` route is completed,
    /// the upgrade request is pending and the actual connection will not be established" —
    /// API Gateway developer guide) and answers 410 to posts before that: without the grace, a
    /// broadcast reaching a client mid-`$connect` would delete the record `$connect` just
    /// wrote, and the client would connect into no room. A connection that really is gone
    /// keeps its record until a later broadcast or its TTL. Costs one strongly consistent
    /// read of each gone connection's records, 16 at a time (1,000 gone connections at 2 ms
    /// a read: 126 ms, not 2 s), within the broadcast's deadline: those not read by halfway
    /// to it are reported [`not_cleaned`](super::BroadcastReport::not_cleaned).
    pub connect_grace: Duration,
    /// With a deadline ([`Broadcaster::with_deadline`](super::Broadcaster::with_deadline)),
    /// the time kept at its end for the cleanup of gone connections (default 500 ms: a few
    /// DynamoDB round trips per batch of gone connections). Posts stop — and posts in flight
    /// are cut — this long before the deadline; the cleanup then runs until the deadline
    /// itself. At most half of the time left when the fan-out starts is kept, so a short
    /// budget still posts. Not used when [`cleanup_gone`](Self::cleanup_gone) is off.
    pub cleanup_reserve: Duration,
    /// With a deadline, how long before posting stops no new post starts (default 250 ms;
    /// at most a quarter of the time left when the fan-out starts): the posts in flight then
    /// have this long to be answered before they are cut. A post cut in flight has an unknown
    /// outcome and is reported failed, never repeated, so its client may miss the message;
    /// a post not started is reported not attempted (a queue worker re-enqueues it). API
    /// Gateway answers a post in tens of milliseconds, so with the default a cut happens only
    /// to a post far slower than usual. Zero starts posts until the very end (the behaviour
    /// before 0.2).
    pub in_flight_reserve: Duration,
    /// Repeat a post whose outcome is unknown ([`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown):
    /// a timeout after the request was sent, a connection dropped mid-request), within
    /// [`retries`](Self::retries) (default `false`).
    ///
    /// `false` — **at most once**: such a post is reported failed after its one attempt; the
    /// client may have received it or not, never twice. `true` — **at least once, within the
    /// retries**: the post is repeated like any transient failure, so a client may receive
    /// duplicates (make messages idempotent, e.g. carry an id the client deduplicates on).
    /// Either way, failures whose request never left (connection refused) and answers that say
    /// the message was not taken (429, 5xx) are retried. See
    /// [`Broadcaster`](super::Broadcaster#delivery-semantics).
    pub retry_unknown_outcome: bool,
    /// Whether the report lists every delivered connection in
    /// [`delivered`](super::BroadcastReport::delivered) (default `true`). Off, only
    /// [`delivered_count`](super::BroadcastReport::delivered_count) is kept, so a broadcast to
    /// a 100,000-member room holds a page of the room and the exceptions, not 100,000 ids.
    pub list_delivered: bool,
    /// The records of a room's first read (default 100): the first post leaves after a read
    /// this small, whatever the room's size; the reads after it take a whole backend page (a
    /// DynamoDB `Query` page is up to 1 MB, thousands of records), each read while the page
    /// before it is posted. 0 reads a whole backend page first.
    ///
    /// The cost: a room larger than the first read and smaller than one backend page takes two
    /// reads instead of one, so its total time grows by one small read (`benches/streaming.rs`,
    /// 50 ms per read: 1,000 members 89 ms read-then-post, 135 ms streamed; at 100,000 members
    /// streaming is 1.03× the posting time alone, read-then-post 1.39×). Set 0 where the total
    /// of mid-sized rooms matters more than the first post.
    pub first_page: usize,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            min_concurrency: 1,
            adaptive: true,
            throttle_window: Duration::from_secs(1),
            throttle_min_connections: 5,
            throttle_share_percent: 20,
            retries: 3,
            initial_backoff: Duration::from_millis(50),
            connection_throttle_backoff: Duration::from_millis(10),
            connection_throttle_retries: 5,
            account_throttle_retries: 10,
            max_backoff: Duration::from_secs(2),
            cleanup_gone: true,
            connect_grace: Duration::from_secs(30),
            cleanup_reserve: Duration::from_millis(500),
            in_flight_reserve: Duration::from_millis(250),
            retry_unknown_outcome: false,
            list_delivered: true,
            first_page: 100,
        }
    }
}

// The clamping the field docs promise, in one place: the fields are public, so any value can
// arrive here.
impl BroadcastConfig {
    /// [`concurrency`](Self::concurrency), at least 1.
    pub(super) fn max_in_flight(&self) -> usize {
        self.concurrency.max(1)
    }

    /// [`min_concurrency`](Self::min_concurrency), between 1 and
    /// [`max_in_flight`](Self::max_in_flight).
    pub(super) fn min_in_flight(&self) -> usize {
        self.min_concurrency.clamp(1, self.max_in_flight())
    }

    /// [`max_backoff`](Self::max_backoff), at least [`initial_backoff`](Self::initial_backoff).
    pub(super) fn backoff_cap(&self) -> Duration {
        self.max_backoff.max(self.initial_backoff)
    }

    /// How long after lowering the concurrency further 429s are ignored: the posts in flight
    /// at the time of a cut all see the same burst, and one cut is enough for it.
    pub(super) fn throttle_cooldown(&self) -> Duration {
        self.initial_backoff.max(Duration::from_millis(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_are_clamped_where_used() {
        let mut config = BroadcastConfig {
            concurrency: 0,
            min_concurrency: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(10),
            ..BroadcastConfig::default()
        };
        assert_eq!(config.max_in_flight(), 1);
        assert_eq!(config.min_in_flight(), 1);
        assert_eq!(config.backoff_cap(), Duration::from_millis(100));

        config.concurrency = 8;
        config.min_concurrency = 0;
        config.initial_backoff = Duration::ZERO;
        assert_eq!(config.max_in_flight(), 8);
        assert_eq!(config.min_in_flight(), 1);
        assert_eq!(config.throttle_cooldown(), Duration::from_millis(10));
    }
}
