//! Live presence: tell a room who joined and who left, as Pusher's presence channels, Ably's
//! `presence.enter/leave` and Centrifugo's join/leave events do — on the routing table and the
//! broadcaster alone, with no state besides the table.
//!
//! A handler calls [`Presence`] after it has written the table:
//!
//! | when | call | announces to the others in the room |
//! |---|---|---|
//! | `$connect` / a join wrote the record | [`entered(&record)`](Presence::entered) | `"joined"`, when it is the user's first connection there |
//! | `$disconnect` ([`disconnect`](crate::store::ConnectionStoreExt::disconnect) returns the removed records), a leave | [`left(&removed)`](Presence::left) | `"left"`, when it was the user's last connection there |
//! | a broadcast's Gone cleanup removed records | [`departed(&report)`](Presence::departed) | one `"left"` per room listing every member that left it |
//! | a client asks who is there | [`members(&room)`](Presence::members) | (answered to the caller) the `"members"` snapshot |
//!
//! Every message is a [`PresenceEvent`]: `{"type":"presence","event":"joined"|"left"|"members",
//! "room":…,"members":[{"memberId":…,"userId":…,"connections":N}],"at":<Unix ms>}`.
//! A member's `memberId` is `user:<user id>`, or `conn:<connection id>` for an anonymous
//! connection (a member of its own) — namespaced, so a user id equal to a connection id is
//! another member; `connections` counts its live connections in the room after the change
//! (0 in `"left"`). A snapshot lists at most
//! [`max_listed_members`](PresenceConfig::max_listed_members) (1,000) members or 128 KB of them,
//! and says `"truncated": true` when it stopped there. Nothing else from the records is ever
//! sent: no authorizer context, tokens, endpoints, expiries, or the connection ids of users.
//!
//! ```
//! use std::sync::Arc;
//! use stateless_ws::broadcast::{Broadcaster, RecordingSender};
//! use stateless_ws::presence::{Presence, PresenceEvent, PresenceKind};
//! use stateless_ws::store::{ConnectionStore, ConnectionStoreExt, InMemoryStore};
//! use stateless_ws::{ConnectionId, Membership, RoomId, UserId};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let store: Arc<dyn ConnectionStore> = Arc::new(InMemoryStore::new());
//! let sender = RecordingSender::new(); // ApiGatewaySender in production
//! let presence = Presence::new(Broadcaster::new(store.clone(), Arc::new(sender.clone())));
//! let room = RoomId::new("general")?;
//! let record = |conn: &str, user: &str| {
//!     Membership::new(ConnectionId::new(conn).unwrap(), room.clone()).with_user(UserId::new(user).unwrap())
//! };
//!
//! // bob is in the room; alice connects ($connect wrote her record): bob hears "joined".
//! store.join(&record("bob1=", "bob")).await?;
//! store.join(&record("alice1=", "alice")).await?;
//! presence.entered(&record("alice1=", "alice")).await?;
//! let event: PresenceEvent = serde_json::from_str(&sender.messages(&ConnectionId::new("bob1=")?)[0])?;
//! assert_eq!((event.event, event.members[0].member_id.as_str()), (PresenceKind::Joined, "user:alice"));
//!
//! // alice opens a second tab: still one member, nothing to announce.
//! store.join(&record("alice2=", "alice")).await?;
//! assert!(presence.entered(&record("alice2=", "alice")).await?.announcements.is_empty());
//!
//! // her first tab closes ($disconnect): she is still there. Her last one: "left".
//! let removed = store.disconnect(&ConnectionId::new("alice1=")?).await?;
//! assert!(presence.left(&removed).await?.announcements.is_empty());
//! let removed = store.disconnect(&ConnectionId::new("alice2=")?).await?;
//! assert_eq!(presence.left(&removed).await?.announcements[0].kind, PresenceKind::Left);
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
//!
//! # One member per user, and races
//!
//! A user with two tabs is one member: `"joined"` when their first connection enters the room,
//! `"left"` when their last leaves. To count a user's connections in the room, `Presence`
//! lists the user's connections ([`user_connections`](crate::store::ConnectionStore::user_connections),
//! a secondary index that may lag) and confirms each with
//! [`membership`](crate::store::ConnectionStore::membership) (a strongly consistent read of the
//! record), so a stale index entry never hides a departure. The table is written first, then
//! counted:
//!
//! - two tabs leaving at once: whichever counts last sees both removals, so `"left"` is never
//!   missed (both may announce it);
//! - two tabs joining at once: the connection that is the earliest of the user's connections
//!   in the room by (`connectedAt`, connection id) announces, so when both see each other
//!   exactly one does; if one misses the other (index lag) both may.
//!
//! So events are **at least once and never missed** (given strongly consistent reads of the
//! records), and clients apply them idempotently by `memberId`: a `"joined"` for a present
//! member or a `"left"` for an absent one changes nothing. They are not ordered: a client keeps
//! the latest `at` per member and ignores older events, a snapshot counting as an event at its
//! `at` for every member.
//!
//! # Connections still in `$connect`
//!
//! API Gateway opens a connection only when its `$connect` integration has returned ("Until
//! execution of the integration associated with the `$connect` route is completed, the upgrade
//! request is pending and the actual connection will not be established", *API Gateway
//! developer guide, "The `$connect` and `$disconnect` routes"*); a post to it before that
//! answers 410 Gone. So [`entered`](Presence::entered) never posts to the connection that
//! entered — a client asks for the [`members`](Presence::members) snapshot once its socket is
//! open — and a connection whose record is younger than the broadcaster's
//! [`connect_grace`](crate::broadcast::BroadcastConfig::connect_grace) is never removed when a
//! presence post finds it gone: it is most likely another client in the middle of its own
//! `$connect`. The departures the Gone cleanup of presence's own posts finds are announced too,
//! for at most [`PresenceConfig::departure_rounds`] rounds.
//!
//! # Cost
//!
//! Announcing to a room of N members is one broadcast of N − 1 posts (streaming, or through the
//! [`FanoutPlanner`] for rooms above [`PresenceConfig::queue_above`] when one is configured: the
//! library's [`RoomDispatch`] chooses), plus one index query and one record read per connection
//! of the user. So every join and every leave costs N − 1 posts, and a room where everyone
//! reconnects (a deploy, a network blip) costs about N² posts: 1,000 members reconnecting is
//! about 2,000,000 posts, 200 s of the account's 10,000 requests/s. Above a few hundred
//! members, set [`PresenceConfig::max_room_size`]: rooms larger than it get no announcements
//! (each call then reads the room only until it has seen more than `max_room_size`
//! recipients), and clients fall back on the snapshot. Both limits count a room as
//! [`RoomDispatch`] does: the connections an announcement goes to, so not the one entering.
//! The chat example sets it from `CHAT_PRESENCE_MAX_ROOM_SIZE`.
//!
//! In-line, [`entered`](Presence::entered) returns only once its N − 1 posts are answered, so a
//! `$connect` takes longer the larger the room — and in a connect storm (N clients entering at
//! once) every one of them does. With a queue and [`PresenceConfig::queue_above`], a
//! `$connect` into a room above it reads the room and sends one job per 500 recipients, and the
//! workers post: its latency no longer depends on the room (`benches/presence.rs`, store and
//! management API latencies like DynamoDB's and API Gateway's: one `$connect` into a room of 100
//! / 400 takes 51 / 108 ms in-line, 38 / 38 ms queued above 50). The chat example queues
//! presence above `CHAT_PRESENCE_QUEUE_ABOVE` (its template: 100).
//!
//! # IAM
//!
//! A `$connect` or `$disconnect` function that announces presence posts: grant it
//! `execute-api:ManageConnections` on this API's `@connections` only
//! (`arn:aws:execute-api:REGION:ACCOUNT:API_ID/STAGE/POST/@connections/*`), and the reads
//! presence makes — `dynamodb:Query` (the `userId` and room indexes) and `dynamodb:GetItem` —
//! plus `dynamodb:BatchWriteItem` where it may remove connections an announcement found gone.
//! The chat example's SAM template does exactly that (its README has the IAM table).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use crate::broadcast::{BroadcastReport, Broadcaster};
use crate::error::Result;
use crate::ids::{ConnectionId, RoomId, UserId};
use crate::queue::{Dispatched, FanoutPlanner, RoomDispatch};
use crate::store::{ConnectionStore, Membership};

