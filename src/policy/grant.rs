//! Signed room grants: [`GrantKey`], [`RoomGrant`] (issue, decode, check) and the rule
//! [`SignedGrants`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use serde::{Deserialize, Serialize};

use super::rules::glob_match;
use super::{Decision, Refusal, RoomPolicy, RoomRequest};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::ids::{RoomId, UserId};
use crate::mac::MacKey;

/// The key of room grants' HMAC-SHA256: the application's backend signs grants with it, the
/// WebSocket functions check them. At least 32 bytes (`openssl rand -hex 32`), kept in
/// [`ROOM_GRANT_KEY`](crate::env::ROOM_GRANT_KEY) or a secret. `Debug` does not show it.
#[derive(Clone)]
pub struct GrantKey(MacKey);

impl std::fmt::Debug for GrantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GrantKey(..)")
    }
}

impl GrantKey {
    /// The fewest bytes a key may have: 32, HMAC-SHA256's output size.
    pub const MIN_LEN: usize = MacKey::MIN_LEN;

    /// A key of `bytes` (e.g. the 64 hex digits of `openssl rand -hex 32`, as written).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when it has fewer than [`MIN_LEN`](Self::MIN_LEN) bytes.
    pub fn new(bytes: impl AsRef<[u8]>) -> Result<Self> {
        MacKey::new(bytes.as_ref(), "a room grant key").map(Self)
    }

    /// The key in environment variable `name` (its bytes as written), `None` when unset.
    fn from_env_var(name: &str) -> Result<Option<Self>> {
        crate::env::var(name)?
            .map(|v| {
                Self::new(v.trim()).map_err(|_| {
                    Error::config(format!(
                        "{name} must have at least {} bytes (e.g. `openssl rand -hex 32`)",
                        Self::MIN_LEN
                    ))
                })
            })
            .transpose()
    }
}

/// Why a grant was refused. The text is safe to show the client: it never repeats the grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// Longer than [`RoomGrant::MAX_LEN`]; refused before anything is decoded.
    #[error("the grant is {len} bytes; the limit is {limit}")]
    TooLong {
        /// The grant's length.
        len: usize,
        /// [`RoomGrant::MAX_LEN`].
        limit: usize,
    },
    /// Not `payload.signature` in base64url, or the payload is not a grant.
    #[error("the grant is malformed")]
    Malformed,
    /// The signature is not the key's (forged, tampered with, or signed with another key).
    #[error("the grant's signature is not valid")]
    BadSignature,
    /// A format version this build does not read.
    #[error(
        "the grant's version {version} is not {}, the one this server reads",
        RoomGrant::VERSION
    )]
    Version {
        /// The grant's `v`.
        version: u64,
    },
    /// Past its expiry (beyond [`RoomGrant::LEEWAY`]).
    #[error("the grant has expired")]
    Expired {
        /// The grant's `exp`, in Unix seconds.
        expires_at: u64,
    },
    /// Expires further ahead than [`RoomGrant::MAX_TTL`] (plus leeway): not one a backend using
    /// [`RoomGrant::issue`] made.
    #[error("the grant expires too far in the future")]
    TooLongLived {
        /// The grant's `exp`, in Unix seconds.
        expires_at: u64,
    },
    /// Issued to another user.
    #[error("the grant was issued to another user")]
    OtherUser,
    /// Issued for another room.
    #[error("the grant is for another room")]
    OtherRoom,
    /// The connection has no user to match the grant's.
    #[error("a grant needs a signed-in user")]
    Anonymous,
}

/// A grant's claims: user `u` may join room `r` until `exp` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RoomGrant {
    /// The format's version, [`RoomGrant::VERSION`].
    #[serde(rename = "v")]
    pub version: u64,
    /// The user the grant was issued to.
    #[serde(rename = "u")]
    pub user: UserId,
    /// The room it admits to.
    #[serde(rename = "r")]
    pub room: RoomId,
    /// When it stops being accepted, in Unix seconds.
    #[serde(rename = "exp")]
    pub expires_at: u64,
}

impl RoomGrant {
    /// The version of the format this crate writes and reads.
    pub const VERSION: u64 = 1;
    /// The longest time-to-live [`issue`](Self::issue) accepts, and the furthest expiry a check
    /// accepts: one hour. A grant is a bearer token — keep it short (30–300 s is plenty for a
    /// client that asks for one right before it joins).
    pub const MAX_TTL: Duration = Duration::from_secs(3_600);
    /// The clock difference tolerated between the issuing backend and the checking function: 30 s.
    pub const LEEWAY: Duration = Duration::from_secs(30);
    /// The longest grant accepted: 2,048 bytes (a 256-byte user id and a 128-byte room fit
    /// with room to spare). Longer ones are refused before they are decoded.
    pub const MAX_LEN: usize = 2_048;

