//! Reading events from JSON: every entry point (`from_slice`, `FromStr`, `TryFrom<Value>`,
//! `Deserialize`) of every event type, and the errors that name the field at fault.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer};
use serde_json::{Map, Value};

use super::{
    ConnectEvent, DisconnectEvent, EventType, Headers, MessageEvent, MultiValueHeaders,
    RequestContext, WebSocketEvent, null_as_default,
};
use crate::error::{Error, Result};
use crate::ids::ConnectionId;

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
    request_context: RequestContext,
    #[serde(default)]
    body: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    is_base64_encoded: bool,
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
    match serde_json::from_str::<RawEvent>(json) {
        Ok(raw) => T::from_raw(raw),
        // Read it again, as a tree: either it is not JSON at all, or it is JSON of the wrong
        // shape and the tree shows which field. (The first error's category cannot tell:
        // serde_json reports a number where an enum was expected as a syntax error.)
        Err(e) => match serde_json::from_str::<Value>(json) {
            Ok(tree) => Err(diagnose(&tree, e)),
            Err(e) => Err(not_json(e)),
        },
    }
}

fn parse_value<T: FromRaw>(value: &Value) -> Result<T> {
    match RawEvent::deserialize(value) {
        Ok(raw) => T::from_raw(raw),
        Err(e) => Err(diagnose(value, e)),
    }
}