mod event;
pub use event::{Member, PresenceEvent, PresenceKind};
use event::{Snapshot, chunks};

/// Tuning of [`Presence`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresenceConfig {
    /// Rooms where an announcement would go to more connections than this (the one entering
    /// not counted) get no `"joined"`/`"left"` announcements: [`Dispatched::TooLarge`]
    /// (default `None`: every room). See the [cost](self#cost).
    pub max_room_size: Option<usize>,
    /// With a queue ([`Presence::with_queue`]): announcements to more connections than this
    /// (the one entering not counted) go through it, as
    /// [`RoomDispatch::with_queue`] decides (default `None`: never).
    pub queue_above: Option<usize>,
    /// The most members a `"members"` snapshot lists (default 1,000); it also stops at 128 KB.
    /// Past either, the snapshot says `"truncated": true`.
    pub max_listed_members: usize,
    /// How many times departures found by presence's own Gone cleanup are announced in turn
    /// (default 2); departures found after that are removed but only reported.
    pub departure_rounds: u32,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            max_room_size: None,
            queue_above: None,
            max_listed_members: 1_000,
            departure_rounds: 2,
        }
    }
}

/// One presence event sent (or withheld) to one room.
#[derive(Debug)]
#[non_exhaustive]
pub struct Announcement {
    /// The room.
    pub room: RoomId,
    /// `Joined` or `Left`.
    pub kind: PresenceKind,
    /// The members it lists.
    pub members: Vec<Member>,
    /// How it went out: in-line, queued, or withheld ([`Dispatched::TooLarge`]) above
    /// [`PresenceConfig::max_room_size`].
    pub delivery: Dispatched,
}

