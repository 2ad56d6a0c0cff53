//! A complete chat application on this crate's pieces: the route logic behind the Lambda
//! binaries (`src/bin/lambda_*.rs`) and the local demo (`src/bin/local_chat.rs`), written once.
//!
//! [`Chat`] takes its dependencies (a [`ConnectionStore`], a [`ConnectionSender`]) and an event,
//! and answers what API Gateway expects from a Lambda proxy integration ([`RouteResponse`]). It
//! holds no state between events, so it runs the same in a Lambda, in a container, or behind the
//! local gateway.
//!
//! # Routes
//!
//! | route | what it does | answer to the caller |
//! |---|---|---|
//! | `$connect` | records the connection in its first room (query string `room`, default `general`; `grant` for a private room), announces `"joined"` to the room | 200, or 400 (bad room) / 401 (no identity when required) / 403 (the [room policy](self#rooms) refuses) — a non-2xx refuses the connection |
//! | `$disconnect` | removes the connection from every room (idempotent), announces `"left"` to each | 200 |
//! | `join` | `{"action":"join","room":"r"}` (`"grant":"…"` for a private room): joins `r` (at most [`ChatConfig::max_rooms_per_connection`] rooms), announces `"joined"` | `{"type":"joined","room":"r","userId":…}`, or 400 naming the limit, or 403 `{"type":"error","message":…}` with the room policy's reason |
//! | `leave` | `{"action":"leave","room":"r"}` (not the connection's last room), announces `"left"` | `{"type":"left","room":"r","userId":…}` |
//! | `send` | `{"action":"send","room":"r","message":"hi"}`: a room the sender has joined | `{"type":"sent","room":"r","delivered":N,"failed":M}`, or for a room above [`ChatConfig::queue_above`] handed to the fan-out queue, `{"type":"queued","room":"r","targets":N,"jobs":M}` at once; with a [message log](Chat::with_log) the message is appended first and both answers add its `"offset"` and `"epoch"` |
//! | `resume` | `{"action":"resume","room":"r","epoch":"…" \| null,"offset":N}`: with a [message log](Chat::with_log), posts to the caller the history of a room it has joined after (epoch, offset), as `room.history` pages | `{"type":"resumed","room":"r","pages":P,"messages":M,"recovered":bool,"more":bool}`; 400 when the chat has no log |
//! | `members` | `{"action":"members","room":"r"}`: who is in a room the caller has joined | the presence snapshot `{"type":"presence","event":"members","room":"r","members":[{"memberId":…,"userId":…,"connections":N}],"at":…}` |
//! | `ping` | refreshes the connection's TTL | `{"type":"pong"}` |
//! | `$default` | anything else: unknown action, not JSON | `{"type":"error","message":…}` |
//!
//! # Cost per message
//!
//! `send` and `members` read one record of the sender — its membership of the room it names
//! ([`ConnectionStore::membership`], a `GetItem` in DynamoDB), which also carries its user id —
//! so their cost does not grow with the number of rooms the connection is in. `join`, `leave`
//! and `ping` read or write every record of the connection (the room count for the cap, the
//! "last room" check, the TTL of each record): at most
//! [`max_rooms_per_connection`](ChatConfig::max_rooms_per_connection) of them.
//!
//! Messages delivered to room members are JSON: `{"type":"message","room":…,"userId":…,"message":…}`
//! — or, with a [message log](Chat::with_log), that object as the `data` of the history envelope
//! `{"type":"room.message","room":…,"epoch":…,"offset":N,"id":…,"at":…,"data":{…}}` (see
//! [`stateless_ws::history`] for the protocol a client follows to lose nothing across
//! reconnects) — and the presence events of [`stateless_ws::presence`]: `{"type":"presence","event":"joined" |
//! "left","room":…,"members":[…],"at":…}` — a user with two tabs is one member, `"joined"`
//! when their first connection enters a room and `"left"` when their last leaves, whichever way
//! (`$connect`, `join`, `$disconnect`, `leave`, or removed after a 410 by a `send`'s cleanup,
//! batched per room). API Gateway does not let `$connect` post to the connecting client, so a
//! client asks for the snapshot (`members`) once its socket is open.
//!
//! # Identity
//!
//! The user id comes from the authorizer context of the `$connect` event (`principalId`, or the
//! key named by [`IdentitySource::Authorizer`]) and is stored with the connection; later messages
//! take it from the store, never from the message. A body that tries to set `userId` is refused.
//! Only [`IdentitySource::InsecureQueryString`], an explicit demo mode, reads the user from the
//! query string.
//!
//! # Rooms
//!
//! `$connect`'s first room and every `join` go through the room policy
//! ([`stateless_ws::policy`]) **before** anything is written or announced: a refused room
//! answers 403 with the reason, stores no record, and no one hears of it. The chat's rules
//! ([`ChatRooms`], from the environment in [`Chat::from_env`]): `private-*` rooms need a
//! signed grant for the user and room, `user-{id}` rooms admit only that user, every other
//! room is open. A client gets a grant from the application's backend (the local demo's
//! `POST /grant`), which issues it only to the user it signed in, with
//! [`RoomGrant::issue`](stateless_ws::policy::RoomGrant::issue), and sends it with the join:
//! `{"action":"join","room":"private-x","grant":"…"}` or `?room=private-x&grant=…`. Presence
//! (`members`, `"joined"` / `"left"`) answers and reaches only the room's members.
//!
//! # History (opt-in)
//!
//! [`Chat::with_log`] gives the chat a [`MessageLog`]: `send` appends each message to the room's
//! log before fanning it out ([`Publisher::publish`]; an append that fails answers an error and
//! sends nothing), and `resume` lets a reconnecting client get what it missed
//! ([`Publisher::resume`], bounded by [`ResumeLimits::default`]). Without a log the chat behaves
//! as if history did not exist, and `resume` answers an error.

