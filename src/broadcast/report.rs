//! [`BroadcastReport`]: where every target of a fan-out ended up.

use std::fmt;
use std::time::Duration;

use crate::error::Error;
use crate::ids::ConnectionId;
use crate::store::{Membership, PageCursor};

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
/// and `not_attempted` — or, for a room whose listing stopped early, after `unread_from`.
///
/// For very large rooms, [`BroadcastConfig::list_delivered`](super::BroadcastConfig::list_delivered)
/// `= false` keeps only the count of deliveries, so the report's memory is that of the
/// exceptions (gone, failed, not attempted), not of the room.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct BroadcastReport {
    /// Connections that received the message (empty when
    /// [`list_delivered`](super::BroadcastConfig::list_delivered) is off; see
    /// `delivered_count`).
    pub delivered: Vec<ConnectionId>,
    /// How many connections received the message, listed or not.
    pub delivered_count: usize,
    /// Connections the management API reported gone (410).
    pub gone: Vec<ConnectionId>,
    /// Connections whose delivery failed for good. Those failed with
    /// [`Error::OutcomeUnknown`] (a timeout after sending, or cut in flight at the deadline)
    /// may have received the message anyway; see the
    /// [delivery semantics](super::Broadcaster#delivery-semantics).
    pub failed: Vec<FailedDelivery>,
    /// Connections never tried: the deadline passed, or a 403 stopped the broadcast.
    pub not_attempted: Vec<ConnectionId>,
    /// When a room's listing stopped before its last page (the deadline, a 403, or a page that
    /// could not be read): where the unread part starts. Its connections were not attempted and
    /// are in no bucket; resume with
    /// [`ConnectionStore::room_page`](crate::store::ConnectionStore::room_page) from here.
    pub unread_from: Option<PageCursor>,
    /// Why reading a page of the room failed after the broadcast had started (a room that
    /// cannot be listed at all is an error of the call instead).
    pub listing_error: Option<Error>,
    /// Retries made, over all connections.
    pub retries: u64,
    /// The records the cleanup removed (every room of every gone connection), e.g. to
    /// announce the departures with
    /// [`Presence::departed`](crate::presence::Presence::departed).
    pub removed: Vec<Membership>,
    /// Gone connections the cleanup kept: a record younger than
    /// [`connect_grace`](super::BroadcastConfig::connect_grace) says the client is most likely
    /// still in its `$connect`, which answers 410 too.
    pub kept_connecting: Vec<ConnectionId>,
    /// Gone connections the cleanup did not remove: their records could not be read or removed
    /// (see `cleanup_error`), or the deadline came first. Their records stay until a later
    /// broadcast finds them gone again, or their TTL. A connection cut while its removal was in
    /// flight may have lost some of its records.
    pub not_cleaned: Vec<ConnectionId>,
    /// Why removing the gone connections from the store failed, if it did, or that the deadline
    /// left some `not_cleaned`.
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
        self.delivered_count + self.gone.len() + self.failed.len()
    }

    /// Whether every target was delivered or found gone, the whole room was read, and the
    /// cleanup succeeded.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty()
            && self.not_attempted.is_empty()
            && self.unread_from.is_none()
            && self.listing_error.is_none()
            && self.cleanup_error.is_none()
    }

    /// Adds the buckets of `other` (one worker's share) to these.
    pub(super) fn merge(&mut self, other: Self) {
        self.delivered.extend(other.delivered);
        self.delivered_count += other.delivered_count;
        self.gone.extend(other.gone);
        self.failed.extend(other.failed);
        self.not_attempted.extend(other.not_attempted);
    }

    /// The first error the report holds, for a log line: a failed delivery's (a 403 first),
    /// else the listing's, else the cleanup's. `None` when [`is_success`](Self::is_success),
    /// or when only the deadline cut the fan-out (`not_attempted`, `unread_from`).
    pub fn first_error(&self) -> Option<&Error> {
        self.config_error()
            .or_else(|| self.failed.first().map(|f| &f.error))
            .or(self.listing_error.as_ref())
            .or(self.cleanup_error.as_ref())
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
            self.delivered_count,
            self.gone.len(),
            self.removed.len(),
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
        if let Some(cursor) = &self.unread_from {
            write!(f, " (room not read past {cursor})")?;
        }
        Ok(())
    }
}

/// The fan-out's one summary line: INFO when every target was delivered or found gone, else
/// WARN with the first error's whole chain (the service's error code is in its sources).
pub(super) fn log_outcome(report: &BroadcastReport) {
    macro_rules! summary {
        ($level:ident, $($extra:tt)*) => {
            tracing::$level!(
                targets = report.targets(),
                delivered = report.delivered_count,
                gone = report.gone.len(),
                failed = report.failed.len(),
                not_attempted = report.not_attempted.len(),
                retries = report.retries,
                cleaned = report.removed.len(),
                stopped_early = report.stopped_early,
                duration_ms = u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
                $($extra)*
            )
        };
    }
    match report.first_error() {
        None if report.is_success() => summary!(info, "fan-out finished"),
        None => summary!(warn, "fan-out incomplete"),
        Some(error) => summary!(warn, error = %error.chain(), "fan-out incomplete"),
    }
}
