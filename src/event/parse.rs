//! Reading events from JSON: the entry points of every event type (`from_slice`, `FromStr`,
//! `TryFrom<Value>`, `Deserialize`), one derive-generated pass over every field any event has,
//! and the dispatch on `requestContext.eventType`.
//!
//! The fast path does not track where it is in the document: `serde_path_to_error` copies
//! every key it passes into a `String`, which halves the throughput of `from_slice`. Only when
//! the pass fails is the input read again, through `serde_path_to_error`, for the path of the
//! field at fault ([`fault`](super::fault)).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_path_to_error::Track;

use super::fault::{fault, fault_in, not_json};
use super::{
    ConnectEvent, DisconnectEvent, EventType, Headers, MessageEvent, MultiValueHeaders,
    RequestContext, WebSocketEvent, null_as_default, null_is_missing,
};
use crate::error::{Error, Result};

/// Every field of every kind of event: read in one pass, then dispatched on
/// `requestContext.eventType` (rather than trying each event type in turn).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    #[serde(default, deserialize_with = "null_as_default")]
    headers: Headers,
    #[serde(default, deserialize_with = "null_as_default")]
    multi_value_headers: MultiValueHeaders,
    #[serde(default, deserialize_with = "null_as_default")]
    query_string_parameters: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    multi_value_query_string_parameters: BTreeMap<String, Vec<String>>,
    #[serde(deserialize_with = "null_is_missing")]
    request_context: RequestContext,
    #[serde(default)]
    body: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    is_base64_encoded: bool,
}

/// Reads a [`RawEvent`] from a JSON object only. The derived impl alone also takes an array of
/// the fields in order (`[null, null, null, null, {"eventType": ...}]`), which no gateway sends,
/// and calls any other root a sequence of the wrong length.
fn read_raw<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<RawEvent, D::Error> {
    struct ObjectVisitor;

    impl<'de> Visitor<'de> for ObjectVisitor {
        type Value = RawEvent;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<RawEvent, A::Error> {
            RawEvent::deserialize(MapAccessDeserializer::new(map))
        }
    }

    d.deserialize_map(ObjectVisitor)
}

impl RawEvent {
    fn into_connect(self) -> ConnectEvent {
        ConnectEvent {
            headers: self.headers,
            multi_value_headers: self.multi_value_headers,
            query_string_parameters: self.query_string_parameters,
            multi_value_query_string_parameters: self.multi_value_query_string_parameters,
            context: self.request_context,
            is_base64_encoded: self.is_base64_encoded,
        }
    }

    fn into_disconnect(self) -> DisconnectEvent {
        DisconnectEvent {
            headers: self.headers,
            multi_value_headers: self.multi_value_headers,
            context: self.request_context,
            is_base64_encoded: self.is_base64_encoded,
        }
    }

    fn into_message(self) -> MessageEvent {
        MessageEvent {
            context: self.request_context,
            body: self.body,
            is_base64_encoded: self.is_base64_encoded,
        }
    }

    fn expect(self, wanted: EventType, type_name: &str) -> Result<Self> {
        let found = self.request_context.event_type;
        if found == wanted {
            Ok(self)
        } else {
            Err(Error::invalid_event(
                "requestContext.eventType",
                format!("is {found}, but a {type_name} needs {wanted}"),
            ))
        }
    }
}

trait FromRaw: Sized {
    fn from_raw(raw: RawEvent) -> Result<Self>;
}

impl FromRaw for WebSocketEvent {
    fn from_raw(raw: RawEvent) -> Result<Self> {
        Ok(match raw.request_context.event_type {
            EventType::Connect => WebSocketEvent::Connect(raw.into_connect()),
            EventType::Disconnect => WebSocketEvent::Disconnect(raw.into_disconnect()),
            EventType::Message => WebSocketEvent::Message(raw.into_message()),
        })
    }
}

impl FromRaw for ConnectEvent {
    fn from_raw(raw: RawEvent) -> Result<Self> {
        Ok(raw
            .expect(EventType::Connect, "ConnectEvent")?
            .into_connect())
    }
}

impl FromRaw for DisconnectEvent {
    fn from_raw(raw: RawEvent) -> Result<Self> {
        Ok(raw
            .expect(EventType::Disconnect, "DisconnectEvent")?
            .into_disconnect())
    }
}

impl FromRaw for MessageEvent {
    fn from_raw(raw: RawEvent) -> Result<Self> {
        Ok(raw
            .expect(EventType::Message, "MessageEvent")?
            .into_message())
    }
}

