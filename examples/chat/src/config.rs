//! The chat's configuration: [`ChatConfig`], read from the environment by
//! [`ChatConfig::from_env`] (the variables are in [`env`](mod@env)).

use stateless_ws::error::{Error, Result};
use stateless_ws::ids::RoomId;

/// Environment variables read by [`ChatConfig::from_env`].
pub mod env {
    /// `true` to refuse `$connect` without an identity (default `false`).
    pub const REQUIRE_AUTH: &str = "CHAT_REQUIRE_AUTH";
    /// The authorizer context key holding the user id (default `principalId`).
    pub const USER_CLAIM: &str = "CHAT_USER_CLAIM";
    /// `true` to deliver a sender's messages back to it too (default `false`).
    pub const ECHO_TO_SENDER: &str = "CHAT_ECHO_TO_SENDER";
    /// The room of a `$connect` without `room` (default `general`).
    pub const DEFAULT_ROOM: &str = "CHAT_DEFAULT_ROOM";
    /// `true` to take the user id from the query string `userId` — an insecure demo mode
    /// (default `false`).
    pub const INSECURE_QUERY_STRING_IDENTITY: &str = "CHAT_INSECURE_QUERY_STRING_IDENTITY";
    /// The most rooms one connection may be in (default 50; at least 1).
    pub const MAX_ROOMS: &str = "CHAT_MAX_ROOMS";
    /// Rooms with more members than this (the sender not counted) are fanned out through the
    /// queue (`FANOUT_QUEUE_URL`); `0` queues every fan-out; unset, none (the default).
    pub const QUEUE_ABOVE: &str = "CHAT_QUEUE_ABOVE";
    /// Announcements to more connections than this (the one entering not counted) are not
    /// sent: rooms that large get no `"joined"` / `"left"`; unset, every room (the default). The
    /// `members` snapshot is always answered.
    pub const PRESENCE_MAX_ROOM_SIZE: &str = "CHAT_PRESENCE_MAX_ROOM_SIZE";
    /// Presence announcements to more connections than this (the one entering not counted) go
    /// through the queue (`FANOUT_QUEUE_URL`), so that a `$connect` takes the same time in a
    /// room of 100 or 100,000; unset, [`QUEUE_ABOVE`] applies.
    pub const PRESENCE_QUEUE_ABOVE: &str = "CHAT_PRESENCE_QUEUE_ABOVE";
    /// Open rooms, patterns separated by commas or spaces, `*` for any run of characters
    /// (default `*`: every room that is not private or a user's). Read by
    /// [`ChatRooms::from_env`](crate::ChatRooms::from_env).
    pub const PUBLIC_ROOMS: &str = "CHAT_PUBLIC_ROOMS";
    /// Rooms that need a signed grant (key: the library's `ROOM_GRANT_KEY`), patterns as
    /// [`PUBLIC_ROOMS`] (default `private-*`).
    pub const PRIVATE_ROOMS: &str = "CHAT_PRIVATE_ROOMS";
    /// The template of per-user rooms, with `{id}` (default `user-{id}`); `none`: no user rooms.
    pub const USER_ROOMS: &str = "CHAT_USER_ROOMS";
    /// An authorizer context key listing more rooms the user may enter (default: none).
    pub const ROOMS_CLAIM: &str = "CHAT_ROOMS_CLAIM";
}

/// Where the user id of a connection comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentitySource {
    /// The authorizer context of the `$connect` event: this key (`principalId` by default).
    Authorizer {
        /// The context key, e.g. `principalId`, `sub`, `email`.
        claim: String,
    },
    /// **Insecure demo mode**: the `$connect` query string parameter `param` names the user,
    /// so anyone can claim to be anyone. Falls back to the authorizer when absent.
    InsecureQueryString {
        /// The query string parameter (the seed used `userId`).
        param: String,
    },
}

impl Default for IdentitySource {
    fn default() -> Self {
        IdentitySource::Authorizer {
            claim: "principalId".to_owned(),
        }
    }
}