use std::sync::Arc;

use serde_json::{Value, json};

mod action;
mod config;
mod enter;
mod fanout;
pub mod lambda;
mod presence;
mod rooms;

pub use action::ChatAction;
use action::describe;
pub use config::{ChatConfig, DEFAULT_MAX_ROOMS_PER_CONNECTION, IdentitySource, env};
pub use rooms::ChatRooms;

use stateless_ws::broadcast::{BroadcastConfig, Broadcaster, ConnectionSender};
use stateless_ws::error::{Error, Result};
use stateless_ws::event::{
    DisconnectEvent, MessageEvent, RequestContext, RouteResponse, WebSocketEvent,
};
use stateless_ws::history::{MessageLog, Position, Published, Publisher, ResumeLimits};
use stateless_ws::ids::UserId;
use stateless_ws::policy::RoomPolicy;
use stateless_ws::queue::{Dispatched, FanoutPlanner};
use stateless_ws::store::Membership;
use stateless_ws::store::{ConnectionStore, ConnectionStoreExt};

/// The chat application; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Chat {
    store: Arc<dyn ConnectionStore>,
    broadcaster: Broadcaster,
    config: ChatConfig,
    queue: Option<FanoutPlanner>,
    log: Option<Arc<dyn MessageLog>>,
    rooms: Arc<dyn RoomPolicy>,
}

/// Keys a client may not put in a message: the sender is the connection's identity.
const IDENTITY_KEYS: [&str; 4] = ["userId", "user_id", "sender", "from"];

impl Chat {
    /// A chat on `store` and `sender` with `config` and the default [`BroadcastConfig`].
    pub fn new(
        store: Arc<dyn ConnectionStore>,
        sender: Arc<dyn ConnectionSender>,
        config: ChatConfig,
    ) -> Self {
        Self {
            broadcaster: Broadcaster::new(Arc::clone(&store), sender),
            store,
            config,
            queue: None,
            log: None,
            rooms: ChatRooms::default()
                .policy()
                .unwrap_or_else(|_| Arc::new(stateless_ws::policy::AllowAll)),
        }
    }

