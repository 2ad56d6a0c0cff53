//! The envelope every logged message travels in, and the shapes of a resume.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::broadcast::Payload;
use crate::error::{Error, Result};
use crate::ids::RoomId;

/// The `type` of an [`Envelope`].
pub const ENVELOPE_TYPE: &str = "room.message";

/// The `type` of a [`History`] page sent to a client.
pub const HISTORY_TYPE: &str = "room.history";

/// A message as published: its id and the application's data.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LogMessage {
    /// The publisher's id for the message (at most 128 characters); `None` lets the log make
    /// one (32 hex digits).
    pub id: Option<String>,
    /// The application's message.
    pub data: Value,
}

impl LogMessage {
    /// A message of `data` with an id the log makes up.
    pub fn new(data: Value) -> Self {
        Self { id: None, data }
    }

    /// Sets the publisher's id (e.g. to recognise its own retries).
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The id to log: the publisher's, checked, or a new one.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`] when the publisher's id is empty, longer than 128 characters or
    /// holds control characters.
    pub fn id_or_new(&self) -> Result<String> {
        match &self.id {
            None => Ok(format!(
                "{:016x}{:016x}",
                fastrand::u64(..),
                fastrand::u64(..)
            )),
            Some(id)
                if !id.is_empty()
                    && id.chars().count() <= 128
                    && !id.chars().any(char::is_control) =>
            {
                Ok(id.clone())
            }
            Some(id) => Err(Error::InvalidId {
                kind: "message id",
                reason: format!(
                    "{:?} must be 1 to 128 characters, without control characters",
                    id.chars().take(64).collect::<String>()
                ),
            }),
        }
    }
}

/// A logged message as clients receive it; see the [module docs](super) for each field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Envelope {
    /// Always [`ENVELOPE_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The room.
    pub room: RoomId,
    /// The room's history this offset belongs to.
    pub epoch: String,
    /// The message's place in the room's history: 1, 2, 3, …
    pub offset: u64,
    /// The message's id.
    pub id: String,
    /// When it was appended, Unix milliseconds.
    pub at: u64,
    /// The application's message.
    pub data: Value,
}

impl Envelope {
    /// An envelope (for backends).
    pub fn new(room: RoomId, epoch: String, offset: u64, id: String, at: u64, data: Value) -> Self {
        Self {
            kind: ENVELOPE_TYPE.to_owned(),
            room,
            epoch,
            offset,
            id,
            at,
            data,
        }
    }

    /// Its JSON.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPayload`] if it does not serialize (a `data` map with non-string keys
    /// cannot occur in a `Value`, so in practice never).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::InvalidPayload {
            reason: format!("envelope does not serialize: {e}"),
        })
    }

    /// Its JSON as a [`Payload`] to post.
    ///
    /// # Errors
    ///
    /// As [`to_json`](Self::to_json), and [`Error::PayloadTooLarge`] over 128 KB.
    pub fn to_payload(&self) -> Result<Payload> {
        Payload::text(self.to_json()?)
    }
}

/// Where a client is in a room's history: the epoch it knows (`None`: none) and the highest
/// offset it has shown (0: none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Position {
    /// The epoch, as the client last saw it.
    #[serde(default)]
    pub epoch: Option<String>,
    /// The highest offset shown.
    #[serde(default)]
    pub offset: u64,
}

impl Position {
    /// At `offset` in `epoch`.
    pub fn new(epoch: impl Into<String>, offset: u64) -> Self {
        Self {
            epoch: Some(epoch.into()),
            offset,
        }
    }

    /// Nothing shown yet: a read from here returns the oldest messages kept (and says
    /// `recovered: false` unless the room's history starts at offset 1).
    pub fn start() -> Self {
        Self::default()
    }
}

/// One page of a room's history ([`MessageLog::read`](super::MessageLog::read)), as sent to a
/// client: `{"type":"room.history","room":…,"epoch":…,"head":N,"recovered":true,"more":false,
/// "messages":[envelope, …]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct History {
    /// Always [`HISTORY_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The room.
    pub room: RoomId,
    /// The room's current epoch (`None` when it has no message kept).
    pub epoch: Option<String>,
    /// The room's highest offset when read (0 when it has none).
    pub head: u64,
    /// `true` when `messages` start right after the position asked for, in its epoch: nothing
    /// was lost. `false`: the epoch changed or the messages after the position are no longer
    /// kept — reload, then continue from `epoch` and the last offset of `messages` (or `head`).
    pub recovered: bool,
    /// More messages follow: read again from the last one's offset.
    pub more: bool,
    /// The messages, in offset order.
    pub messages: Vec<Envelope>,
}

impl History {
    /// A page (for backends).
    pub fn new(
        room: RoomId,
        epoch: Option<String>,
        head: u64,
        recovered: bool,
        more: bool,
        messages: Vec<Envelope>,
    ) -> Self {
        Self {
            kind: HISTORY_TYPE.to_owned(),
            room,
            epoch,
            head,
            recovered,
            more,
            messages,
        }
    }

    /// Its JSON as a [`Payload`] to post.
    ///
    /// # Errors
    ///
    /// [`Error::PayloadTooLarge`] over 128 KB (read with a smaller
    /// [`ReadLimits::max_bytes`](super::ReadLimits::max_bytes)).
    pub fn to_payload(&self) -> Result<Payload> {
        let json = serde_json::to_string(self).map_err(|e| Error::InvalidPayload {
            reason: format!("history page does not serialize: {e}"),
        })?;
        Payload::text(json)
    }
}

/// A new epoch: 16 random base-32 characters (80 bits), for backends starting a room's history
/// (contract rule 2: never one the room had before, with overwhelming probability).
pub fn new_epoch() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    (0..16)
        .map(|_| char::from(ALPHABET[fastrand::usize(..32)]))
        .collect()
}
