//! Who may enter which room: the [`RoomPolicy`] seam, consulted on `$connect`'s first room and
//! on every join, **before** anything is stored or announced.
//!
//! A policy sees a [`RoomRequest`] — the room, the user (the application's principal: the id it
//! resolved from the authorizer), the authorizer context, and the grant the client sent, if
//! any — and answers a [`Decision`]: allow, refuse with a typed [`Refusal`], or abstain (not
//! this rule's business). `check` (a method of `dyn RoomPolicy`) turns that into `Ok(())` or
//! [`Error::RoomRefused`] (answer 403 with its text; it never contains the grant), logging
//! every refusal at WARN.
//!
//! # Built-in rules
//!
//! | rule | admits | refuses | abstains on |
//! |---|---|---|---|
//! | [`PublicRooms`] | rooms matching its patterns (`*` globs), minus exceptions | — | other rooms |
//! | [`UserRooms`] | `user-{id}` to the user `{id}` | that room to anyone else | rooms not fitting the template |
//! | [`ClaimRooms`] | rooms listed in an authorizer claim | — | rooms not listed |
//! | [`SignedGrants`] | a room to the holder of a valid [`RoomGrant`] | no grant, or a forged, tampered, expired, other user's or other room's one | rooms outside [`for_rooms`](SignedGrants::for_rooms) |
//! | [`AnyOf`] | what any of its rules admits | with its first rule's refusal | when all abstain |
//!
//! A room no rule admits is refused ([`Refusal::NoRule`]): a policy is an allow-list.
//!
//! ```
//! use std::sync::Arc;
//! use stateless_ws::policy::{AnyOf, GrantKey, PublicRooms, RoomPolicy, RoomRequest, SignedGrants, UserRooms};
//! use stateless_ws::{Error, RoomId, UserId};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let key = GrantKey::new(std::env::var("ROOM_GRANT_KEY").unwrap_or("x".repeat(32)))?;
//! let user_rooms = UserRooms::new("user-{id}")?;
//! let policy: Arc<dyn RoomPolicy> = Arc::new(
//!     AnyOf::new()
//!         .with(PublicRooms::all().except(["private-*", &user_rooms.pattern()]))
//!         .with(user_rooms)
//!         .with(SignedGrants::new(key).for_rooms(["private-*"])),
//! );
//! let alice = UserId::new("alice")?;
//! let (general, mine, private) = (RoomId::new("general")?, RoomId::new("user-alice")?,
//!     RoomId::new("private-x")?);
//! policy.check(&RoomRequest::new(&general).with_user(Some(&alice))).await?;
//! policy.check(&RoomRequest::new(&mine).with_user(Some(&alice))).await?;
//! let refused = policy.check(&RoomRequest::new(&private).with_user(Some(&alice))).await;
//! assert!(matches!(refused, Err(Error::RoomRefused(_))));
//! # Ok::<(), stateless_ws::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Signed grants: how a backend issues them
//!
//! For a private room, the application's own backend — which already knows who the user is,
//! from its session — decides, and hands the client a short-lived grant, Pusher's
//! private-channel pattern without a round trip from the WebSocket function to the backend:
//!
//! 1. The client asks the backend (`POST /grant?room=private-x`, with its session).
//! 2. The backend checks that the **signed-in** user may enter, and answers
//!    [`RoomGrant::issue`]`(&key, &user, &room, Duration::from_secs(60))` — never for a user id
//!    the request names: for the one it authenticated.
//! 3. The client joins with it: `{"action":"join","room":"private-x","grant":"…"}`, or
//!    connects with `?room=private-x&grant=…`.
//! 4. The WebSocket function's [`SignedGrants`] checks it with the same key
//!    ([`ROOM_GRANT_KEY`](crate::env::ROOM_GRANT_KEY)).
//!
//! The grant is `base64url(payload) "." base64url(HMAC-SHA256(key, base64url(payload)))`, no
//! padding, where the payload is the JSON `{"v":1,"u":"<user id>","r":"<room>","exp":<Unix
//! seconds>}`: a backend in another language makes one in a few lines. Make a key with
//! `openssl rand -hex 32` (at least 32 bytes, used as written), and keep it in the functions'
//! and backend's environment ([`ROOM_GRANT_KEY`](crate::env::ROOM_GRANT_KEY)), or in AWS
//! Secrets Manager: with feature `secretsmanager`, `SignedGrants::from_env_with(&sdk_config)`
//! reads the secret named by `ROOM_GRANT_KEY_SECRET_ARN` at start-up (its `AWSPREVIOUS`
//! version, during a rotation, is accepted too); without it, a template's dynamic reference
//! `{{resolve:secretsmanager:chat/room-grant-key}}` fills the variable at deploy time (the key
//! then shows in the function's configuration).
//!
//! # Threat model
//!
//! A grant proves that whoever holds the key said "user *u* may join room *r* until *exp*"; the
//! check binds it to the connection's authenticated user, so a stolen grant is useless to anyone
//! signed in as someone else, and a forged, tampered or other-room grant fails the
//! constant-time signature check. It is a bearer token within those bounds: it can be replayed
//! by the same user until it expires (there is no revocation list), so keep the TTL short
//! (60 s; at most [`RoomGrant::MAX_TTL`], one hour) — the more so because a grant in a
//! `$connect` URL ends up in access logs and browser history. Access already granted is not
//! re-checked: a user removed from a room stays until they leave or disconnect. Rotate the key
//! by deploying the checkers with both keys ([`SignedGrants::with_previous_key`],
//! `ROOM_GRANT_PREVIOUS_KEY`), switching the backend to the new one, and dropping the old one
//! after the longest TTL; anyone with the key can admit anyone anywhere, so it never reaches a
//! client.

