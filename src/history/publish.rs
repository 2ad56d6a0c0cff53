//! [`Publisher`]: publish = append to the log, then fan out; and resume = read the log, post the
//! pages.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::{Envelope, History, LogMessage, MessageLog, Position, ReadLimits};
use crate::broadcast::{BroadcastReport, Target};
use crate::error::Result;
use crate::ids::{ConnectionId, RoomId};
use crate::queue::{Dispatched, RoomDispatch};

/// What one [`Publisher::publish`] did: the envelope logged and how it went out.
///
/// A `Published` means the message **is in the log**, whatever `delivery` says: do not publish
/// it again (that would log a second copy under a new offset, which clients show twice).
#[derive(Debug)]
#[non_exhaustive]
pub struct Published {
    /// The message as logged (its offset, epoch, id).
    pub envelope: Envelope,
    /// The fan-out: in-line (with its report) or queued — or the error that kept it from
    /// starting (the room could not be read, enqueueing failed), already logged at WARN. Either
    /// way the room's clients recover what they did not get by resuming.
    pub delivery: Result<Dispatched>,
}

impl Published {
    /// Whether the fan-out started and every post (in-line) or job (queued) it made succeeded.
    pub fn is_complete(&self) -> bool {
        match &self.delivery {
            Ok(Dispatched::InLine(report)) => report.is_success(),
            Ok(Dispatched::Queued(_)) => true,
            Ok(_) | Err(_) => false,
        }
    }
}

/// Bounds of one [`Publisher::resume`]: how much history one request may post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResumeLimits {
    /// Each page: the messages and bytes of one `room.history` frame.
    pub page: ReadLimits,
    /// The most messages one resume posts (default 1,000); past it the last page says
    /// `more: true` and the client asks again.
    pub max_messages: usize,
    /// The most bytes of envelopes one resume posts (default 1 MiB).
    pub max_bytes: usize,
}

impl Default for ResumeLimits {
    fn default() -> Self {
        Self {
            page: ReadLimits::default(),
            max_messages: 1_000,
            max_bytes: 1024 * 1024,
        }
    }
}

/// What one [`Publisher::resume`] posted.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Resumed {
    /// `room.history` frames posted.
    pub pages: usize,
    /// Messages in them.
    pub messages: usize,
    /// Whether the history was recovered (`false`: the client reloads).
    pub recovered: bool,
    /// Whether more history follows than this resume posted.
    pub more: bool,
    /// The delivery of each page, in order; a page that failed ends the resume.
    pub reports: Vec<BroadcastReport>,
}

/// Publishes to rooms through a [`MessageLog`] and resumes clients from it.
///
/// **Guarantees.** [`publish`](Self::publish) appends first: if the append fails, nothing is sent
/// and the caller gets the error (the message has no offset; publish again). Once appended, the
/// message is in the room's history for the log's retention, whatever the fan-out does: a
/// connection the post missed (gone for a moment, throttled, cut by a deadline, a queued job that
/// failed) gets it back by resuming. Delivery is then **at least once** end to end for every
/// client that resumes within the retention — through in-line fan-out, the queued workers (whose
/// retries may post twice) and `retry_unknown_outcome` — and clients that follow the protocol
/// (drop offsets they have shown) show each message **exactly once**, in order.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    log: Arc<dyn MessageLog>,
    dispatch: RoomDispatch,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("log", &self.log.to_string())
            .field("dispatch", &self.dispatch)
            .finish()
    }
}

impl Publisher {
    /// Publishes to rooms of `log` through `dispatch` (in-line, or queued above its threshold).
    pub fn new(log: Arc<dyn MessageLog>, dispatch: RoomDispatch) -> Self {
        Self { log, dispatch }
    }

    /// The log.
    pub fn log(&self) -> &Arc<dyn MessageLog> {
        &self.log
    }

    /// The fan-out policy.
    pub fn dispatch(&self) -> &RoomDispatch {
        &self.dispatch
    }

    /// Appends `message` to `room`'s log, then sends its envelope to every connection in the
    /// room except `exclude`.
    ///
    /// `Ok` means the message is logged: a fan-out that could not start is reported in
    /// [`Published::delivery`], not as an error, so that a caller retrying on `Err` never logs
    /// the message twice.
    ///
    /// # Errors
    ///
    /// Only when the message was **not** logged: the append's error (nothing was sent; publishing
    /// again is safe). [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge) when the message
    /// exceeds the log's `max_message_bytes`.
    pub async fn publish(
        &self,
        room: &RoomId,
        message: LogMessage,
        exclude: Option<&ConnectionId>,
    ) -> Result<Published> {
        let envelope = self.log.append(room, message).await?;
        let delivery = match envelope.to_payload() {
            Ok(payload) => self.dispatch.send(room, &payload, exclude).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &delivery {
            tracing::warn!(
                %room,
                epoch = %envelope.epoch,
                offset = envelope.offset,
                error = %e.chain(),
                "message logged but its fan-out could not start: the room's clients get it when they resume"
            );
        }
        Ok(Published { envelope, delivery })
    }

    /// Publishes `data` (a message id made up by the log).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    pub async fn publish_data(
        &self,
        room: &RoomId,
        data: Value,
        exclude: Option<&ConnectionId>,
    ) -> Result<Published> {
        self.publish(room, LogMessage::new(data), exclude).await
    }

    /// Posts to `target` the history of `room` after `from`: `room.history` pages in order,
    /// within `limits`. Call it once the connection is in the room (after the join is written):
    /// then no message can fall between this read and live delivery (see the
    /// [protocol](super#the-protocol-for-client-authors)).
    ///
    /// # Errors
    ///
    /// When the log cannot be read (nothing more is posted). A page whose post failed ends the
    /// resume; its report is in [`Resumed::reports`].
    pub async fn resume(
        &self,
        target: impl Into<Target>,
        room: &RoomId,
        from: &Position,
        limits: ResumeLimits,
    ) -> Result<Resumed> {
        let target = target.into();
        let broadcaster = self.dispatch.broadcaster();
        let mut resumed = Resumed {
            recovered: true,
            ..Resumed::default()
        };
        let mut position = from.clone();
        let mut bytes = 0usize;
        loop {
            let left = limits.max_messages.saturating_sub(resumed.messages);
            let mut page_limits = limits.page;
            page_limits.max_messages = page_limits.max_messages.min(left).max(1);
            let page: History = self.log.read(room, &position, page_limits).await?;
            if resumed.pages == 0 {
                resumed.recovered = page.recovered;
            }
            let page_bytes: usize = page
                .messages
                .iter()
                .map(|m| m.to_json().map_or(0, |j| j.len()))
                .sum();
            bytes += page_bytes;
            resumed.messages += page.messages.len();
            let last = page.messages.last().map(|m| (m.epoch.clone(), m.offset));
            // Past the budget the page keeps its `more`: the client asks again from the last
            // offset it shows.
            let budget_spent = resumed.messages >= limits.max_messages || bytes >= limits.max_bytes;
            let report = broadcaster.send(target.clone(), &page.to_payload()?).await;
            let delivered = report.delivered_count == 1;
            resumed.pages += 1;
            resumed.reports.push(report);
            resumed.more = page.more;
            if !delivered || !page.more || budget_spent {
                return Ok(resumed);
            }
            match last {
                Some((epoch, offset)) => position = Position::new(epoch, offset),
                None => return Ok(resumed),
            }
        }
    }
}