/// The application's choices. Defaults are safe: identity from the authorizer only.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChatConfig {
    /// Where user ids come from (default: the authorizer's `principalId`).
    pub identity: IdentitySource,
    /// Refuse `$connect` (401) when no user id can be found (default `false`: anonymous users
    /// may connect, their messages carry `"userId": null`).
    pub require_auth: bool,
    /// The room of a `$connect` without `room` (default `general`).
    pub default_room: RoomId,
    /// Deliver a sender's messages back to it too (default `false`).
    pub echo_to_sender: bool,
    /// The management endpoint to record and post through, instead of the event's
    /// `https://{domainName}/{stage}` (default `None`).
    pub management_endpoint: Option<String>,
    /// Longest accepted chat message, in bytes (default 16 KiB).
    pub max_message_len: usize,
    /// The most rooms one connection may be in, its `$connect` room included (default
    /// [`DEFAULT_MAX_ROOMS_PER_CONNECTION`], 50). A `join` beyond it is refused with a 400
    /// naming the limit. It bounds what one client can make the table hold, and the records
    /// `join`, `leave` and `ping` read (see [Cost per message](crate#cost-per-message)).
    pub max_rooms_per_connection: usize,
    /// Fan-outs to rooms with more members than this (the sender not counted) go through the
    /// queue set with [`Chat::with_queue`](crate::Chat::with_queue), and `send` answers
    /// `{"type":"queued",…}` at once; `Some(0)` queues every fan-out; `None` (the default)
    /// none. The library's [`RoomDispatch`](stateless_ws::queue::RoomDispatch) decides: it reads
    /// the room only until more than this many recipients are seen, and sends a small room
    /// in-line from what was read.
    pub queue_above: Option<usize>,
    /// Announcements to more connections than this (the one entering not counted) are not sent
    /// ([`PresenceConfig::max_room_size`](stateless_ws::presence::PresenceConfig::max_room_size));
    /// `None` (the default): every room. Each join or leave in a room of N costs N − 1 posts.
    pub presence_max_room_size: Option<usize>,
    /// Presence announcements to more connections than this (the one entering not counted) go
    /// through the queue, as [`PresenceConfig::queue_above`](stateless_ws::presence::PresenceConfig::queue_above);
    /// `None` (the default): [`queue_above`](Self::queue_above) applies. Lower than
    /// `queue_above`, it keeps `$connect` and `$disconnect` short in busy rooms: in-line, each
    /// posts to every other member before it returns (a connect storm of N clients costs each
    /// one N − 1 posts); queued, each sends one job.
    pub presence_queue_above: Option<usize>,
}

/// The default of [`ChatConfig::max_rooms_per_connection`]: 50 rooms, far more than a chat
/// client shows at once, few enough that a `ping` refreshing each record stays cheap.
pub const DEFAULT_MAX_ROOMS_PER_CONNECTION: usize = 50;

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            identity: IdentitySource::default(),
            require_auth: false,
            default_room: RoomId::new("general").unwrap_or_else(|_| unreachable!("valid")),
            echo_to_sender: false,
            management_endpoint: None,
            max_message_len: 16 * 1024,
            max_rooms_per_connection: DEFAULT_MAX_ROOMS_PER_CONNECTION,
            queue_above: None,
            presence_max_room_size: None,
            presence_queue_above: None,
        }
    }
}

fn env_bool(name: &str) -> Result<Option<bool>> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "1" | "true" | "yes" | "on" => Ok(Some(true)),
            "0" | "false" | "no" | "off" => Ok(Some(false)),
            _ => Err(Error::Config {
                message: format!("environment variable {name} must be true or false, got {v:?}"),
            }),
        },
    }
}

fn env_string(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A whole number of `what` in `name`, if set.
fn env_count(name: &str, what: &str) -> Result<Option<usize>> {
    env_string(name)
        .map(|v| {
            v.trim().parse::<usize>().map_err(|_| Error::Config {
                message: format!(
                    "environment variable {name} must be a whole number of {what}, got {v:?}"
                ),
            })
        })
        .transpose()
}

impl ChatConfig {
    /// The presence threshold in effect: [`presence_queue_above`](Self::presence_queue_above),
    /// else [`queue_above`](Self::queue_above).
    pub fn presence_queue_threshold(&self) -> Option<usize> {
        self.presence_queue_above.or(self.queue_above)
    }

    /// The configuration from the environment (see [`env`](mod@env)); unset variables keep the defaults.
    /// Read it once at start-up.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming a variable whose value is not understood. Never panics.
    pub fn from_env() -> Result<Self> {
        let mut config = Self::default();
        if let Some(claim) = env_string(env::USER_CLAIM) {
            config.identity = IdentitySource::Authorizer { claim };
        }
        if env_bool(env::INSECURE_QUERY_STRING_IDENTITY)? == Some(true) {
            config.identity = IdentitySource::InsecureQueryString {
                param: "userId".to_owned(),
            };
        }
        if let Some(v) = env_bool(env::REQUIRE_AUTH)? {
            config.require_auth = v;
        }
        if let Some(v) = env_bool(env::ECHO_TO_SENDER)? {
            config.echo_to_sender = v;
        }
        if let Some(room) = env_string(env::DEFAULT_ROOM) {
            config.default_room = RoomId::new(room).map_err(|e| Error::Config {
                message: format!("environment variable {}: {e}", env::DEFAULT_ROOM),
            })?;
        }
        if let Some(v) = env_string(env::MAX_ROOMS) {
            config.max_rooms_per_connection = match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(Error::Config {
                        message: format!(
                            "environment variable {} must be a whole number of rooms, at least 1, got {v:?}",
                            env::MAX_ROOMS
                        ),
                    });
                }
            };
        }
        config.queue_above = env_count(env::QUEUE_ABOVE, "members")?;
        config.presence_queue_above = env_count(env::PRESENCE_QUEUE_ABOVE, "connections")?;
        config.presence_max_room_size = env_count(env::PRESENCE_MAX_ROOM_SIZE, "connections")?;
        config.management_endpoint = env_string(stateless_ws::env::APIGW_MANAGEMENT_URL);
        Ok(config)
    }
}