/// What a [`Presence`] call did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct PresenceReport {
    /// The events sent (or withheld for size), one per room and kind — a batch larger than one
    /// message's 128 KB is split into several.
    pub announcements: Vec<Announcement>,
    /// Members whose entering or leaving changed nothing: they have another connection in the
    /// room (or, for an entry, an earlier one announces).
    pub unchanged: Vec<(RoomId, Member)>,
    /// Records the Gone cleanup of presence's own posts removed (their departures are
    /// announced).
    pub cleaned: Vec<Membership>,
    /// Gone connections kept because their record is younger than the broadcaster's
    /// [`connect_grace`](crate::broadcast::BroadcastConfig::connect_grace).
    pub kept_connecting: Vec<ConnectionId>,
    /// Records removed after the last of [`departure_rounds`](PresenceConfig::departure_rounds):
    /// removed, not announced.
    pub unannounced: Vec<Membership>,
}

/// Announces presence in rooms; see the [module docs](self).
///
/// Cheap to clone. Build it from the [`Broadcaster`] of the invocation (its deadline and
/// default endpoint apply to the announcements; so do its Gone cleanup and connect grace).
#[derive(Clone)]
pub struct Presence {
    broadcaster: Broadcaster,
    queue: Option<FanoutPlanner>,
    config: PresenceConfig,
}

impl fmt::Debug for Presence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presence")
            .field("broadcaster", &self.broadcaster)
            .field("queue", &self.queue)
            .field("config", &self.config)
            .finish()
    }
}

impl Presence {
    /// Presence on `broadcaster`'s store and sender, with the default [`PresenceConfig`].
    pub fn new(broadcaster: Broadcaster) -> Self {
        Self {
            broadcaster,
            queue: None,
            config: PresenceConfig::default(),
        }
    }

    /// Sets the tuning `config`.
    #[must_use]
    pub fn with_config(mut self, config: PresenceConfig) -> Self {
        self.config = config;
        self
    }

    /// Makes announcements end by `deadline` ([`Broadcaster::with_deadline`] on its broadcaster).
    #[must_use]
    pub fn with_deadline(mut self, deadline: impl Into<Option<std::time::Instant>>) -> Self {
        self.broadcaster = self.broadcaster.with_deadline(deadline);
        self
    }

    /// Announces to rooms above [`PresenceConfig::queue_above`] through `queue`.
    #[must_use]
    pub fn with_queue(mut self, queue: FanoutPlanner) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The tuning.
    pub fn config(&self) -> &PresenceConfig {
        &self.config
    }

    fn store(&self) -> &Arc<dyn ConnectionStore> {
        self.broadcaster.store()
    }

    /// Unix milliseconds by the store's clock.
    fn now_ms(&self) -> u64 {
        crate::clock::unix_millis(self.store().clock().now())
    }

