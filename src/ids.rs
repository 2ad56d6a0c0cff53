//! Validated identifiers: [`ConnectionId`], [`RoomId`] and [`UserId`].
//!
//! Identifiers arrive from the outside world (a query string, a message body, an authorizer) and
//! end up as DynamoDB keys and URL path segments, so each is checked once, at construction:
//!
//! | type | length (bytes) | also refused |
//! |---|---|---|
//! | [`ConnectionId`] | 1 ..= 128 | control characters, whitespace, `/` |
//! | [`RoomId`] | 1 ..= 128 | control characters, `#` (it would break the `room#<name>` key scheme), leading or trailing whitespace |
//! | [`UserId`] | 1 ..= 256 | control characters |
//!
//! All three are cheap to clone, compare and hash, `Display` as their plain value and
//! serialize as a JSON string (deserializing validates).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

fn check_common(kind: &'static str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid_id(kind, "is empty"));
    }
    if value.len() > max {
        return Err(Error::invalid_id(
            kind,
            format!("is {} bytes long; the limit is {max}", value.len()),
        ));
    }
    if let Some((at, c)) = value.char_indices().find(|(_, c)| c.is_control()) {
        return Err(Error::invalid_id(
            kind,
            format!("contains control character U+{:04X} at byte {at}", c as u32),
        ));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $validate:path) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Box<str>);

        impl $name {
            /// Validates `value` and wraps it.
            ///
            /// # Errors
            ///
            /// [`Error::InvalidId`] naming what is wrong (see the [module docs](crate::ids)).
            pub fn new(value: impl Into<String>) -> Result<Self> {
                let value = value.into();
                $validate(&value)?;
                Ok(Self(value.into_boxed_str()))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Consumes the identifier, returning its string.
            pub fn into_string(self) -> String {
                self.0.into_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.into_string()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                *self.0 == **other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn validate_connection_id(value: &str) -> Result<()> {
    check_common("connection id", value, ConnectionId::MAX_LEN)?;
    if let Some(c) = value.chars().find(|c| c.is_whitespace() || *c == '/') {
        return Err(Error::invalid_id(
            "connection id",
            format!("contains {c:?}, which API Gateway never puts in a connection id"),
        ));
    }
    Ok(())
}

fn validate_room_id(value: &str) -> Result<()> {
    check_common("room id", value, RoomId::MAX_LEN)?;
    if value.contains('#') {
        return Err(Error::invalid_id(
            "room id",
            "contains '#', which would break the `room#<name>` key scheme",
        ));
    }
    if value.trim() != value {
        return Err(Error::invalid_id(
            "room id",
            "has leading or trailing whitespace",
        ));
    }
    Ok(())
}

fn validate_user_id(value: &str) -> Result<()> {
    check_common("user id", value, UserId::MAX_LEN)
}

id_type!(
    /// The id API Gateway gives a WebSocket connection (e.g. `L0SM9cOFvHcCIhw=`).
    ///
    /// ```
    /// use stateless_ws::ConnectionId;
    /// let id = ConnectionId::new("L0SM9cOFvHcCIhw=")?;
    /// assert_eq!(id.as_str(), "L0SM9cOFvHcCIhw=");
    /// assert!(ConnectionId::new("").is_err());
    /// # Ok::<(), stateless_ws::Error>(())
    /// ```
    ConnectionId,
    "connection id",
    validate_connection_id
);

id_type!(
    /// The name of a room (a channel, a topic, a document). The DynamoDB store keys it as
    /// `room#<name>`, which is why `#` is refused.
    ///
    /// ```
    /// use stateless_ws::RoomId;
    /// let room = RoomId::new("general")?;
    /// assert_eq!(room.as_str(), "general");
    /// assert!(RoomId::new("a#b").is_err());
    /// # Ok::<(), stateless_ws::Error>(())
    /// ```
    RoomId,
    "room id",
    validate_room_id
);

id_type!(
    /// The application's id of a user (from the authorizer's `principalId` or a claim). One user
    /// may hold many connections (tabs, devices).
    UserId,
    "user id",
    validate_user_id
);

impl ConnectionId {
    /// Longest accepted connection id, in bytes. API Gateway's are 16 characters.
    pub const MAX_LEN: usize = 128;
}

impl RoomId {
    /// Longest accepted room name, in bytes.
    pub const MAX_LEN: usize = 128;
}

impl UserId {
    /// Longest accepted user id, in bytes.
    pub const MAX_LEN: usize = 256;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let e = RoomId::new("").unwrap_err().to_string();
        assert_eq!(e, "invalid room id: is empty");
        let e = RoomId::new("x".repeat(129)).unwrap_err().to_string();
        assert!(e.contains("129 bytes") && e.contains("128"), "{e}");
        assert!(RoomId::new("x".repeat(128)).is_ok());
        let e = UserId::new("al\u{0}ice").unwrap_err().to_string();
        assert!(e.contains("U+0000") && e.contains("byte 2"), "{e}");
        let e = RoomId::new("a#b").unwrap_err().to_string();
        assert!(e.contains("room#<name>"), "{e}");
        assert!(RoomId::new(" padded").is_err());
        assert!(RoomId::new("two words").is_ok());
        assert!(RoomId::new("café ☕").is_ok());
        assert!(ConnectionId::new("a/b").is_err());
        assert!(ConnectionId::new("a b").is_err());
        assert!(ConnectionId::new("L0SM9cOFvHcCIhw=").is_ok());
        assert!(UserId::new("u".repeat(257)).is_err());
        assert!(UserId::new("auth0|1234 x").is_ok());
    }

    #[test]
    fn serde_validates() {
        let id: ConnectionId = serde_json::from_str("\"abc=\"").unwrap();
        assert_eq!(id, "abc=");
        assert!(serde_json::from_str::<RoomId>("\"a#b\"").is_err());
    }
}
