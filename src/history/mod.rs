//! Message history: a per-room log with offsets, so that a client that was away — a cut
//! socket, a sleeping laptop, API Gateway's 2-hour and 10-idle-minute limits — gets back what it
//! missed, in order, each message once (opt-in; without it nothing changes).
//!
//! Socket.IO's connection state recovery, Centrifugo's history with offsets and epochs and Ably's
//! rewind do this for their servers; here the log is a [`MessageLog`] beside the routing table,
//! and every message published to a room through it is an [`Envelope`]:
//!
//! ```json
//! {"type":"room.message","room":"general","epoch":"k3x9q2f8v1m4c7d0","offset":42,
//!  "id":"01J9Z3…","at":1764240000123,"data":{"text":"hi","userId":"alice"}}
//! ```
//!
//! - `room`: the room;
//! - `offset`: the message's place in the room, 1, 2, 3, … — only ever growing within an epoch,
//!   with no holes: offsets are taken only by appends that succeeded;
//! - `epoch`: names the room's current history. It changes when that history is lost or reset
//!   (every message of the room expired, or the log was cleared): an offset means something only
//!   together with its epoch;
//! - `id`: the message's id, chosen by the publisher (or made up by the log): a publisher that
//!   retries an append whose outcome it does not know may append the same message twice, under
//!   two offsets — clients drop an `id` they have shown;
//! - `at`: when it was appended, Unix milliseconds by the log's clock;
//! - `data`: the application's message, any JSON value.
//!
//! # The protocol, for client authors
//!
//! A client keeps, per room, the `epoch` and the highest `offset` it has shown, and:
//!
//! 1. **shows** an envelope whose offset is the next one (`last + 1`) and moves `last`;
//! 2. **drops** an envelope whose offset is `≤ last` (a duplicate: at-least-once delivery, a
//!    resume overlapping live delivery) or whose `id` it has shown;
//! 3. **asks for the gap** when an offset jumps (`> last + 1`): it holds that envelope, sends a
//!    resume from `last`, and shows the held one after the gap is filled;
//! 4. **resumes** after every reconnect: once the socket is open, it sends (room, epoch, last)
//!    and gets a [`History`] page — the messages after `last`, in order, bounded in count and
//!    bytes, with `more` when another page follows;
//! 5. **reloads** its state when a history answer says `recovered: false`: the epoch changed, or
//!    `last` is older than what the log keeps. It then starts again from the answer's epoch and
//!    `head`, without showing a silent gap.
//!
//! Nothing falls between the history read and live delivery when the server reads the history
//! *after* the connection is in the room, and every publisher appends *before* it reads the room
//! to fan out: a message appended before the read is in the history, one appended after is
//! delivered live (and one that is both is dropped by offset). Secondary indexes that lag (a
//! DynamoDB GSI listing the room) can hide a member that joined moments before a fan-out; the
//! client's next message then arrives with a jump and rule 3 recovers it — so a client resumes a
//! second time a second or two after the first when no message follows.
//!
//! # Guarantees
//!
//! [`Publisher::publish`] appends, then fans out. An `Err` means the message was **not** logged
//! (nothing was sent; publishing again is safe); `Ok` means it is in the log, even when its
//! fan-out could not start ([`Published::delivery`] says how it went — do not publish it
//! again). A logged message stays readable for the log's retention whatever the fan-out did, so
//! for a client that resumes within the retention every delivery path is **at least once end to
//! end**: in-line fan-out, the streaming broadcaster, the queued workers (a retried job posts
//! again) and [`retry_unknown_outcome`](crate::broadcast::BroadcastConfig::retry_unknown_outcome)
//! alike; and a client that follows the protocol shows each message **exactly once**, in order.
//! What is not covered: a client away longer than the retention (it gets `recovered: false` and
//! reloads), and messages sent to connections or users rather than rooms (`notify_user` and
//! presence events are not logged).
//!
//! # Contract
//!
//! Every [`MessageLog`] keeps these rules; the conformance scenarios check each:
//!
//! 1. **Offsets.** [`append`](MessageLog::append) gives the room's next offset, atomically: under
//!    concurrent appenders to one room every offset is given once, and within an epoch the
//!    offsets of a room are 1, 2, 3, … with no holes among the messages kept.
//! 2. **Epochs.** A room with no message kept starts a new epoch at offset 1; its epoch is a new
//!    value, never one the room had before.
//! 3. **Read.** [`read`](MessageLog::read) from (epoch, `after`) returns the room's messages with
//!    offsets above `after`, in order, at most [`ReadLimits::max_messages`] of them and
//!    [`ReadLimits::max_bytes`] of envelope JSON (at least one message when any follows, whatever
//!    its size), with `more` when others follow, `head` the room's highest offset, and
//!    `recovered: true` when the page starts right after `after` within the same epoch. It is
//!    `recovered: false` — and starts at the oldest message kept — when the epoch differs (or is
//!    unknown) or the message after `after` is no longer kept.
//! 4. **Retention.** A message is kept for [`LogConfig::ttl`] after its append and among the room's
//!    newest [`LogConfig::max_messages`]; reads never return one past either, even if the backend
//!    has not removed it yet.
//! 5. **Size.** An append whose envelope would exceed [`LogConfig::max_message_bytes`] (and never
//!    more than 128 KB, one WebSocket message through API Gateway) is refused with
//!    [`Error::PayloadTooLarge`] before anything is written.
//! 6. **Reads are strongly consistent**: an append that returned is in every later read.
//!
//! The trait is object-safe; handlers hold `Arc<dyn MessageLog>`. `Display` names the backend and
//! its resource (`InMemoryLog`, `DynamoDbLog(ws-messages)`).
//!
//! [`InMemoryLog`] keeps the log in memory (tests, the local gateway, single-process apps); the
//! scenarios every backend runs are in `conformance::history` (feature `conformance`).