    /// Announces that `record`'s connection entered its room — call it after the join is
    /// written. `"joined"` goes to everyone else in the room when this is the user's first
    /// connection there (the earliest by `connectedAt`, connection id, when several race), or
    /// always for an anonymous connection. The connection itself is not posted to.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or the room cannot be listed.
    pub async fn entered(&self, record: &Membership) -> Result<PresenceReport> {
        let mut report = PresenceReport::default();
        let room = &record.room;
        let member = match &record.user_id {
            None => Some(Member::of(record, 1)),
            Some(user) => {
                let mut mine = self.connections_in(user, room, Some(record)).await?;
                let me = &record.connection_id;
                let present = mine.iter().any(|r| &r.connection_id == me);
                mine.sort_by(|a, b| {
                    (a.connected_at.unwrap_or(u64::MAX), &a.connection_id)
                        .cmp(&(b.connected_at.unwrap_or(u64::MAX), &b.connection_id))
                });
                let first = mine.first().is_some_and(|r| &r.connection_id == me);
                let member = Member::of(record, mine.len());
                if present && first {
                    Some(member)
                } else {
                    report.unchanged.push((room.clone(), member));
                    None
                }
            }
        };
        let mut removed = Vec::new();
        if let Some(member) = member {
            removed = self
                .announce(
                    room,
                    PresenceKind::Joined,
                    vec![member],
                    Some(&record.connection_id),
                    &mut report,
                )
                .await?;
        }
        self.departures(removed, &mut report).await?;
        Ok(report)
    }

    /// Announces that the connections of `removed` left their rooms — call it with the records
    /// a leave or a `$disconnect` removed. Per room, one `"left"` lists every member whose last
    /// connection there is gone.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a room cannot be listed.
    pub async fn left(&self, removed: &[Membership]) -> Result<PresenceReport> {
        let mut report = PresenceReport::default();
        self.departures(removed.to_vec(), &mut report).await?;
        Ok(report)
    }

    /// Announces the departures of the connections a broadcast's Gone cleanup removed
    /// ([`BroadcastReport::removed`]): one `"left"` per room listing every member that left it,
    /// not one broadcast per connection.
    ///
    /// # Errors
    ///
    /// As [`left`](Self::left).
    pub async fn departed(&self, report: &BroadcastReport) -> Result<PresenceReport> {
        self.left(&report.removed).await
    }