    /// A signed grant for `user` to join `room` during the next `ttl`, for the application's
    /// backend to hand to the signed-in user it authenticated:
    ///
    /// ```
    /// use std::time::Duration;
    /// use stateless_ws::policy::{GrantKey, RoomGrant};
    /// use stateless_ws::{RoomId, UserId};
    /// let key = GrantKey::new("0123456789abcdef0123456789abcdef")?; // ROOM_GRANT_KEY
    /// let grant = RoomGrant::issue(&key, &UserId::new("alice")?, &RoomId::new("private-x")?,
    ///     Duration::from_secs(60))?;
    /// // → {"action":"join","room":"private-x","grant":grant}, or ?room=private-x&grant=…
    /// assert!(grant.contains('.'));
    /// # Ok::<(), stateless_ws::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `ttl` is zero or longer than [`MAX_TTL`](Self::MAX_TTL).
    pub fn issue(key: &GrantKey, user: &UserId, room: &RoomId, ttl: Duration) -> Result<String> {
        Self::issue_at(key, user, room, ttl, SystemTime::now())
    }

    /// [`issue`](Self::issue) with the current time given.
    ///
    /// # Errors
    ///
    /// As [`issue`](Self::issue).
    pub fn issue_at(
        key: &GrantKey,
        user: &UserId,
        room: &RoomId,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<String> {
        if ttl.is_zero() || ttl > Self::MAX_TTL {
            return Err(Error::config(format!(
                "a room grant's time-to-live must be between 1 s and {} s, got {} s",
                Self::MAX_TTL.as_secs(),
                ttl.as_secs()
            )));
        }
        let grant = RoomGrant {
            version: Self::VERSION,
            user: user.clone(),
            room: room.clone(),
            expires_at: unix_seconds(now).saturating_add(ttl.as_secs()),
        };
        Ok(grant.sign(key))
    }

    /// The grant as `base64url(JSON) "." base64url(HMAC-SHA256(key, base64url(JSON)))`, no
    /// padding. [`issue`](Self::issue) is the checked way to make one.
    pub fn sign(&self, key: &GrantKey) -> String {
        // Serializing ids and numbers cannot fail; an empty payload would only fail to verify.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let payload = BASE64URL.encode(json);
        let tag = BASE64URL.encode(key.0.sign(payload.as_bytes()));
        format!("{payload}.{tag}")
    }

    /// Reads `token` when one of `keys` signed it (compared in constant time) and its version is
    /// [`VERSION`](Self::VERSION). The user, room and expiry are [`check`](Self::check)'s.
    ///
    /// # Errors
    ///
    /// [`GrantError::TooLong`], [`GrantError::Malformed`], [`GrantError::BadSignature`],
    /// [`GrantError::Version`].
    pub fn decode(token: &str, keys: &[GrantKey]) -> std::result::Result<Self, GrantError> {
        if token.len() > Self::MAX_LEN {
            return Err(GrantError::TooLong {
                len: token.len(),
                limit: Self::MAX_LEN,
            });
        }
        let (payload, tag) = token.split_once('.').ok_or(GrantError::Malformed)?;
        let tag = BASE64URL.decode(tag).map_err(|_| GrantError::Malformed)?;
        if !keys
            .iter()
            .any(|key| key.0.verify(payload.as_bytes(), &tag))
        {
            return Err(GrantError::BadSignature);
        }
        let json = BASE64URL
            .decode(payload)
            .map_err(|_| GrantError::Malformed)?;
        // The version first, so a newer format is named as such rather than as malformed.
        #[derive(Deserialize)]
        struct Version {
            v: u64,
        }
        let Version { v } = serde_json::from_slice(&json).map_err(|_| GrantError::Malformed)?;
        if v != Self::VERSION {
            return Err(GrantError::Version { version: v });
        }
        serde_json::from_slice(&json).map_err(|_| GrantError::Malformed)
    }

    /// Whether the grant admits `user` to `room` at `now`: the same user and room, not expired
    /// (with [`LEEWAY`](Self::LEEWAY)), and not expiring beyond [`MAX_TTL`](Self::MAX_TTL).
    ///
    /// # Errors
    ///
    /// [`GrantError::Anonymous`], [`GrantError::OtherUser`], [`GrantError::OtherRoom`],
    /// [`GrantError::Expired`], [`GrantError::TooLongLived`].
    pub fn check(
        &self,
        user: Option<&UserId>,
        room: &RoomId,
        now: SystemTime,
    ) -> std::result::Result<(), GrantError> {
        let user = user.ok_or(GrantError::Anonymous)?;
        if &self.user != user {
            return Err(GrantError::OtherUser);
        }
        if &self.room != room {
            return Err(GrantError::OtherRoom);
        }
        let now = unix_seconds(now);
        let leeway = Self::LEEWAY.as_secs();
        if self.expires_at.saturating_add(leeway) < now {
            return Err(GrantError::Expired {
                expires_at: self.expires_at,
            });
        }
        if self.expires_at > now.saturating_add(Self::MAX_TTL.as_secs() + leeway) {
            return Err(GrantError::TooLongLived {
                expires_at: self.expires_at,
            });
        }
        Ok(())
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Admits a room to the holder of a valid [`RoomGrant`] for it: signed with the key (or, during
/// a rotation, the previous key), issued to this user, for this room, not expired. Without a
/// grant, it refuses with [`Refusal::GrantRequired`]; with a bad one, with [`Refusal::Grant`].
///
/// By default it applies to every room; [`for_rooms`](Self::for_rooms) limits it to some
/// (`private-*`) and it abstains on the others.
#[derive(Debug, Clone)]
pub struct SignedGrants {
    keys: Vec<GrantKey>,
    rooms: Option<Vec<String>>,
    clock: Arc<dyn Clock>,
}

impl SignedGrants {
    /// Grants signed with `key`.
    pub fn new(key: GrantKey) -> Self {
        Self {
            keys: vec![key],
            rooms: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Also accepts grants signed with `key` — the previous key during a rotation: deploy the
    /// checkers with both, then switch the backend to the new key, then (after
    /// [`RoomGrant::MAX_TTL`]) remove the old one.
    #[must_use]
    pub fn with_previous_key(mut self, key: GrantKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Applies only to the rooms matching `patterns` (`*` stands for any run of characters), and
    /// abstains on the others.
    #[must_use]
    pub fn for_rooms<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rooms = Some(patterns.into_iter().map(Into::into).collect());
        self
    }

    /// Reads "now" from `clock` (tests move time with a `ManualClock`).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The rule with the keys in [`ROOM_GRANT_KEY`](crate::env::ROOM_GRANT_KEY) and, when set,
    /// [`ROOM_GRANT_PREVIOUS_KEY`](crate::env::ROOM_GRANT_PREVIOUS_KEY); `None` when
    /// `ROOM_GRANT_KEY` is unset.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable when a key is shorter than
    /// [`GrantKey::MIN_LEN`], not UTF-8, or only the previous key is set.
    pub fn from_env() -> Result<Option<Self>> {
        let key = GrantKey::from_env_var(crate::env::ROOM_GRANT_KEY)?;
        let previous = GrantKey::from_env_var(crate::env::ROOM_GRANT_PREVIOUS_KEY)?;
        match (key, previous) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(Error::config(format!(
                "{} is set but {} is not",
                crate::env::ROOM_GRANT_PREVIOUS_KEY,
                crate::env::ROOM_GRANT_KEY
            ))),
            (Some(key), previous) => {
                let mut rule = Self::new(key);
                if let Some(previous) = previous {
                    rule = rule.with_previous_key(previous);
                }
                Ok(Some(rule))
            }
        }
    }

    /// Checks `token` for `user` and `room` now.
    ///
    /// # Errors
    ///
    /// The [`GrantError`] of [`RoomGrant::decode`] or [`RoomGrant::check`].
    pub fn verify(
        &self,
        token: &str,
        user: Option<&UserId>,
        room: &RoomId,
    ) -> std::result::Result<RoomGrant, GrantError> {
        let grant = RoomGrant::decode(token, &self.keys)?;
        grant.check(user, room, self.clock.now())?;
        Ok(grant)
    }

    fn applies_to(&self, room: &RoomId) -> bool {
        self.rooms
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| glob_match(p, room.as_str())))
    }
}

#[async_trait]
impl RoomPolicy for SignedGrants {
    async fn decide(&self, request: &RoomRequest<'_>) -> Result<Decision> {
        if !self.applies_to(request.room) {
            return Ok(Decision::Abstain);
        }
        let Some(token) = request.grant else {
            return Ok(Decision::Refuse(Refusal::GrantRequired {
                room: request.room.clone(),
            }));
        };
        Ok(match self.verify(token, request.user, request.room) {
            Ok(_) => Decision::Allow,
            Err(reason) => Decision::Refuse(Refusal::Grant {
                room: request.room.clone(),
                reason,
            }),
        })
    }
}
