//! How a room message leaves: the library's [`RoomDispatch`] sends it in-line through the
//! broadcaster, or — for rooms above [`ChatConfig::queue_above`](crate::ChatConfig::queue_above)
//! recipients, the sender not counted — through the fan-out queue.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use stateless_ws::broadcast::{BroadcastReport, Payload};
use stateless_ws::error::Result;
use stateless_ws::event::RequestContext;
use stateless_ws::history::{LogMessage, MessageLog, Published, Publisher};
use stateless_ws::ids::{ConnectionId, RoomId};
use stateless_ws::queue::{Dispatched, FanoutPlanner, RoomDispatch};

use crate::Chat;

impl Chat {
    /// The queue of one invocation: this event's management endpoint for records that name
    /// none (written by older code).
    pub(crate) fn queue_for(&self, ctx: &RequestContext) -> Option<FanoutPlanner> {
        let queue = self.queue.as_ref()?;
        Some(match self.endpoint_for(ctx) {
            Some(endpoint) => queue.clone().with_default_endpoint(endpoint),
            None => queue.clone(),
        })
    }

    /// How one invocation sends to a room: its broadcaster, and its queue for rooms above
    /// [`ChatConfig::queue_above`](crate::ChatConfig::queue_above).
    pub(crate) fn dispatch_for(
        &self,
        ctx: &RequestContext,
        deadline: Option<Instant>,
    ) -> RoomDispatch {
        let dispatch = RoomDispatch::new(self.broadcaster_for(ctx, deadline));
        match (self.queue_for(ctx), self.config.queue_above) {
            (Some(queue), Some(above)) => dispatch.with_queue(queue, above),
            _ => dispatch,
        }
    }

    /// Sends `message` to the room (minus `exclude`), delivering through each record's endpoint,
    /// or this event's when the record has none (records written by older code). Rooms of more
    /// than `queue_above` recipients go through the queue when the chat has one. Connections
    /// found gone leave the table and their departures are announced (presence).
    pub(crate) async fn send_to_room(
        &self,
        room: &RoomId,
        message: &Value,
        exclude: Option<&ConnectionId>,
        ctx: &RequestContext,
        deadline: Option<Instant>,
    ) -> Result<Dispatched> {
        let payload = Payload::json(message)?;
        // The broadcaster's Gone cleanup spares connections still in their `$connect` (API
        // Gateway answers 410 until it returns); presence announces the records it removed.
        let dispatched = self
            .dispatch_for(ctx, deadline)
            .send(room, &payload, exclude)
            .await?;
        self.after_dispatch(room, &dispatched, ctx, deadline).await;
        Ok(dispatched)
    }

    /// Appends `message` to the room's `log`, then sends its envelope as
    /// [`send_to_room`](Self::send_to_room) sends a message (same dispatch, same Gone cleanup and
    /// presence). An append that fails sends nothing; a fan-out that could not start after the
    /// append is in [`Published::delivery`] (the message is logged: not an error to retry).
    pub(crate) async fn publish_to_room(
        &self,
        log: &Arc<dyn MessageLog>,
        room: &RoomId,
        message: Value,
        exclude: Option<&ConnectionId>,
        ctx: &RequestContext,
        deadline: Option<Instant>,
    ) -> Result<Published> {
        let published = Publisher::new(Arc::clone(log), self.dispatch_for(ctx, deadline))
            .publish(room, LogMessage::new(message), exclude)
            .await?;
        if let Ok(dispatched) = &published.delivery {
            self.after_dispatch(room, dispatched, ctx, deadline).await;
        }
        Ok(published)
    }

    /// Logs how a room fan-out went and announces the departures of connections it found gone.
    async fn after_dispatch(
        &self,
        room: &RoomId,
        dispatched: &Dispatched,
        ctx: &RequestContext,
        deadline: Option<Instant>,
    ) {
        match dispatched {
            Dispatched::InLine(report) => {
                warn_if_incomplete(room, report);
                self.announce_departed(report, ctx, deadline).await;
            }
            Dispatched::Queued(enqueued) => {
                tracing::info!(%room, fanout_id = %enqueued.fanout_id, jobs = enqueued.jobs, targets = enqueued.targets, "room fan-out queued");
            }
            _ => {}
        }
    }
}

fn warn_if_incomplete(room: &RoomId, report: &BroadcastReport) {
    if !report.is_success() {
        let error = report.first_error().map(|e| e.chain().to_string());
        tracing::warn!(%room, %report, error = error.as_deref().unwrap_or(""), "room fan-out incomplete");
    }
}
