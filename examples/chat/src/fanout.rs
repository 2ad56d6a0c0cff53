//! How a room message leaves: in-line through the broadcaster, or — for rooms above
//! [`ChatConfig::queue_above`](crate::ChatConfig::queue_above) — through the fan-out queue.

use serde_json::Value;
use stateless_ws::broadcast::{BroadcastReport, Payload, Target};
use stateless_ws::error::Result;
use stateless_ws::event::RequestContext;
use stateless_ws::ids::{ConnectionId, RoomId};
use stateless_ws::queue::Enqueued;

use crate::Chat;

/// Where a fan-out went.
pub(crate) enum FanOut {
    /// Delivered in this invocation.
    Inline(Box<BroadcastReport>),
    /// Handed to the queue's workers.
    Queued(Enqueued),
}

impl Chat {
    /// Sends `message` to the room (minus `exclude`), delivering through each record's endpoint,
    /// or this event's when the record has none (records written by older code). Rooms above
    /// `queue_above` members go through the queue when the chat has one. Connections found
    /// gone leave the table and their departures are announced (presence).
    pub(crate) async fn fan_out_to_room(
        &self,
        room: &RoomId,
        message: &Value,
        exclude: Option<&ConnectionId>,
        ctx: &RequestContext,
        deadline: Option<std::time::Instant>,
    ) -> Result<FanOut> {
        let payload = Payload::json(message)?;
        let endpoint = self.endpoint_for(ctx);
        // The broadcaster's Gone cleanup spares connections still in their `$connect` (API
        // Gateway answers 410 until it returns); presence announces the records it removed.
        let broadcaster = self.broadcaster_for(ctx, deadline);
        let (Some(queue), Some(above)) = (&self.queue, self.config.queue_above) else {
            let report = broadcaster.broadcast(room, &payload, exclude).await?;
            warn_if_incomplete(room, &report);
            self.announce_departed(&report, ctx, deadline).await;
            return Ok(FanOut::Inline(Box::new(report)));
        };
        // Read at most `above + 1` members: enough to tell a small room from a large one. A
        // small room is then sent to from what was read, without a second listing.
        let mut members: Vec<Target> = Vec::new();
        let mut cursor = None;
        let mut large = above == 0;
        while !large {
            let page = self.store.room_page(room, cursor.as_ref()).await?;
            members.extend(
                page.records
                    .iter()
                    .filter(|r| Some(&r.connection_id) != exclude)
                    .map(Target::from),
            );
            large = members.len() > above;
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        if !large {
            let report = broadcaster.send_to(members, &payload).await;
            warn_if_incomplete(room, &report);
            self.announce_departed(&report, ctx, deadline).await;
            return Ok(FanOut::Inline(Box::new(report)));
        }
        drop(members);
        let queue = match endpoint {
            Some(endpoint) => queue.with_default_endpoint(endpoint),
            None => queue.clone(),
        };
        let enqueued = queue.enqueue_broadcast(room, &payload, exclude).await?;
        tracing::info!(%room, fanout_id = %enqueued.fanout_id, jobs = enqueued.jobs, targets = enqueued.targets, "room fan-out queued");
        Ok(FanOut::Queued(enqueued))
    }
}

fn warn_if_incomplete(room: &RoomId, report: &BroadcastReport) {
    if !report.is_success() {
        tracing::warn!(%room, %report, "room fan-out incomplete");
    }
}
