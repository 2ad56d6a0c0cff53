//! Entering a room: `$connect` (the first room) and `join`. Both ask the room policy
//! ([`Chat::with_room_policy`]) before anything is written or announced: a refused room
//! answers 403 with the reason, stores nothing and tells no one.

use serde_json::json;
use stateless_ws::error::{Error, Result};
use stateless_ws::event::{ConnectEvent, RequestContext, RouteResponse};
use stateless_ws::ids::{RoomId, UserId};
use stateless_ws::policy::RoomRequest;
use stateless_ws::store::{ConnectionStore, Membership};

use crate::{Chat, IdentitySource, chat_error};

impl Chat {
    /// `$connect`: records the connection in its first room (query string `room`), when the
    /// room policy admits the user — with the grant in query string `grant`, for a private room.
    ///
    /// # Errors
    ///
    /// Store or policy failures; client mistakes and refusals are 4xx responses.
    pub async fn on_connect(&self, event: &ConnectEvent) -> Result<RouteResponse> {
        let ctx = &event.context;
        let room = match event.query("room") {
            None => self.config.default_room.clone(),
            Some(name) => match RoomId::new(name) {
                Ok(room) => room,
                Err(e) => {
                    return Ok(chat_error(400, format!("query string `room`: {e}")));
                }
            },
        };
        let user = match self.user_from_authorizer(ctx) {
            Ok(user) => user,
            Err(reason) => return Ok(chat_error(401, reason)),
        };
        let user = match (&self.config.identity, user) {
            (_, Some(user)) => Some(user),
            (IdentitySource::InsecureQueryString { param }, None) => match event.query(param) {
                None => None,
                Some(name) => match UserId::new(name) {
                    Ok(user) => Some(user),
                    Err(e) => {
                        return Ok(chat_error(400, format!("query string `{param}`: {e}")));
                    }
                },
            },
            (IdentitySource::Authorizer { .. }, None) => None,
        };
        if user.is_none() && self.config.require_auth {
            return Ok(chat_error(
                401,
                "unauthorized: no user identity from the authorizer",
            ));
        }
        if let Some(refused) = self
            .admit(ctx, &room, user.as_ref(), event.query("grant"))
            .await?
        {
            return Ok(refused);
        }
        let mut record = Membership::new(ctx.connection_id.clone(), room.clone());
        if let Some(ms) = ctx.connected_at.and_then(|ms| u64::try_from(ms).ok()) {
            record = record.with_connected_at(ms / 1_000);
        }
        if let Some(user) = user {
            record = record.with_user(user);
        }
        if let Some(endpoint) = self.endpoint_for(ctx) {
            record = record.with_endpoint(endpoint);
        }
        self.store.join(&record).await?;
        tracing::info!(connection = %ctx.connection_id, %room, user = ?record.user_id, "connected");
        // To the others only: this connection cannot be posted to until `$connect` returns.
        self.announce_entered(&record, ctx, None).await;
        Ok(RouteResponse::ok())
    }

    /// `join`: adds a room to the connection, when the room policy admits its user.
    pub(crate) async fn on_join(
        &self,
        ctx: &RequestContext,
        room: &RoomId,
        grant: Option<&str>,
        deadline: Option<std::time::Instant>,
    ) -> Result<RouteResponse> {
        let me = &ctx.connection_id;
        // Every record of the connection: the cap counts them, and the new record copies the
        // user, `connectedAt` and endpoint. The cap bounds this read.
        let memberships = self.store.connection_rooms(me).await?;
        let already_in = memberships.iter().any(|c| &c.room == room);
        let limit = self.config.max_rooms_per_connection;
        if !already_in && memberships.len() >= limit {
            return Ok(chat_error(
                400,
                format!(
                    "cannot join `{room}`: a connection may be in at most {limit} rooms \
                     (max_rooms_per_connection) and this one is in {}; leave one first",
                    memberships.len()
                ),
            ));
        }
        let user = self.user_of(memberships.iter().find(|c| c.user_id.is_some()), ctx);
        // A connection already in the room was admitted then; joining again only rewrites it.
        if !already_in && let Some(refused) = self.admit(ctx, room, user.as_ref(), grant).await? {
            return Ok(refused);
        }
        let mut record = Membership::new(me.clone(), room.clone());
        if let Some(user) = &user {
            record = record.with_user(user.clone());
        }
        if let Some(existing) = memberships.first() {
            record.connected_at = existing.connected_at;
        }
        if let Some(endpoint) = memberships
            .iter()
            .find_map(|c| c.endpoint.clone())
            .or_else(|| self.endpoint_for(ctx))
        {
            record = record.with_endpoint(endpoint);
        }
        self.store.join(&record).await?;
        if !already_in {
            self.announce_entered(&record, ctx, deadline).await;
        }
        Ok(RouteResponse::json(
            200,
            &json!({"type": "joined", "room": room, "userId": user}),
        ))
    }

    /// `None` when the room policy admits `user` to `room`; otherwise the 403 to answer (the
    /// policy logged the refusal at WARN).
    async fn admit(
        &self,
        ctx: &RequestContext,
        room: &RoomId,
        user: Option<&UserId>,
        grant: Option<&str>,
    ) -> Result<Option<RouteResponse>> {
        let request = RoomRequest::new(room)
            .with_user(user)
            .with_authorizer(ctx.authorizer.as_ref())
            .with_grant(grant);
        match self.rooms.check(&request).await {
            Ok(()) => Ok(None),
            Err(Error::RoomRefused(refusal)) => {
                // The policy logged the reason at WARN; this names the connection.
                tracing::info!(connection = %ctx.connection_id, %room, "room refused");
                Ok(Some(chat_error(403, refusal.to_string())))
            }
            Err(e) => Err(e),
        }
    }
}