    /// The `"members"` snapshot of `room`: one entry per member with its connection count,
    /// read page by page, at most [`max_listed_members`](PresenceConfig::max_listed_members)
    /// entries and 128 KB (then `truncated`). Its `at` is taken before the reading.
    ///
    /// # Errors
    ///
    /// When the room cannot be listed.
    pub async fn members(&self, room: &RoomId) -> Result<PresenceEvent> {
        let at = self.now_ms();
        let mut snapshot = Snapshot::new(self.config.max_listed_members);
        let mut cursor = None;
        loop {
            let page = self.store().room_page(room, cursor.as_ref(), None).await?;
            for record in &page.records {
                snapshot.add(record);
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let truncated = snapshot.truncated;
        let mut event = PresenceEvent::new(
            PresenceKind::Members,
            room.clone(),
            snapshot.into_members(),
            at,
        );
        event.truncated = truncated;
        Ok(event)
    }

    /// The records of `user`'s connections in `room`, each confirmed by a strongly consistent
    /// read; `known` (a record just written) is a candidate even when the index lags.
    async fn connections_in(
        &self,
        user: &UserId,
        room: &RoomId,
        known: Option<&Membership>,
    ) -> Result<Vec<Membership>> {
        let mut candidates: Vec<ConnectionId> = Vec::new();
        let mut seen = HashSet::new();
        let listed = self.store().user_connections(user).await?;
        for id in known
            .map(|r| &r.connection_id)
            .into_iter()
            .chain(listed.iter().map(|r| &r.connection_id))
        {
            if seen.insert(id.clone()) {
                candidates.push(id.clone());
            }
        }
        let mut confirmed = Vec::new();
        for id in &candidates {
            if let Some(record) = self.store().membership(id, room).await?
                && record.user_id.as_ref() == Some(user)
            {
                confirmed.push(record);
            }
        }
        Ok(confirmed)
    }

    /// Announces the departures of `removed`, then those presence's own cleanup finds, for at
    /// most `departure_rounds` more rounds.
    async fn departures(
        &self,
        mut removed: Vec<Membership>,
        report: &mut PresenceReport,
    ) -> Result<()> {
        let mut round = 0;
        while !removed.is_empty() {
            if round > self.config.departure_rounds {
                report.unannounced.append(&mut removed);
                break;
            }
            round += 1;
            removed = self.announce_left(&removed, report).await?;
        }
        Ok(())
    }

    /// One round: per room, the members of `removed` with no connection left there, in one
    /// `"left"`. Returns the records the announcements' Gone cleanup removed.
    async fn announce_left(
        &self,
        removed: &[Membership],
        report: &mut PresenceReport,
    ) -> Result<Vec<Membership>> {
        let mut by_room: BTreeMap<&RoomId, Vec<&Membership>> = BTreeMap::new();
        for record in removed {
            by_room.entry(&record.room).or_default().push(record);
        }
        let mut found = Vec::new();
        for (room, records) in by_room {
            let mut gone_members = Vec::new();
            let mut seen = HashSet::new();
            for record in records {
                if !seen.insert(event::member_id(record)) {
                    continue;
                }
                let remaining = match &record.user_id {
                    Some(user) => self.connections_in(user, room, None).await?.len(),
                    None => 0,
                };
                let member = Member::of(record, remaining);
                if remaining == 0 {
                    gone_members.push(member);
                } else {
                    report.unchanged.push((room.clone(), member));
                }
            }
            if !gone_members.is_empty() {
                found.extend(
                    self.announce(room, PresenceKind::Left, gone_members, None, report)
                        .await?,
                );
            }
        }
        Ok(found)
    }

    /// Sends `kind` about `members` to `room` (but `exclude`), split into events under 128 KB.
    /// Returns the records its Gone cleanup removed.
    async fn announce(
        &self,
        room: &RoomId,
        kind: PresenceKind,
        members: Vec<Member>,
        exclude: Option<&ConnectionId>,
        report: &mut PresenceReport,
    ) -> Result<Vec<Membership>> {
        let mut removed = Vec::new();
        let dispatch = self.dispatch();
        for part in chunks(members) {
            let event = PresenceEvent::new(kind, room.clone(), part, self.now_ms());
            let payload = event.to_payload()?;
            let delivery = dispatch
                .send_within(room, &payload, exclude, self.config.max_room_size)
                .await?;
            if let Dispatched::InLine(sent) = &delivery {
                report.cleaned.extend(sent.removed.iter().cloned());
                removed.extend(sent.removed.iter().cloned());
                for id in &sent.kept_connecting {
                    if !report.kept_connecting.contains(id) {
                        report.kept_connecting.push(id.clone());
                    }
                }
            }
            log_delivery(room, kind, event.members.len(), &delivery);
            report.announcements.push(Announcement {
                room: room.clone(),
                kind,
                members: event.members,
                delivery,
            });
        }
        Ok(removed)
    }

    /// How announcements leave: in-line, or above `queue_above` through the queue.
    fn dispatch(&self) -> RoomDispatch {
        let dispatch = RoomDispatch::new(self.broadcaster.clone());
        match (&self.queue, self.config.queue_above) {
            (Some(queue), Some(above)) => dispatch.with_queue(queue.clone(), above),
            _ => dispatch,
        }
    }
}

/// One line per announcement, by its outcome: INFO `presence announced` only when every
/// recipient got it (or was found gone); WARN `presence announcement incomplete` with the first
/// error's whole chain (`… 403 Forbidden …: ForbiddenException`) when a post failed, the room
/// could not be read whole or the deadline cut it.
fn log_delivery(room: &RoomId, kind: PresenceKind, members: usize, delivery: &Dispatched) {
    let event = kind.as_str();
    match delivery {
        Dispatched::InLine(sent) if sent.is_success() => {
            tracing::info!(%room, event, members, delivered = sent.delivered_count, "presence announced");
        }
        Dispatched::InLine(sent) => {
            let error = sent.first_error().map(|e| e.chain().to_string());
            tracing::warn!(
                %room,
                event,
                members,
                delivered = sent.delivered_count,
                failed = sent.failed.len(),
                not_attempted = sent.not_attempted.len(),
                error = error.as_deref().unwrap_or("stopped by the deadline"),
                "presence announcement incomplete"
            );
        }
        Dispatched::Queued(enqueued) => {
            tracing::info!(%room, event, members, jobs = enqueued.jobs, targets = enqueued.targets, "presence announcement queued");
        }
        Dispatched::TooLarge { read } => {
            tracing::info!(%room, event, members, read, "presence not announced: the room is above max_room_size");
        }
    }
}
