//! [`ChatRooms`]: the chat's room rules — public rooms open, `user-{id}` rooms for their user,
//! `private-*` rooms with a signed grant — built into a [`RoomPolicy`].

use std::sync::Arc;

use stateless_ws::error::{Error, Result};
use stateless_ws::policy::{AnyOf, ClaimRooms, PublicRooms, RoomPolicy, SignedGrants, UserRooms};

use crate::config::env;

/// The chat's room rules, in the order a room is matched:
///
/// 1. `private` patterns (default `private-*`): need a signed grant
///    ([`SignedGrants`], key `ROOM_GRANT_KEY`) for the user and room — refused without a key;
/// 2. the `user_rooms` template (default `user-{id}`): only that user;
/// 3. with a `claim`, the rooms listed in that authorizer claim;
/// 4. `public` patterns (default `*`): everyone.
///
/// Environment: [`env::PUBLIC_ROOMS`], [`env::PRIVATE_ROOMS`], [`env::USER_ROOMS`],
/// [`env::ROOMS_CLAIM`], and the library's `ROOM_GRANT_KEY` / `ROOM_GRANT_PREVIOUS_KEY`.
/// Patterns are separated by commas or whitespace; `*` stands for any run of characters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChatRooms {
    /// Open rooms (default `*`), minus the private and user rooms.
    pub public: Vec<String>,
    /// Rooms that need a grant (default `private-*`).
    pub private: Vec<String>,
    /// The per-user room template, with `{id}` (default `user-{id}`); `None`: no user rooms.
    pub user_rooms: Option<String>,
    /// An authorizer claim listing more rooms the user may enter (default none).
    pub claim: Option<String>,
    /// The grant rule with its keys; `None` (no `ROOM_GRANT_KEY`): private rooms are closed.
    pub grants: Option<SignedGrants>,
}

impl Default for ChatRooms {
    fn default() -> Self {
        Self {
            public: vec!["*".to_owned()],
            private: vec!["private-*".to_owned()],
            user_rooms: Some("user-{id}".to_owned()),
            claim: None,
            grants: None,
        }
    }
}

fn patterns(name: &str) -> Option<Vec<String>> {
    let value = std::env::var(name).ok()?;
    let list: Vec<String> = value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    (!list.is_empty()).then_some(list)
}

impl ChatRooms {
    /// The rules from the environment; unset variables keep the defaults.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable: a grant key shorter than 32 bytes, or a user room
    /// template without `{id}`. Never panics.
    pub fn from_env() -> Result<Self> {
        let mut rooms = Self::default();
        if let Some(public) = patterns(env::PUBLIC_ROOMS) {
            rooms.public = public;
        }
        if let Some(private) = patterns(env::PRIVATE_ROOMS) {
            rooms.private = private;
        }
        if let Ok(template) = std::env::var(env::USER_ROOMS) {
            let template = template.trim();
            rooms.user_rooms = match template {
                "" => rooms.user_rooms,
                "none" => None,
                t => Some(t.to_owned()),
            };
        }
        rooms.claim = std::env::var(env::ROOMS_CLAIM)
            .ok()
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        rooms.grants = SignedGrants::from_env()?;
        rooms.policy().map_err(|e| Error::Config {
            message: format!("environment variable {}: {e}", env::USER_ROOMS),
        })?;
        Ok(rooms)
    }

    /// These rules with grants checked by `grants`.
    #[must_use]
    pub fn with_grants(mut self, grants: SignedGrants) -> Self {
        self.grants = Some(grants);
        self
    }

    /// The policy: see the [type docs](Self).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the user room template has no `{id}`.
    pub fn policy(&self) -> Result<Arc<dyn RoomPolicy>> {
        let user_rooms = self.user_rooms.as_deref().map(UserRooms::new).transpose()?;
        let mut closed = self.private.clone();
        closed.extend(user_rooms.as_ref().map(UserRooms::pattern));
        // The rule with the most useful refusal first: a private room's "needs a grant".
        let mut policy = AnyOf::new();
        if let Some(grants) = &self.grants {
            policy = policy.with(grants.clone().for_rooms(self.private.clone()));
        }
        if let Some(user_rooms) = user_rooms {
            policy = policy.with(user_rooms);
        }
        if let Some(claim) = &self.claim {
            policy = policy.with(ClaimRooms::new(claim.clone()));
        }
        Ok(Arc::new(policy.with(
            PublicRooms::new(self.public.clone()).except(closed),
        )))
    }
}