fn not_json(e: serde_json::Error) -> Error {
    Error::invalid_event_caused_by("$", "is not valid JSON", e)
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

            #[doc = concat!("Parses ", $what, " from a JSON string.")]
            ///
            /// # Errors
            ///
            /// As [`from_slice`](Self::from_slice).
            pub fn from_json_str(json: &str) -> Result<Self> {
                parse_str(json)
            }

            #[doc = concat!("Parses ", $what, " from a JSON value.")]
            ///
            /// # Errors
            ///
            /// As [`from_slice`](Self::from_slice).
            pub fn from_value(value: Value) -> Result<Self> {
                parse_value(&value)
            }
        }

        impl FromStr for $ty {
            type Err = Error;

            fn from_str(json: &str) -> Result<Self> {
                Self::from_json_str(json)
            }
        }

        impl TryFrom<Value> for $ty {
            type Error = Error;

            fn try_from(value: Value) -> Result<Self> {
                Self::from_value(value)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let raw = RawEvent::deserialize(d)?;
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

// ---------------------------------------------------------------------------------------------
// Diagnosis: which field made the fast path fail
// ---------------------------------------------------------------------------------------------

/// Deserializes `value` as a `T` with the same serde impl the fast path uses, so the diagnosis
/// agrees with the parser on what is acceptable.
type Probe = fn(&Value) -> std::result::Result<(), serde_json::Error>;

fn probe<T: DeserializeOwned>(value: &Value) -> std::result::Result<(), serde_json::Error> {
    T::deserialize(value).map(drop)
}

const STRING: (&str, Probe) = ("a string", probe::<Option<String>>);
const MILLIS: (&str, Probe) = (
    "an integer (milliseconds since the Unix epoch)",
    probe::<Option<i64>>,
);
const INTEGER: (&str, Probe) = ("an integer", probe::<Option<i64>>);
const BOOLEAN: (&str, Probe) = ("a boolean", probe::<Option<bool>>);

const CONTEXT_FIELDS: &[(&str, (&str, Probe))] = &[
    ("routeKey", STRING),
    ("messageId", STRING),
    ("domainName", STRING),
    ("stage", STRING),
    ("apiId", STRING),
    ("requestId", STRING),
    ("extendedRequestId", STRING),
    ("connectedAt", MILLIS),
    ("requestTimeEpoch", MILLIS),
    ("requestTime", STRING),
    ("messageDirection", STRING),
    ("disconnectStatusCode", INTEGER),
    ("disconnectReason", STRING),
];

fn diagnose(tree: &Value, cause: serde_json::Error) -> Error {
    find_fault(tree).unwrap_or_else(|| {
        Error::invalid_event_caused_by(
            "$",
            "does not have the shape of an API Gateway WebSocket event",
            cause,
        )
    })
}

fn find_fault(tree: &Value) -> Option<Error> {
    let Some(event) = tree.as_object() else {
        return Some(Error::invalid_event(
            "$",
            format!("expected a JSON object, found {}", kind(tree)),
        ));
    };

    let context = match event.get("requestContext") {
        None | Some(Value::Null) => return Some(missing("requestContext")),
        Some(Value::Object(context)) => context,
        Some(other) => return Some(wrong_kind("requestContext", "an object", other)),
    };

    match context.get("connectionId") {
        None | Some(Value::Null) => return Some(missing("requestContext.connectionId")),
        Some(Value::String(id)) => {
            if let Err(e) = ConnectionId::new(id.as_str()) {
                let why = match e {
                    Error::InvalidId { reason, .. } => reason,
                    other => other.to_string(),
                };
                return Some(Error::invalid_event(
                    "requestContext.connectionId",
                    format!("is not a valid connection id: {why}"),
                ));
            }
        }
        Some(other) => {
            return Some(wrong_kind("requestContext.connectionId", "a string", other));
        }
    }

    match context.get("eventType") {
        None | Some(Value::Null) => return Some(missing("requestContext.eventType")),
        Some(Value::String(t)) => {
            if let Err(e) = t.parse::<EventType>() {
                return Some(e);
            }
        }
        Some(other) => {
            return Some(wrong_kind(
                "requestContext.eventType",
                "one of the strings CONNECT, MESSAGE, DISCONNECT",
                other,
            ));
        }
    }

    for (key, expected) in CONTEXT_FIELDS {
        if let Some(fault) = check(context, key, "requestContext.", *expected) {
            return Some(fault);
        }
    }

    match context.get("identity") {
        None | Some(Value::Null) => {}
        Some(Value::Object(identity)) => {
            for key in ["sourceIp", "userAgent"] {
                if let Some(fault) = check(identity, key, "requestContext.identity.", STRING) {
                    return Some(fault);
                }
            }
        }
        Some(other) => {
            return Some(wrong_kind("requestContext.identity", "an object", other));
        }
    }

    match context.get("authorizer") {
        None | Some(Value::Null | Value::Object(_)) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(other) => {
            return Some(wrong_kind("requestContext.authorizer", "an object", other));
        }
    }

    let maps: [(&str, (&str, Probe)); 4] = [
        ("headers", ("a string", probe::<String>)),
        (
            "multiValueHeaders",
            ("an array of strings", probe::<Vec<String>>),
        ),
        ("queryStringParameters", ("a string", probe::<String>)),
        (
            "multiValueQueryStringParameters",
            ("an array of strings", probe::<Vec<String>>),
        ),
    ];
    for (key, (expected, probe)) in maps {
        match event.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    if let Err(e) = probe(value) {
                        return Some(Error::invalid_event_caused_by(
                            format!("{key}.{name}"),
                            format!("expected {expected}, found {}", kind(value)),
                            e,
                        ));
                    }
                }
            }
            Some(other) => return Some(wrong_kind(key, "an object", other)),
        }
    }

    check(event, "body", "", STRING).or_else(|| check(event, "isBase64Encoded", "", BOOLEAN))
}

fn check(
    object: &Map<String, Value>,
    key: &str,
    prefix: &str,
    (expected, probe): (&str, Probe),
) -> Option<Error> {
    let value = object.get(key)?;
    let e = probe(value).err()?;
    Some(Error::invalid_event_caused_by(
        format!("{prefix}{key}"),
        format!("expected {expected}, found {}", kind(value)),
        e,
    ))
}

fn missing(field: &'static str) -> Error {
    Error::invalid_event(field, "is missing")
}

fn wrong_kind(field: &'static str, expected: &str, found: &Value) -> Error {
    Error::invalid_event(field, format!("expected {expected}, found {}", kind(found)))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

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
