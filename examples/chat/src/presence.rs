//! Presence in the chat: every way in or out of a room announces through one path, the
//! library's [`Presence`]. `$connect` and `join` call [`Chat::announce_entered`]; `$disconnect`
//! and `leave` call [`Chat::announce_left`]; the records the broadcaster's Gone cleanup removed
//! after a `send` go to [`Presence::departed`], which announces them (batched per room).
//!
//! Announcing never fails the route: the table is already written, and a client that missed an
//! event gets the truth from the next `members` snapshot. Failures are logged.

use std::time::Instant;

use stateless_ws::broadcast::{BroadcastReport, Broadcaster};
use stateless_ws::event::RequestContext;
use stateless_ws::ids::ConnectionId;
use stateless_ws::presence::{Presence, PresenceConfig, PresenceReport};
use stateless_ws::store::Membership;

use crate::Chat;

impl Chat {
    /// The broadcaster of one invocation: its deadline, and this event's management endpoint
    /// for records that name none (written by older code).
    pub(crate) fn broadcaster_for(
        &self,
        ctx: &RequestContext,
        deadline: Option<Instant>,
    ) -> Broadcaster {
        let mut broadcaster = match deadline {
            Some(d) => self.broadcaster.clone().with_deadline(d),
            None => self.broadcaster.clone(),
        };
        if let Some(endpoint) = self.endpoint_for(ctx) {
            broadcaster = broadcaster.with_default_endpoint(endpoint);
        }
        broadcaster
    }

    /// Presence for one invocation: the invocation's broadcaster, the queue for rooms above
    /// [`ChatConfig::presence_queue_threshold`](crate::ChatConfig::presence_queue_threshold), and
    /// [`ChatConfig::presence_max_room_size`](crate::ChatConfig::presence_max_room_size).
    pub fn presence(&self, ctx: &RequestContext, deadline: Option<Instant>) -> Presence {
        let mut config = PresenceConfig::default();
        config.max_room_size = self.config.presence_max_room_size;
        config.queue_above = self.config.presence_queue_threshold();
        let presence = Presence::new(self.broadcaster_for(ctx, deadline)).with_config(config);
        match self.queue_for(ctx) {
            Some(queue) => presence.with_queue(queue),
            None => presence,
        }
    }

    /// Announces `record`'s connection to the others in its room (after the join is written).
    pub(crate) async fn announce_entered(
        &self,
        record: &Membership,
        ctx: &RequestContext,
        deadline: Option<Instant>,
    ) {
        let result = self.presence(ctx, deadline).entered(record).await;
        log("entered", &record.connection_id, result);
    }

    /// Announces the departures of `removed` (after they are removed).
    pub(crate) async fn announce_left(
        &self,
        removed: &[Membership],
        ctx: &RequestContext,
        deadline: Option<Instant>,
    ) {
        if removed.is_empty() {
            return;
        }
        let result = self.presence(ctx, deadline).left(removed).await;
        log("left", &ctx.connection_id, result);
    }

    /// Announces the departures of the connections a `send`'s Gone cleanup removed (the
    /// broadcaster spares those still in their `$connect`).
    pub(crate) async fn announce_departed(
        &self,
        report: &BroadcastReport,
        ctx: &RequestContext,
        deadline: Option<Instant>,
    ) {
        if report.removed.is_empty() {
            return;
        }
        let result = self.presence(ctx, deadline).departed(report).await;
        log("gone", &ctx.connection_id, result);
    }
}

fn log(what: &str, connection: &ConnectionId, result: stateless_ws::Result<PresenceReport>) {
    match result {
        Ok(report) => tracing::debug!(
            %connection,
            what,
            announcements = report.announcements.len(),
            cleaned = report.cleaned.len(),
            kept_connecting = report.kept_connecting.len(),
            "presence"
        ),
        Err(error) => {
            tracing::warn!(%connection, what, error = %error.chain(), "presence announcement failed");
        }
    }
}
