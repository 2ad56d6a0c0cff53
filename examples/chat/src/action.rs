//! [`ChatAction`]: a client's message, read by its `action`.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use stateless_ws::ids::RoomId;

/// A client's message, chosen by its `action` as the API's route selection
/// (`$request.body.action`) chooses the route.
///
/// Other keys are ignored, except the identity keys (`userId`, `user_id`, `sender`, `from`),
/// which [`Chat::on_message`](crate::Chat::on_message) refuses before parsing: the sender is the connection's identity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ChatAction {
    /// `{"action":"join","room":"r"}`: join `r` and tell its members;
    /// `{"action":"join","room":"private-x","grant":"…"}` with a grant for a room that needs one
    /// (see [`ChatRooms`](crate::ChatRooms)).
    Join {
        /// The room to join.
        #[serde(deserialize_with = "room")]
        room: RoomId,
        /// A signed room grant from the application's backend, for a private room.
        #[serde(default, deserialize_with = "grant")]
        grant: Option<String>,
    },
    /// `{"action":"leave","room":"r"}`: leave `r` (not the connection's last room).
    Leave {
        /// The room to leave.
        #[serde(deserialize_with = "room")]
        room: RoomId,
    },
    /// `{"action":"send","room":"r","message":"hi"}`: post to a room the sender has joined.
    Send {
        /// The room to post to.
        #[serde(deserialize_with = "room")]
        room: RoomId,
        /// The text.
        #[serde(deserialize_with = "message")]
        message: String,
    },
    /// `{"action":"members","room":"r"}`: the users in a room the caller has joined.
    Members {
        /// The room.
        #[serde(deserialize_with = "room")]
        room: RoomId,
    },
    /// `{"action":"ping"}`: refresh the connection's TTL.
    Ping,
    /// `{"action":"resume","room":"r","epoch":"…"|null,"offset":N}`: the history of a room the
    /// caller has joined after (epoch, offset), posted to the caller (needs a message log).
    Resume {
        /// The room.
        #[serde(deserialize_with = "room")]
        room: RoomId,
        /// The epoch the client knows; `null` (or absent) when it has none.
        #[serde(default, deserialize_with = "epoch")]
        epoch: Option<String>,
        /// The highest offset the client has shown (0: none).
        #[serde(deserialize_with = "offset")]
        offset: u64,
    },
}

impl ChatAction {
    /// The `action` values, as clients spell them.
    pub const NAMES: [&str; 6] = ["join", "leave", "send", "members", "ping", "resume"];
}

/// The longest `epoch` a client may send: the logs' epochs are 16 characters; anything much
/// longer is not one of them.
const MAX_EPOCH_LEN: usize = 64;

// The tagged enum buffers its content before choosing a variant, so a deserializer error can't
// say which key it came from; each field's own deserializer names it instead.
fn room<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<RoomId, D::Error> {
    string_field("room", d)
}

fn grant<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(serde::de::Error::custom(
            "`grant` must be a string (a room grant from the application's backend)",
        )),
    }
}

fn message<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    string_field("message", d)
}

fn epoch<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Err(serde::de::Error::custom(
            "`epoch` is empty: send null when you have none",
        )),
        Value::String(s) if s.len() > MAX_EPOCH_LEN => Err(serde::de::Error::custom(format!(
            "`epoch` is {} bytes; an epoch is at most {MAX_EPOCH_LEN}",
            s.len()
        ))),
        Value::String(s) => Ok(Some(s)),
        _ => Err(serde::de::Error::custom("`epoch` must be a string or null")),
    }
}

fn offset<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    Value::deserialize(d)?
        .as_u64()
        .ok_or_else(|| serde::de::Error::custom("`offset` must be a non-negative integer"))
}

fn string_field<'de, T, D>(name: &str, d: D) -> std::result::Result<T, D::Error>
where
    T: serde::de::DeserializeOwned,
    D: Deserializer<'de>,
{
    let value = Value::deserialize(d)?;
    if !value.is_string() {
        return Err(serde::de::Error::custom(format!(
            "`{name}` must be a string"
        )));
    }
    T::deserialize(value).map_err(|e| serde::de::Error::custom(format!("`{name}`: {e}")))
}

/// A client-facing description of why a message does not fit [`ChatAction`].
pub(crate) fn describe(action: &str, e: &serde_json::Error) -> String {
    let text = e.to_string();
    // serde's wording is "missing field `room`"; the chat's is "missing `room` for action `join`".
    if let Some(field) = text
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        return format!("missing `{field}` for action `{action}`");
    }
    text
}