    /// Decides who may enter which room, on `$connect` and `join` (see
    /// [Rooms](self#rooms)); the default is [`ChatRooms::default`]'s: every room open except
    /// `private-*` (closed: there is no grant key) and `user-{id}` (that user's).
    #[must_use]
    pub fn with_room_policy(mut self, policy: Arc<dyn RoomPolicy>) -> Self {
        self.rooms = policy;
        self
    }

    /// The room policy.
    pub fn room_policy(&self) -> &Arc<dyn RoomPolicy> {
        &self.rooms
    }

    /// Keeps every room message in `log` (see [History](self#history-opt-in)): `send` appends
    /// before it fans out and answers the message's `offset` and `epoch`; `resume` posts a
    /// client what it missed.
    #[must_use]
    pub fn with_log(mut self, log: Arc<dyn MessageLog>) -> Self {
        self.log = Some(log);
        self
    }

    /// The message log, when history is on.
    pub fn log(&self) -> Option<&Arc<dyn MessageLog>> {
        self.log.as_ref()
    }

    /// Fans out through `queue` the rooms larger than [`ChatConfig::queue_above`]; workers
    /// (`lambda_fanout_worker`, or `InMemoryQueue::spawn_workers` locally) deliver.
    #[must_use]
    pub fn with_queue(mut self, queue: FanoutPlanner) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Replaces the broadcaster's tuning.
    #[must_use]
    pub fn with_broadcast_config(mut self, config: BroadcastConfig) -> Self {
        self.broadcaster = self.broadcaster.with_config(config);
        self
    }

