//! [`BroadcastReport`]: where every target of a fan-out ended up.

use std::fmt;
use std::time::Duration;

use crate::error::Error;
use crate::ids::ConnectionId;

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
    /// Connections whose delivery failed for good. Those failed with
    /// [`Error::OutcomeUnknown`] (a timeout after sending, or cut in flight at the deadline)
    /// may have received the message anyway; see the
    /// [delivery semantics](super::Broadcaster#delivery-semantics).
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