use std::fmt::{Debug, Display};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::ids::RoomId;

#[cfg(feature = "dynamodb")]
mod dynamodb;
mod envelope;
mod memory;
mod publish;

#[cfg(feature = "dynamodb")]
pub use dynamodb::{DynamoDbLog, DynamoDbLogBuilder};

pub use envelope::{
    ENVELOPE_TYPE, Envelope, HISTORY_TYPE, History, LogMessage, Position, new_epoch,
};
pub use memory::InMemoryLog;
pub use publish::{Published, Publisher, ResumeLimits, Resumed};

/// The most bytes one envelope may take as JSON: one WebSocket message through API Gateway.
pub const MAX_ENVELOPE_BYTES: usize = 128 * 1024;

/// How much a log keeps; see contract rules 4 and 5.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogConfig {
    /// How long a message is kept after its append (default 24 h). On DynamoDB, the `ttl`
    /// attribute (Unix seconds); the table's TTL removes it some time after.
    pub ttl: Duration,
    /// The newest messages kept per room (default 10,000); older ones are no longer read.
    pub max_messages: u64,
    /// The largest envelope, as JSON (default and at most [`MAX_ENVELOPE_BYTES`]).
    pub max_message_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(24 * 3600),
            max_messages: 10_000,
            max_message_bytes: MAX_ENVELOPE_BYTES,
        }
    }
}

/// Bounds of one [`MessageLog::read`]: a resume page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadLimits {
    /// The most messages in the page (default 100).
    pub max_messages: usize,
    /// The most bytes of envelope JSON in the page (default 96 KB, so that a page fits one
    /// WebSocket message with room to spare); at least one message is returned whatever its size.
    pub max_bytes: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_messages: 100,
            max_bytes: 96 * 1024,
        }
    }
}

/// A room's message log; see the [module docs](self) for the protocol and the contract.
#[async_trait]
pub trait MessageLog: Send + Sync + Debug + Display + 'static {
    /// Appends `message` to `room` under the room's next offset (rule 1), starting a new epoch
    /// when the room has no message kept (rule 2), and returns its envelope.
    ///
    /// # Errors
    ///
    /// [`Error::PayloadTooLarge`] over the size limit (rule 5, nothing written); the backend's
    /// error when the append failed — then no offset was taken and nothing may be sent.
    async fn append(&self, room: &RoomId, message: LogMessage) -> Result<Envelope>;

    /// The messages of `room` after `from`, as rule 3 says.
    ///
    /// # Errors
    ///
    /// The backend's error when the room cannot be read.
    async fn read(&self, room: &RoomId, from: &Position, limits: ReadLimits) -> Result<History>;

    /// The room's current epoch and highest offset, or `None` when it has no message kept.
    ///
    /// # Errors
    ///
    /// The backend's error when the room cannot be read.
    async fn head(&self, room: &RoomId) -> Result<Option<Position>>;

    /// What it keeps.
    fn config(&self) -> &LogConfig;

    /// The clock of `at` and retention.
    fn clock(&self) -> &Arc<dyn Clock>;
}

/// Checks `config` (used by the backends' constructors).
///
/// # Errors
///
/// [`Error::Config`] naming the field out of range.
pub fn validate_config(config: &LogConfig) -> Result<()> {
    if config.max_messages == 0 {
        return Err(Error::config("LogConfig::max_messages must be at least 1"));
    }
    if config.ttl.is_zero() {
        return Err(Error::config("LogConfig::ttl must be above zero"));
    }
    if config.max_message_bytes == 0 || config.max_message_bytes > MAX_ENVELOPE_BYTES {
        return Err(Error::config(format!(
            "LogConfig::max_message_bytes must be between 1 and {MAX_ENVELOPE_BYTES}"
        )));
    }
    Ok(())
}
