//! Typed API Gateway WebSocket events: what a Lambda function receives for `$connect`,
//! `$disconnect` and message routes (Lambda proxy integration).
//!
//! [`WebSocketEvent`] is the entry point: it reads `requestContext.eventType` and gives a
//! [`ConnectEvent`], a [`DisconnectEvent`] or a [`MessageEvent`]. Each of the three also parses on
//! its own, for a function that serves one route only, and refuses an event of another type.
//!
//! | JSON | [`ConnectEvent`] | [`DisconnectEvent`] | [`MessageEvent`] |
//! |---|---|---|---|
//! | `requestContext` | ✓ | ✓ (+ `disconnectStatusCode`, `disconnectReason`) | ✓ (+ `messageId`) |
//! | `headers`, `multiValueHeaders` | ✓ | ✓ (a few) | — |
//! | `queryStringParameters`, `multiValueQueryStringParameters` | ✓ | — | — |
//! | `body`, `isBase64Encoded` | `isBase64Encoded` | `isBase64Encoded` | ✓ |
//!
//! Only `requestContext.eventType` and `requestContext.connectionId` are required: everything
//! else API Gateway (or an emulator) might leave out is an `Option` or empty when absent, `null`
//! counts as absent, and keys this crate does not know are ignored.
//!
//! # Errors name the field
//!
//! A bad event gives [`Error::InvalidEvent`] whose `field` is the JSON path of the problem:
//! `$` (not JSON, or not an object), `requestContext.connectionId` (missing, not a string, or not
//! a valid [`ConnectionId`](crate::ConnectionId)), `requestContext.eventType` (unknown, or not
//! the type asked for), `requestContext.connectedAt` (not an integer), `headers.Host` (not a
//! string), and so on; `field` names object keys only, and the index of a bad array element
//! (in `multiValueHeaders`) is in the reason. `from_slice`, `FromStr` and `TryFrom<Value>`
//! name the same field for the same input.
//!
//! Parsing takes one derive-generated pass; only when it fails is the input read again, as a
//! [`serde_json::Value`] and through [`serde_path_to_error`], to find the field to blame. The
//! [`Deserialize`] impls (for `lambda_runtime`, which deserializes the handler's event type
//! itself) track the path as they go, which takes about twice as long.
//!
//! # Building events
//!
//! Every type here serializes to the shape API Gateway sends (camelCase keys, absent fields
//! left out), so parse → serialize → parse gives back the same value. To build one — in a test
//! or a local gateway — start from `new` and set the public fields:
//!
//! ```
//! use stateless_ws::{ConnectionId, MessageEvent, WebSocketEvent};
//!
//! let mut message = MessageEvent::new(ConnectionId::new("L0SM9cOFvHcCIhw=")?, r#"{"action":"ping"}"#);
//! message.context.domain_name = Some("abcd1234.execute-api.us-east-1.amazonaws.com".into());
//! message.context.stage = Some("prod".into());
//!
//! let json = serde_json::to_string(&message)?;
//! let parsed: WebSocketEvent = json.parse()?;
//! assert_eq!(parsed, WebSocketEvent::Message(message));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};

mod authorizer;
mod context;
mod fault;
mod headers;
mod identity;
mod kinds;
#[cfg(feature = "lambda")]
mod lambda;
mod parse;
mod response;

pub use authorizer::Authorizer;
pub use context::RequestContext;
pub use headers::{Headers, MultiValueHeaders};
pub use identity::Identity;
pub use kinds::{ConnectEvent, DisconnectEvent, MessageEvent, WebSocketEvent};
pub use response::RouteResponse;

/// The kind of a WebSocket event: `requestContext.eventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// `CONNECT`: a client is opening a connection (the `$connect` route).
    Connect,
    /// `DISCONNECT`: the connection is closed or gone (the `$disconnect` route).
    Disconnect,
    /// `MESSAGE`: a client sent a message (`$default` or a custom route).
    Message,
}

impl EventType {
    /// All event types, in the order API Gateway's documentation lists them.
    pub const ALL: [EventType; 3] = [
        EventType::Connect,
        EventType::Message,
        EventType::Disconnect,
    ];

    /// The value as it appears in `requestContext.eventType`: `CONNECT`, `MESSAGE` or
    /// `DISCONNECT`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Connect => "CONNECT",
            EventType::Disconnect => "DISCONNECT",
            EventType::Message => "MESSAGE",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = Error;

    /// Parses `CONNECT`, `MESSAGE` or `DISCONNECT` (exactly; API Gateway sends upper case).
    fn from_str(s: &str) -> Result<Self> {
        EventType::from_name(s)
            .ok_or_else(|| Error::invalid_event("requestContext.eventType", unknown_event_type(s)))
    }
}

fn unknown_event_type(found: &str) -> String {
    format!("is {found:?}; expected one of CONNECT, MESSAGE, DISCONNECT")
}

impl<'de> Deserialize<'de> for EventType {
    /// Reads a string, as [`FromStr`] does. (A derived impl would read an enum, and serde_json
    /// calls a number where an enum belongs a syntax error, hiding which field it was.)
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct NameVisitor;

        impl Visitor<'_> for NameVisitor {
            type Value = EventType;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one of the strings CONNECT, MESSAGE, DISCONNECT")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<EventType, E> {
                EventType::from_name(s).ok_or_else(|| E::custom(unknown_event_type(s)))
            }
        }

        d.deserialize_str(NameVisitor)
    }
}

/// `null` reads as the type's default (an empty map, `false`).
fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A required field: `null` counts as absent, as everywhere in these events, so it is refused
/// the same way, with a reason that follows the field's name.
fn null_is_missing<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)?.ok_or_else(|| de::Error::custom("is missing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_text() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        assert!("connect".parse::<EventType>().is_err());
    }
}