    /// Everything from the environment, for a Lambda's start-up: [`DynamoDbStore::from_env`]
    /// (`CONNECTIONS_TABLE`, …), a [`SigV4Sender`] on `aws_config`'s default chain,
    /// [`ChatConfig::from_env`], and — when `FANOUT_QUEUE_URL` is set — the SQS queue of queued
    /// fan-out (`SqsQueue::from_env_with`), its jobs signed with `FANOUT_JOB_KEY` if set
    /// (`JobKey::from_env`), and the room rules of [`ChatRooms::from_env`] (`CHAT_PUBLIC_ROOMS`,
    /// `CHAT_PRIVATE_ROOMS`, `CHAT_USER_ROOMS`, `CHAT_ROOMS_CLAIM`, `ROOM_GRANT_KEY` or
    /// `ROOM_GRANT_KEY_SECRET_ARN`).
    ///
    /// [`DynamoDbStore::from_env`]: stateless_ws::store::DynamoDbStore::from_env
    /// [`SigV4Sender`]: stateless_ws::broadcast::SigV4Sender
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the missing or invalid variable, or `CHAT_QUEUE_ABOVE` /
    /// `CHAT_PRESENCE_QUEUE_ABOVE` set without `FANOUT_QUEUE_URL`. Never panics.
    pub async fn from_env() -> Result<Self> {
        let config = ChatConfig::from_env()?;
        let store = stateless_ws::store::DynamoDbStore::from_env().await?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        // The lean sender: the same errors as ApiGatewaySender, about a third of the CPU per
        // post (`cargo bench --bench posts_per_core`).
        let mut sender = stateless_ws::broadcast::SigV4Sender::new(&sdk)?;
        if let Some(endpoint) = &config.management_endpoint {
            sender = sender.with_default_endpoint(endpoint)?;
        }
        let store: Arc<dyn ConnectionStore> = Arc::new(store);
        let queued = config.queue_above.is_some() || config.presence_queue_above.is_some();
        let mut rooms = ChatRooms::from_env()?;
        // ROOM_GRANT_KEY_SECRET_ARN: the grant key from Secrets Manager, read once here.
        if let Some(grants) = stateless_ws::policy::SignedGrants::from_env_with(&sdk).await? {
            rooms.grants = Some(grants);
        }
        let mut chat = Self::new(Arc::clone(&store), Arc::new(sender), config)
            .with_room_policy(rooms.policy()?);
        match std::env::var(stateless_ws::env::FANOUT_QUEUE_URL) {
            Ok(url) if !url.trim().is_empty() => {
                let queue = stateless_ws::queue::SqsQueue::from_env_with(&sdk)?;
                // FANOUT_JOB_KEY, when set, signs the jobs (the worker checks them with it).
                let key = stateless_ws::queue::JobKey::from_env()?;
                chat =
                    chat.with_queue(FanoutPlanner::new(store, Arc::new(queue)).with_job_key(key));
            }
            _ if queued => {
                return Err(Error::Config {
                    message: format!(
                        "environment variable {} or {} is set but {} is not: there is no queue to fan out through",
                        env::QUEUE_ABOVE,
                        env::PRESENCE_QUEUE_ABOVE,
                        stateless_ws::env::FANOUT_QUEUE_URL
                    ),
                });
            }
            _ => {}
        }
        // Message history (opt-in): MESSAGES_TABLE names the log's table.
        if std::env::var(stateless_ws::env::MESSAGES_TABLE).is_ok_and(|t| !t.trim().is_empty()) {
            let log = stateless_ws::history::DynamoDbLog::from_env_with(&sdk)?;
            chat = chat.with_log(Arc::new(log));
        }
        Ok(chat)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ConnectionStore> {
        &self.store
    }

    /// The broadcaster (for server-side pushes such as notifying a user).
    pub fn broadcaster(&self) -> &Broadcaster {
        &self.broadcaster
    }

    /// The configuration.
    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    /// Handles any event; `deadline` (e.g. the Lambda's, minus a margin) bounds the fan-out.
    pub async fn handle(
        &self,
        event: &WebSocketEvent,
        deadline: Option<std::time::Instant>,
    ) -> RouteResponse {
        let result = match event {
            WebSocketEvent::Connect(e) => self.on_connect(e).await,
            WebSocketEvent::Disconnect(e) => self.on_disconnect(e).await,
            WebSocketEvent::Message(e) => self.on_message(e, deadline).await,
        };
        result.unwrap_or_else(|error| {
            tracing::error!(error = %error.chain(), connection = %event.connection_id(), "chat handler failed");
            chat_error(500, "internal error; please retry")
        })
    }

    fn endpoint_for(&self, ctx: &RequestContext) -> Option<String> {
        self.config
            .management_endpoint
            .clone()
            .or_else(|| ctx.management_endpoint().ok())
    }

    /// The user id stored with the connection (from its `$connect`); the authorizer's,
    /// repeated on every event, only when the record has none.
    fn user_of(&self, record: Option<&Membership>, ctx: &RequestContext) -> Option<UserId> {
        record
            .and_then(|c| c.user_id.clone())
            .or_else(|| self.user_from_authorizer(ctx).ok().flatten())
    }

    fn user_from_authorizer(
        &self,
        ctx: &RequestContext,
    ) -> std::result::Result<Option<UserId>, String> {
        let claim = match &self.config.identity {
            IdentitySource::Authorizer { claim } => claim.as_str(),
            IdentitySource::InsecureQueryString { .. } => "principalId",
        };
        let Some(value) = ctx.authorizer.as_ref().and_then(|a| a.get_str(claim)) else {
            return Ok(None);
        };
        UserId::new(value.into_owned())
            .map(Some)
            .map_err(|e| format!("authorizer context `{claim}`: {e}"))
    }

    /// `$disconnect`: removes the connection from every room. Idempotent.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn on_disconnect(&self, event: &DisconnectEvent) -> Result<RouteResponse> {
        let removed = self.store.disconnect(&event.context.connection_id).await?;
        tracing::info!(
            connection = %event.context.connection_id,
            rooms = removed.len(),
            status = ?event.status_code(),
            reason = ?event.reason(),
            "disconnected"
        );
        self.announce_left(&removed, &event.context, None).await;
        Ok(RouteResponse::ok())
    }