use std::fmt;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::event::Authorizer;
use crate::ids::{RoomId, UserId};

mod grant;
mod rules;
#[cfg(feature = "secretsmanager")]
#[cfg_attr(docsrs, doc(cfg(feature = "secretsmanager")))]
mod secret;

pub use grant::{GrantError, GrantKey, RoomGrant, SignedGrants};
pub use rules::{AnyOf, ClaimRooms, PublicRooms, UserRooms};

/// Someone asking to enter a room.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct RoomRequest<'a> {
    /// The room.
    pub room: &'a RoomId,
    /// The user, as the application identified it (from the authorizer on `$connect`, from the
    /// stored connection afterwards); `None` for an anonymous connection.
    pub user: Option<&'a UserId>,
    /// The authorizer context of the event, for rules that read claims.
    pub authorizer: Option<&'a Authorizer>,
    /// The grant the client sent with the request. Never logged.
    pub grant: Option<&'a str>,
}

impl fmt::Debug for RoomRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomRequest")
            .field("room", &self.room)
            .field("user", &self.user)
            .field("authorizer", &self.authorizer)
            .field("grant", &self.grant.map(|_| ".."))
            .finish()
    }
}

impl<'a> RoomRequest<'a> {
    /// An anonymous request for `room`, without context or grant.
    pub fn new(room: &'a RoomId) -> Self {
        Self {
            room,
            user: None,
            authorizer: None,
            grant: None,
        }
    }

    /// The user asking.
    #[must_use]
    pub fn with_user(mut self, user: Option<&'a UserId>) -> Self {
        self.user = user;
        self
    }

    /// The event's authorizer context.
    #[must_use]
    pub fn with_authorizer(mut self, authorizer: Option<&'a Authorizer>) -> Self {
        self.authorizer = authorizer;
        self
    }

    /// The grant sent by the client.
    #[must_use]
    pub fn with_grant(mut self, grant: Option<&'a str>) -> Self {
        self.grant = grant;
        self
    }
}

/// A rule's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// The user may enter.
    Allow,
    /// The user may not, for this reason.
    Refuse(Refusal),
    /// Not this rule's business (another rule may decide); a policy whose answer is this
    /// refuses with [`Refusal::NoRule`].
    Abstain,
}

/// Why a room was refused. The text names the room and the reason — what a client is told
/// (403) and what is logged — and never the grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No rule admits the room.
    #[error("room `{room}` is not open to you")]
    NoRule {
        /// The room.
        room: RoomId,
    },
    /// A [`UserRooms`] room of another user.
    #[error("room `{room}` belongs to another user")]
    OtherUsersRoom {
        /// The room.
        room: RoomId,
    },
    /// The room needs a signed-in user and the connection has none.
    #[error("room `{room}` needs a signed-in user")]
    Anonymous {
        /// The room.
        room: RoomId,
    },
    /// The room needs a grant and none was sent.
    #[error("room `{room}` needs a grant")]
    GrantRequired {
        /// The room.
        room: RoomId,
    },
    /// The grant sent does not admit to the room.
    #[error("room `{room}`: {reason}")]
    Grant {
        /// The room.
        room: RoomId,
        /// What is wrong with the grant.
        reason: GrantError,
    },
    /// A custom rule's reason.
    #[error("room `{room}`: {reason}")]
    Other {
        /// The room.
        room: RoomId,
        /// The reason, shown to the client.
        reason: String,
    },
}

impl Refusal {
    /// The room refused.
    pub fn room(&self) -> &RoomId {
        match self {
            Refusal::NoRule { room }
            | Refusal::OtherUsersRoom { room }
            | Refusal::Anonymous { room }
            | Refusal::GrantRequired { room }
            | Refusal::Grant { room, .. }
            | Refusal::Other { room, .. } => room,
        }
    }
}

/// Decides who may enter which room; see the [module docs](self).
///
/// Object-safe: applications hold an `Arc<dyn RoomPolicy>`. A rule answers from the request
/// alone or looks something up; an `Err` means it could not decide (a failed lookup) — the
/// caller answers 5xx, not 403.
#[async_trait]
pub trait RoomPolicy: Send + Sync + fmt::Debug + 'static {
    /// The decision on `request`.
    ///
    /// # Errors
    ///
    /// A failure to decide (never a refusal: that is [`Decision::Refuse`]).
    async fn decide(&self, request: &RoomRequest<'_>) -> Result<Decision>;
}

impl dyn RoomPolicy {
    /// `Ok(())` when the policy allows `request`; a refusal (or an abstention, as
    /// [`Refusal::NoRule`]) is logged at WARN with the room, user and reason — never the grant —
    /// and returned as [`Error::RoomRefused`].
    ///
    /// # Errors
    ///
    /// [`Error::RoomRefused`], or the policy's own failure.
    pub async fn check(&self, request: &RoomRequest<'_>) -> Result<()> {
        let refusal = match self.decide(request).await? {
            Decision::Allow => return Ok(()),
            Decision::Refuse(refusal) => refusal,
            Decision::Abstain => Refusal::NoRule {
                room: request.room.clone(),
            },
        };
        tracing::warn!(
            room = %request.room,
            user = ?request.user.map(UserId::as_str),
            with_grant = request.grant.is_some(),
            reason = %refusal,
            "room refused"
        );
        Err(Error::RoomRefused(refusal))
    }
}

/// Admits everyone everywhere: the behaviour without a policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

#[async_trait]
impl RoomPolicy for AllowAll {
    async fn decide(&self, _request: &RoomRequest<'_>) -> Result<Decision> {
        Ok(Decision::Allow)
    }
}