fn parse_slice<T: FromRaw>(bytes: &[u8]) -> Result<T> {
    // One UTF-8 check of the whole input is cheaper than serde_json's check of each string,
    // which `from_str` skips.
    match std::str::from_utf8(bytes) {
        Ok(json) => parse_str(json),
        Err(e) => Err(Error::invalid_event(
            "$",
            format!(
                "is not valid JSON: not UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )),
    }
}

fn parse_str<T: FromRaw>(json: &str) -> Result<T> {
    let mut de = serde_json::Deserializer::from_str(json);
    match read_raw(&mut de).and_then(|raw| de.end().map(|()| raw)) {
        Ok(raw) => T::from_raw(raw),
        Err(_) => Err(diagnose_str(json)),
    }
}

fn parse_value<T: FromRaw>(value: &Value) -> Result<T> {
    match read_raw(value) {
        Ok(raw) => T::from_raw(raw),
        Err(e) => Err(diagnose(value).unwrap_or_else(|| {
            // Not reached: reading the same tree twice fails the same way.
            Error::invalid_event_caused_by("$", "is not an API Gateway WebSocket event", e)
        })),
    }
}

/// Why the JSON text `json` is not an event, once the fast path has failed on it.
///
/// It is diagnosed as a [`Value`] tree, so that text and tree inputs name the same field (the
/// first fault met depends on key order, which a tree may not keep).
fn diagnose_str(json: &str) -> Error {
    let tree = match serde_json::from_str::<Value>(json) {
        Ok(tree) => tree,
        Err(e) if is_out_of_range(&e) => return out_of_range(json).unwrap_or_else(|| not_json(e)),
        Err(e) => return not_json(e),
    };
    if let Some(error) = diagnose(&tree) {
        return error;
    }
    // The tree reads fine, so the fault is one only the text shows: a key given twice (a
    // tree keeps the last). Trace it in the text.
    let mut track = Track::new();
    let mut de = serde_json::Deserializer::from_str(json);
    match read_raw(serde_path_to_error::Deserializer::new(&mut de, &mut track)) {
        Err(e) => fault(&track.path(), e),
        Ok(_) => Error::invalid_event("$", "is not an API Gateway WebSocket event"),
    }
}

/// Whether serde_json refused a number it could not hold (`1e999`): valid JSON grammar, so the
/// fault belongs to a field, not to the document.
fn is_out_of_range(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("number out of range")
}

/// The error naming the field of an out-of-range number: the text read again with its path
/// tracked, which stops at that number. `None` if it reads fine (not reached).
fn out_of_range(json: &str) -> Option<Error> {
    let mut track = Track::new();
    let mut de = serde_json::Deserializer::from_str(json);
    let e = read_raw(serde_path_to_error::Deserializer::new(&mut de, &mut track)).err()?;
    let path = track.path();
    // An empty path is the document itself: no field to name.
    path.iter().next()?;
    Some(fault(&path, e))
}

/// Why `tree` is not an event: it is read again through `serde_path_to_error`, whose path
/// names the field. `None` when it reads fine.
fn diagnose(tree: &Value) -> Option<Error> {
    let mut track = Track::new();
    let e = read_raw(serde_path_to_error::Deserializer::new(tree, &mut track)).err()?;
    Some(fault(&track.path(), e))
}

macro_rules! parsers {
    ($ty:ident, $what:literal) => {
        impl $ty {
            #[doc = concat!("Parses ", $what, " from JSON bytes, as Lambda delivers it.")]
            ///
            /// # Errors
            ///
            /// [`Error::InvalidEvent`] whose `field` names the JSON path at fault (`$` when the
            /// input is not a JSON object); see the [module docs](crate::event).
            pub fn from_slice(bytes: &[u8]) -> Result<Self> {
                parse_slice(bytes)
            }
        }

        impl FromStr for $ty {
            type Err = Error;

            /// Parses the event from a JSON string; errors as
            /// [`from_slice`](Self::from_slice)'s.
            fn from_str(json: &str) -> Result<Self> {
                parse_str(json)
            }
        }

        impl TryFrom<Value> for $ty {
            type Error = Error;

            /// Parses the event from a JSON value (a `lambda_runtime` handler's
            /// `LambdaEvent<Value>` payload); errors as [`from_slice`](Self::from_slice)'s.
            fn try_from(value: Value) -> Result<Self> {
                parse_value(&value)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            /// Reads the event with its path tracked by `serde_path_to_error`, so that an
            /// error names the field as [`from_slice`](Self::from_slice)'s does. The
            /// tracking costs about as much again as the parse itself: `from_slice` is the
            /// faster way when you hold the bytes.
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let mut track = Track::new();
                let raw = read_raw(serde_path_to_error::Deserializer::new(d, &mut track))
                    .map_err(|e| de::Error::custom(fault_in(&track.path(), &e)))?;
                <$ty as FromRaw>::from_raw(raw).map_err(de::Error::custom)
            }
        }
    };
}

parsers!(WebSocketEvent, "an event of any type");
parsers!(
    ConnectEvent,
    "a CONNECT event (any other `eventType` is an error)"
);
parsers!(
    DisconnectEvent,
    "a DISCONNECT event (any other `eventType` is an error)"
);
parsers!(
    MessageEvent,
    "a MESSAGE event (any other `eventType` is an error)"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserialize_impl_rejects_the_wrong_type() {
        let json = r#"{"requestContext":{"eventType":"MESSAGE","connectionId":"c="}}"#;
        let err = serde_json::from_str::<ConnectEvent>(json).unwrap_err();
        assert!(
            err.to_string().contains("requestContext.eventType"),
            "{err}"
        );
        assert!(serde_json::from_str::<MessageEvent>(json).is_ok());
    }
}