    /// A message route (`join`, `leave`, `send`, `members`, `ping`, `resume`, `$default`),
    /// chosen by the body's `action` as API Gateway's `$request.body.action` does.
    ///
    /// # Errors
    ///
    /// Store failures; client mistakes are 400 responses with `{"type":"error"}` bodies.
    pub async fn on_message(
        &self,
        event: &MessageEvent,
        deadline: Option<std::time::Instant>,
    ) -> Result<RouteResponse> {
        let body: Value = match event.json() {
            Ok(v) => v,
            Err(_) => {
                return Ok(chat_error(
                    400,
                    "message is not valid JSON: send {\"action\": \"join\" | \"leave\" | \"send\" | \"members\" | \"ping\" | \"resume\", ...}",
                ));
            }
        };
        let Some(object) = body.as_object() else {
            return Ok(chat_error(
                400,
                "message must be a JSON object with an `action`",
            ));
        };
        if let Some(key) = IDENTITY_KEYS.iter().find(|k| object.contains_key(**k)) {
            return Ok(chat_error(
                400,
                format!(
                    "`{key}` cannot be set by the client: the sender is the connection's authenticated identity"
                ),
            ));
        }
        let action_name = match object.get("action") {
            Some(Value::String(a)) => a.clone(),
            Some(_) => return Ok(chat_error(400, "`action` must be a string")),
            None => return Ok(chat_error(400, "missing `action`")),
        };
        if !ChatAction::NAMES.contains(&action_name.as_str()) {
            return Ok(chat_error(
                400,
                format!(
                    "unknown action `{action_name}`: expected join, leave, send, members, ping or resume"
                ),
            ));
        }
        let action: ChatAction = match serde_json::from_value(body) {
            Ok(action) => action,
            Err(e) => return Ok(chat_error(400, describe(&action_name, &e))),
        };
        let ctx = &event.context;
        let me = &ctx.connection_id;
        // The user id is the one stored with the connection (from its `$connect`); the
        // authorizer's, repeated on every event, only when the record has none.
        let user_of = |record: Option<&Membership>| self.user_of(record, ctx);

        match action {
            ChatAction::Ping => {
                self.store.refresh(me).await?;
                Ok(RouteResponse::json(200, &json!({"type": "pong"})))
            }
            ChatAction::Join { room, grant } => {
                self.on_join(ctx, &room, grant.as_deref(), deadline).await
            }
            ChatAction::Leave { room } => {
                let Some(membership) = self.store.membership(me, &room).await? else {
                    return Ok(chat_error(400, format!("not in room `{room}`")));
                };
                // The records are the connection's presence in the table (and, without an
                // authorizer, its only identity): a connection keeps at least one room.
                let rooms = self.store.connection_rooms(me).await?;
                if rooms.iter().all(|c| c.room == room) {
                    return Ok(chat_error(
                        400,
                        format!(
                            "`{room}` is the connection's last room: join another first, or disconnect"
                        ),
                    ));
                }
                let user = user_of(Some(&membership));
                self.store.leave(me, &room).await?;
                self.announce_left(std::slice::from_ref(&membership), ctx, deadline)
                    .await;
                Ok(RouteResponse::json(
                    200,
                    &json!({"type": "left", "room": room, "userId": user}),
                ))
            }
            ChatAction::Send { room, message } => {
                if message.is_empty() {
                    return Ok(chat_error(400, "`message` is empty"));
                }
                if message.len() > self.config.max_message_len {
                    return Ok(chat_error(
                        400,
                        format!(
                            "`message` is {} bytes; the limit is {}",
                            message.len(),
                            self.config.max_message_len
                        ),
                    ));
                }
                // One record read, whatever the number of rooms the sender is in.
                let Some(membership) = self.store.membership(me, &room).await? else {
                    return Ok(chat_error(
                        403,
                        format!("not in room `{room}`: join it before sending"),
                    ));
                };
                let user = user_of(Some(&membership));
                let outgoing =
                    json!({"type": "message", "room": room, "userId": user, "message": message});
                let exclude = (!self.config.echo_to_sender).then_some(me);
                let (dispatched, logged) = match &self.log {
                    None => (
                        self.send_to_room(&room, &outgoing, exclude, ctx, deadline)
                            .await?,
                        None,
                    ),
                    Some(log) => match self
                        .publish_to_room(log, &room, outgoing, exclude, ctx, deadline)
                        .await
                    {
                        Ok(Published {
                            delivery: Ok(dispatched),
                            envelope,
                            ..
                        }) => (dispatched, Some(envelope)),
                        // Logged, but the fan-out could not start (Publisher logged why at
                        // WARN): the sender must not send it again — members get it when they
                        // resume.
                        Ok(Published {
                            delivery: Err(_),
                            envelope,
                            ..
                        }) => {
                            return Ok(RouteResponse::json(
                                200,
                                &json!({
                                    "type": "logged",
                                    "room": room,
                                    "offset": envelope.offset,
                                    "epoch": envelope.epoch,
                                    "message": "kept in the room's history but not sent \
                                                now; members get it when they resume — do not \
                                                send it again",
                                }),
                            ));
                        }
                        Err(Error::PayloadTooLarge { size, limit }) => {
                            return Ok(chat_error(
                                400,
                                format!(
                                    "`message` does not fit the room's history: {size} bytes as \
                                     logged, the limit is {limit}"
                                ),
                            ));
                        }
                        Err(e) => return Err(e),
                    },
                };
                let mut answer = match dispatched {
                    Dispatched::InLine(report) => json!({
                        "type": "sent",
                        "room": room,
                        "delivered": report.delivered_count,
                        "failed": report.failed.len() + report.not_attempted.len(),
                    }),
                    Dispatched::Queued(enqueued) => json!({
                        "type": "queued",
                        "room": room,
                        "targets": enqueued.targets,
                        "jobs": enqueued.jobs,
                    }),
                    // `send` (no maximum) answers in-line or queued; an outcome added to the
                    // library later is not silently reported as sent.
                    other => {
                        tracing::error!(%room, ?other, "unexpected fan-out outcome");
                        return Ok(chat_error(500, "internal error; please retry"));
                    }
                };
                if let Some(envelope) = logged {
                    answer["offset"] = json!(envelope.offset);
                    answer["epoch"] = json!(envelope.epoch);
                }
                Ok(RouteResponse::json(200, &answer))
            }
            ChatAction::Resume {
                room,
                epoch,
                offset,
            } => {
                let Some(log) = &self.log else {
                    return Ok(chat_error(
                        400,
                        "`resume` is not available: this chat keeps no message history",
                    ));
                };
                // After the join is written, as the protocol asks: a message appended before
                // this read is in the history, one appended after reaches the caller live.
                let Some(membership) = self.store.membership(me, &room).await? else {
                    return Ok(chat_error(
                        403,
                        format!("not in room `{room}`: join it before resuming"),
                    ));
                };
                let mut from = Position::start();
                from.epoch = epoch;
                from.offset = offset;
                let resumed = Publisher::new(Arc::clone(log), self.dispatch_for(ctx, deadline))
                    .resume(&membership, &room, &from, ResumeLimits::default())
                    .await?;
                if let Some(report) = resumed.reports.iter().find(|r| !r.is_success()) {
                    tracing::warn!(%room, connection = %me, %report, "resume: a history page was not delivered");
                }
                Ok(RouteResponse::json(
                    200,
                    &json!({
                        "type": "resumed",
                        "room": room,
                        "pages": resumed.pages,
                        "messages": resumed.messages,
                        "recovered": resumed.recovered,
                        "more": resumed.more,
                    }),
                ))
            }
            ChatAction::Members { room } => {
                if self.store.membership(me, &room).await?.is_none() {
                    return Ok(chat_error(403, format!("not in room `{room}`")));
                }
                let snapshot = self.presence(ctx, deadline).members(&room).await?;
                Ok(RouteResponse::text(200, snapshot.to_payload()?.as_str()))
            }
        }
    }
}

/// `status` with the chat protocol's error shape `{"type":"error","message":…}`.
fn chat_error(status: u16, message: impl Into<String>) -> RouteResponse {
    RouteResponse::json(status, &json!({"type": "error", "message": message.into()}))
}
