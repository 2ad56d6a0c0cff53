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
//! name the same field for the same input. A number beyond the range of a 64-bit float
//! (`1e999`) is named by its field too (`requestContext.authorizer.score`), not blamed on `$`.
//!
//! # A key given twice
//!
//! JSON text may repeat a key; a [`serde_json::Value`] cannot (it keeps the last). The rule:
//!
//! - a field this crate reads by name (`requestContext`, `requestContext.connectionId`,
//!   `requestContext.identity.sourceIp`, `body`, ...) given twice in the text is an error
//!   naming it (`requestContext.connectionId`: "is given more than once"), from `from_slice`,
//!   `FromStr` and the [`Deserialize`] impls alike: two connection ids are an ambiguity for
//!   whoever reads the event after us, not something to resolve silently;
//! - in the open-ended objects — `headers` (names compared without regard to case, see
//!   [`Headers`]), `multiValueHeaders`, the query string maps, `authorizer` and the other keys
//!   of `identity` — the last of duplicates wins, which is what a `Value` holds;
//! - `TryFrom<Value>` reads the `Value` it is given. The duplicates were resolved (last wins)
//!   when that `Value` was parsed, before this crate saw it, so text with a repeated named field
//!   is refused by `from_slice` and accepted by `serde_json::from_str::<Value>` followed by
//!   `try_from`, with the last value. To have duplicates refused, give this crate the bytes
//!   (`from_slice`, or `LambdaEvent<WebSocketEvent>` in `lambda_runtime`, which goes through
//!   the `Deserialize` impl), not a `Value`.
//!
//! # Numbers
//!
//! Numbers are parsed with serde_json's `float_roundtrip` feature: without it, serde_json
//! reads some floats one unit in the last place off (`123456789.12345679` became
//! `123456789.1234568`), so an authorizer's number would change on its way through the event.
//! With it, every number reads as the nearest 64-bit float and prints back (shortest form) to
//! text that reads as the same float. Integers stay exact up to `u64::MAX`. Keeping each
//! number's text instead (`arbitrary_precision`) would change how every `serde_json::Value` in
//! the program behaves, a feature no library should switch on for its users.
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
