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
//! a valid [`ConnectionId`]), `requestContext.eventType` (unknown, or not the type asked for),
//! `requestContext.connectedAt` (not an integer), `headers.Host` (not a string), and so on.
//! Parsing takes one derive-generated pass; only when it fails is the input looked at again, as a
//! [`serde_json::Value`], to find the field to blame.
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
//! let parsed = WebSocketEvent::from_json_str(&json)?;
//! assert_eq!(parsed, WebSocketEvent::Message(message));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use base64::Engine as _;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Unexpected, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::ids::ConnectionId;

mod response;
pub use response::RouteResponse;

// ---------------------------------------------------------------------------------------------
// EventType
// ---------------------------------------------------------------------------------------------

/// The kind of a WebSocket event: `requestContext.eventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| unknown_event_type(s))
    }
}

fn unknown_event_type(found: &str) -> Error {
    Error::invalid_event(
        "requestContext.eventType",
        format!("is {found:?}; expected one of CONNECT, MESSAGE, DISCONNECT"),
    )
}

// ---------------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------------

/// HTTP headers as API Gateway sends them (`headers`, or with `V = Vec<String>`,
/// `multiValueHeaders`).
///
/// Names keep the case they arrived in (API Gateway passes the client's, e.g. `Host`,
/// `Sec-WebSocket-Key`), so serializing gives back the same JSON; lookups and equality ignore
/// ASCII case, as HTTP does. When one name appears twice, the last one wins, as with JSON objects.
///
/// ```
/// use stateless_ws::event::Headers;
/// let mut headers = Headers::new();
/// headers.insert("X-Forwarded-For", "203.0.113.5".to_owned());
/// assert_eq!(headers.get("x-forwarded-for").map(String::as_str), Some("203.0.113.5"));
/// ```
#[derive(Clone)]
pub struct Headers<V = String> {
    // Well-known names are borrowed from a static list rather than allocated: parsing is
    // allocation-bound, and a `$connect` event carries the same dozen names twice.
    entries: Vec<(Cow<'static, str>, V)>,
}

/// `multiValueHeaders`: every value of each header.
pub type MultiValueHeaders = Headers<Vec<String>>;

impl<V> Headers<V> {
    /// No headers.
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// The value of header `name`, compared without regard to ASCII case.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether header `name` is present (ignoring ASCII case).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets header `name` to `value`, replacing (name and value of) any header of that name in
    /// another case. Returns the value replaced.
    pub fn insert(&mut self, name: impl Into<String>, value: V) -> Option<V> {
        let name = Cow::Owned(name.into());
        match self
            .entries
            .iter_mut()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(&name))
        {
            Some(slot) => {
                slot.0 = name;
                Some(std::mem::replace(&mut slot.1, value))
            }
            None => {
                self.entries.push((name, value));
                None
            }
        }
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The headers in the order they arrived, names in their original case.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

/// Header names API Gateway sends on most events, spelled as it sends them.
const KNOWN_HEADER_NAMES: [&str; 24] = [
    "Host",
    "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Version",
    "User-Agent",
    "X-Amzn-Trace-Id",
    "X-Forwarded-For",
    "X-Forwarded-Port",
    "X-Forwarded-Proto",
    "Origin",
    "Cookie",
    "Authorization",
    "Accept-Encoding",
    "Accept-Language",
    "Cache-Control",
    "Pragma",
    "Upgrade",
    "Connection",
    "content-length",
    "x-api-key",
    "x-restapi",
    "Sec-WebSocket-Accept",
    "Content-Type",
];

/// A header name read from JSON: borrowed from [`KNOWN_HEADER_NAMES`] when it is one of them.
struct HeaderName(Cow<'static, str>);

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct NameVisitor;

        impl Visitor<'_> for NameVisitor {
            type Value = HeaderName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header name")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<HeaderName, E> {
                Ok(HeaderName(
                    match KNOWN_HEADER_NAMES.iter().find(|k| **k == s) {
                        Some(known) => Cow::Borrowed(*known),
                        None => Cow::Owned(s.to_owned()),
                    },
                ))
            }
        }

        d.deserialize_str(NameVisitor)
    }
}

impl<V> Default for Headers<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: PartialEq> PartialEq for Headers<V> {
    /// Equal when every name of each side has the same value on the other, names compared
    /// without regard to ASCII case and order ignored.
    fn eq(&self, other: &Self) -> bool {
        let covers = |a: &Self, b: &Self| a.entries.iter().all(|(k, v)| b.get(k) == Some(v));
        covers(self, other) && covers(other, self)
    }
}

impl<V: fmt::Debug> fmt::Debug for Headers<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<String>, V> FromIterator<(K, V)> for Headers<V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut headers = Self::new();
        for (k, v) in iter {
            headers.insert(k, v);
        }
        headers
    }
}

impl<V: Serialize> Serialize for Headers<V> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Headers<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct HeadersVisitor<V>(std::marker::PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for HeadersVisitor<V> {
            type Value = Headers<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of headers")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                // Pushed as they come (no case-insensitive de-duplication, which would be
                // quadratic); `get` looks from the end, so the last of duplicates wins.
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((HeaderName(name), value)) = map.next_entry::<HeaderName, V>()? {
                    entries.push((name, value));
                }
                Ok(Headers { entries })
            }
        }

        d.deserialize_map(HeadersVisitor(std::marker::PhantomData))
    }
}

// ---------------------------------------------------------------------------------------------
// Identity and Authorizer
// ---------------------------------------------------------------------------------------------

/// `requestContext.identity`: who is on the other end of the connection.
///
/// API Gateway always fills `sourceIp`; `userAgent` comes with `$connect` events. Other keys it
/// may send (`apiKey`, `apiKeyId`, the Cognito and IAM keys of REST APIs, usually `null`) are kept
/// in [`extra`](Identity::extra); keys whose value is `null` are dropped, as if absent.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Identity {
    /// `sourceIp`: the client's IP address as API Gateway saw it.
    pub source_ip: Option<String>,
    /// `userAgent`: the client's `User-Agent`, when API Gateway passes it.
    pub user_agent: Option<String>,
    /// Every other non-null key of `identity`. Never holds `sourceIp` or `userAgent`.
    pub extra: Map<String, Value>,
}

impl Identity {
    /// An identity with nothing known.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Serialize for Identity {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if let Some(ip) = &self.source_ip {
            map.serialize_entry("sourceIp", ip)?;
        }
        if let Some(agent) = &self.user_agent {
            map.serialize_entry("userAgent", agent)?;
        }
        for (k, v) in &self.extra {
            if k != "sourceIp" && k != "userAgent" && !v.is_null() {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Identity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct IdentityVisitor;

        impl<'de> Visitor<'de> for IdentityVisitor {
            type Value = Identity;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an identity object")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Identity, A::Error> {
                let mut identity = Identity::default();
                while let Some(key) = map.next_key::<IdentityKey>()? {
                    match key {
                        IdentityKey::SourceIp => identity.source_ip = map.next_value()?,
                        IdentityKey::UserAgent => identity.user_agent = map.next_value()?,
                        IdentityKey::Other(key) => {
                            let value: Value = map.next_value()?;
                            if !value.is_null() {
                                identity.extra.insert(key, value);
                            }
                        }
                    }
                }
                Ok(identity)
            }
        }

        d.deserialize_map(IdentityVisitor)
    }
}

/// A key of `identity`, allocated only when it goes to [`Identity::extra`].
enum IdentityKey {
    SourceIp,
    UserAgent,
    Other(String),
}

impl<'de> Deserialize<'de> for IdentityKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = IdentityKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an identity key")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<IdentityKey, E> {
                Ok(match s {
                    "sourceIp" => IdentityKey::SourceIp,
                    "userAgent" => IdentityKey::UserAgent,
                    other => IdentityKey::Other(other.to_owned()),
                })
            }
        }

        d.deserialize_str(KeyVisitor)
    }
}

/// `requestContext.authorizer`: what a Lambda REQUEST authorizer returned for this connection.
///
/// API Gateway flattens it into one object: `principalId`, `integrationLatency` and every key of
/// the authorizer's `context`, whose values may be strings, numbers or booleans. The authorizer
/// runs on `$connect` only; API Gateway repeats its result on the connection's later events.
///
/// ```
/// use stateless_ws::Authorizer;
/// let authorizer = Authorizer::new()
///     .with_principal_id("user-42")
///     .with("maxRooms", 5)
///     .with("isAdmin", false);
/// assert_eq!(authorizer.principal_id(), Some("user-42"));
/// assert_eq!(authorizer.get_str("maxRooms").as_deref(), Some("5"));
/// assert_eq!(authorizer.get_str("isAdmin").as_deref(), Some("false"));
/// assert_eq!(authorizer.get("missing"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Authorizer(Map<String, Value>);

impl Authorizer {
    /// An empty authorizer result.
    pub fn new() -> Self {
        Self::default()
    }

    /// `principalId`: the user the authorizer identified, when it is a string.
    pub fn principal_id(&self) -> Option<&str> {
        self.0.get("principalId").and_then(Value::as_str)
    }

    /// The value of `key` as API Gateway sent it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The value of `key` as text: a string as is, a number or boolean rendered (`5`, `true`).
    /// `None` when the key is absent or its value is `null`, an array or an object.
    pub fn get_str(&self, key: &str) -> Option<Cow<'_, str>> {
        match self.0.get(key)? {
            Value::String(s) => Some(Cow::Borrowed(s)),
            Value::Number(n) => Some(Cow::Owned(n.to_string())),
            Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        }
    }

    /// Every key and value, `principalId` and `integrationLatency` included.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> + '_ {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets `key` to `value`, returning the value replaced.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        self.0.insert(key.into(), value.into())
    }

    /// Sets `key` to `value` (builder style).
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(key, value);
        self
    }

    /// Sets `principalId` (builder style).
    #[must_use]
    pub fn with_principal_id(self, principal_id: impl Into<String>) -> Self {
        self.with("principalId", principal_id.into())
    }

    /// The keys and values as a JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Consumes the authorizer, returning its keys and values.
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

impl From<Map<String, Value>> for Authorizer {
    fn from(map: Map<String, Value>) -> Self {
        Self(map)
    }
}

/// Reads `requestContext.authorizer`: an object, or `null` or `""` for none. API Gateway sent
/// `"authorizer": ""` on routes without an authorizer in 2019; accepting it costs nothing.
fn deserialize_authorizer<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Authorizer>, D::Error> {
    struct AuthorizerVisitor;

    impl<'de> Visitor<'de> for AuthorizerVisitor {
        type Value = Option<Authorizer>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an authorizer object or null")
        }

        fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: Deserializer<'de>>(
            self,
            d: D2,
        ) -> std::result::Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }

        fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Self::Value, E> {
            if s.is_empty() {
                Ok(None)
            } else {
                Err(E::invalid_value(Unexpected::Str(s), &self))
            }
        }

        fn visit_map<A: MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            // Sized up front: an authorizer's result usually has a handful of keys, and growing
            // the map one step at a time costs more allocations than the keys themselves.
            let mut fields = Map::with_capacity(map.size_hint().unwrap_or(8));
            while let Some((key, value)) = map.next_entry::<String, Value>()? {
                fields.insert(key, value);
            }
            Ok(Some(Authorizer(fields)))
        }
    }

    d.deserialize_any(AuthorizerVisitor)
}

/// `null` reads as the type's default (an empty map, `false`).
fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

// ---------------------------------------------------------------------------------------------
// RequestContext
// ---------------------------------------------------------------------------------------------

/// `requestContext`: what API Gateway says about the connection and this event.
///
/// Only `eventType` and `connectionId` are required; API Gateway fills the rest, but emulators
/// and older events leave some out, so each is an `Option`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RequestContext {
    /// `eventType`: `CONNECT`, `MESSAGE` or `DISCONNECT`.
    pub event_type: EventType,
    /// `connectionId`: the id to send to this client through the management API.
    pub connection_id: ConnectionId,
    /// `routeKey`: the route selected, e.g. `$connect`, `$default`, `sendmessage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_key: Option<String>,
    /// `messageId`: API Gateway's id of the message (MESSAGE events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// `domainName`: the host the client connected to (the `execute-api` host, or a custom
    /// domain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<String>,
    /// `stage`: the stage name, part of the management endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// `apiId`: the API's id, the first label of its `execute-api` host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_id: Option<String>,
    /// `requestId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `extendedRequestId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_request_id: Option<String>,
    /// `connectedAt`: when the connection was opened, in milliseconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<i64>,
    /// `requestTimeEpoch`: when this event's request arrived, in milliseconds since the Unix
    /// epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_time_epoch: Option<i64>,
    /// `requestTime`: the same instant as text, e.g. `09/Feb/2024:18:11:22 +0000`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_time: Option<String>,
    /// `messageDirection`: `IN` for events from clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_direction: Option<String>,
    /// `disconnectStatusCode`: the WebSocket close code (DISCONNECT events only), e.g. 1001, or
    /// 1005 when the client's close frame had none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect_status_code: Option<i64>,
    /// `disconnectReason`: the close reason (DISCONNECT events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect_reason: Option<String>,
    /// `identity`: the client's address and user agent. Empty when absent.
    #[serde(default, deserialize_with = "null_as_default")]
    pub identity: Identity,
    /// `authorizer`: the REQUEST authorizer's result, on APIs that have one.
    #[serde(
        default,
        deserialize_with = "deserialize_authorizer",
        skip_serializing_if = "Option::is_none"
    )]
    pub authorizer: Option<Authorizer>,
}

impl RequestContext {
    /// A context with the two required fields and nothing else.
    pub fn new(event_type: EventType, connection_id: ConnectionId) -> Self {
        Self {
            event_type,
            connection_id,
            route_key: None,
            message_id: None,
            domain_name: None,
            stage: None,
            api_id: None,
            request_id: None,
            extended_request_id: None,
            connected_at: None,
            request_time_epoch: None,
            request_time: None,
            message_direction: None,
            disconnect_status_code: None,
            disconnect_reason: None,
            identity: Identity::default(),
            authorizer: None,
        }
    }

    /// The management API endpoint for this connection's API: `https://{domainName}/{stage}`,
    /// the URL to give the API Gateway Management API client (it appends
    /// `/@connections/{connectionId}`).
    ///
    /// The stage is part of it: an endpoint without the stage is a common cause of
    /// `403 ForbiddenException` from `PostToConnection`. For a loopback `domainName`
    /// (`localhost`, `127.x.x.x`, `[::1]`, with or without a port), as a local emulator sends, the
    /// scheme is `http`.
    ///
    /// When clients reach the API through a custom domain name, `domainName` is that custom
    /// domain, where the management API answers only under the domain's API mapping; use
    /// [`execute_api_endpoint`](Self::execute_api_endpoint) there instead.
    ///
    /// ```
    /// use stateless_ws::{ConnectionId, RequestContext, event::EventType};
    /// let mut ctx = RequestContext::new(EventType::Message, ConnectionId::new("L0SM9cOFvHcCIhw=")?);
    /// ctx.domain_name = Some("abcd1234.execute-api.us-east-1.amazonaws.com".into());
    /// ctx.stage = Some("prod".into());
    /// assert_eq!(ctx.management_endpoint()?, "https://abcd1234.execute-api.us-east-1.amazonaws.com/prod");
    /// ctx.domain_name = Some("127.0.0.1:3001".into());
    /// assert_eq!(ctx.management_endpoint()?, "http://127.0.0.1:3001/prod");
    /// # Ok::<(), stateless_ws::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] naming `requestContext.domainName` or `requestContext.stage` when
    /// it is missing or empty.
    pub fn management_endpoint(&self) -> Result<String> {
        const WHY: &str = "the management endpoint is https://{domainName}/{stage}";
        let domain = required(
            self.domain_name.as_deref(),
            "requestContext.domainName",
            WHY,
        )?;
        let stage = required(self.stage.as_deref(), "requestContext.stage", WHY)?;
        let scheme = if is_loopback_host(domain) {
            "http"
        } else {
            "https"
        };
        Ok(format!("{scheme}://{domain}/{stage}"))
    }

    /// The management API endpoint on the API's own `execute-api` host:
    /// `https://{apiId}.execute-api.{region}.amazonaws.com/{stage}` (`.amazonaws.com.cn` for
    /// the `cn-` regions).
    ///
    /// Use it instead of [`management_endpoint`](Self::management_endpoint) when clients connect
    /// through a custom domain name: `domainName` is then the custom domain, which does not
    /// serve the management API at `/{stage}`. In Lambda, `region` is the `AWS_REGION`
    /// environment variable.
    ///
    /// ```
    /// use stateless_ws::{ConnectionId, RequestContext, event::EventType};
    /// let mut ctx = RequestContext::new(EventType::Message, ConnectionId::new("L0SM9cOFvHcCIhw=")?);
    /// ctx.domain_name = Some("chat.example.com".into());
    /// ctx.api_id = Some("abcd1234".into());
    /// ctx.stage = Some("prod".into());
    /// assert_eq!(
    ///     ctx.execute_api_endpoint("eu-west-1")?,
    ///     "https://abcd1234.execute-api.eu-west-1.amazonaws.com/prod"
    /// );
    /// # Ok::<(), stateless_ws::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] naming `requestContext.apiId` or `requestContext.stage` when it is
    /// missing or empty; [`Error::Config`] when `region` is empty.
    pub fn execute_api_endpoint(&self, region: &str) -> Result<String> {
        const WHY: &str = "the execute-api endpoint is https://{apiId}.execute-api.{region}.amazonaws.com/{stage}";
        let api_id = required(self.api_id.as_deref(), "requestContext.apiId", WHY)?;
        let stage = required(self.stage.as_deref(), "requestContext.stage", WHY)?;
        if region.is_empty() {
            return Err(Error::config(
                "the region for the execute-api endpoint is empty (set AWS_REGION)",
            ));
        }
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        Ok(format!(
            "https://{api_id}.execute-api.{region}.{suffix}/{stage}"
        ))
    }
}

fn required<'a>(value: Option<&'a str>, field: &'static str, why: &str) -> Result<&'a str> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        Some(_) => Err(Error::invalid_event(field, format!("is empty; {why}"))),
        None => Err(Error::invalid_event(field, format!("is missing; {why}"))),
    }
}

/// Whether `authority` (`host` or `host:port`) names this machine.
fn is_loopback_host(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, _)) => host,
            None => return false,
        }
    } else if authority.parse::<IpAddr>().is_ok() {
        authority
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

// ---------------------------------------------------------------------------------------------
// The three events
// ---------------------------------------------------------------------------------------------

/// A `$connect` event: a client is opening a connection.
///
/// The only event with the client's query string, and the one where the headers matter
/// (`Sec-WebSocket-Protocol`, cookies, `X-Forwarded-For`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ConnectEvent {
    /// `headers` (the last value of each). Empty when absent or `null`.
    #[serde(skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    /// `multiValueHeaders`. Empty when absent or `null`.
    #[serde(skip_serializing_if = "Headers::is_empty")]
    pub multi_value_headers: MultiValueHeaders,
    /// `queryStringParameters` (the last value of each). Empty when absent or `null`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub query_string_parameters: BTreeMap<String, String>,
    /// `multiValueQueryStringParameters`. Empty when absent or `null`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub multi_value_query_string_parameters: BTreeMap<String, Vec<String>>,
    /// `requestContext`.
    #[serde(rename = "requestContext")]
    pub context: RequestContext,
    /// `isBase64Encoded` (always `false` from API Gateway here).
    pub is_base64_encoded: bool,
}

impl ConnectEvent {
    /// A CONNECT event on route `$connect` for `connection_id`, with no headers or query string.
    pub fn new(connection_id: ConnectionId) -> Self {
        let mut context = RequestContext::new(EventType::Connect, connection_id);
        context.route_key = Some("$connect".to_owned());
        Self {
            headers: Headers::new(),
            multi_value_headers: Headers::new(),
            query_string_parameters: BTreeMap::new(),
            multi_value_query_string_parameters: BTreeMap::new(),
            context,
            is_base64_encoded: false,
        }
    }

    /// The connection's id.
    pub fn connection_id(&self) -> &ConnectionId {
        &self.context.connection_id
    }

    /// Header `name` (case-insensitive), from `headers`, else the first value in
    /// `multiValueHeaders`.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, &self.multi_value_headers, name)
    }

    /// Query string parameter `name` (case-sensitive), from `queryStringParameters`, else the
    /// first value in `multiValueQueryStringParameters`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query_string_parameters
            .get(name)
            .map(String::as_str)
            .or_else(|| {
                self.multi_value_query_string_parameters
                    .get(name)
                    .and_then(|v| v.first())
                    .map(String::as_str)
            })
    }
}

/// A `$disconnect` event: the connection is closed, by either side, or timed out.
///
/// Delivered on a best-effort basis: a connection can vanish without one, so stores must also
/// expire records.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DisconnectEvent {
    /// `headers`: API Gateway sends a few (`Host`, `X-Forwarded-For`, ...). Empty when absent.
    #[serde(skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    /// `multiValueHeaders`. Empty when absent.
    #[serde(skip_serializing_if = "Headers::is_empty")]
    pub multi_value_headers: MultiValueHeaders,
    /// `requestContext`, with `disconnectStatusCode` and `disconnectReason`.
    #[serde(rename = "requestContext")]
    pub context: RequestContext,
    /// `isBase64Encoded` (always `false` from API Gateway here).
    pub is_base64_encoded: bool,
}

impl DisconnectEvent {
    /// A DISCONNECT event on route `$disconnect` for `connection_id`, with no status code.
    pub fn new(connection_id: ConnectionId) -> Self {
        let mut context = RequestContext::new(EventType::Disconnect, connection_id);
        context.route_key = Some("$disconnect".to_owned());
        Self {
            headers: Headers::new(),
            multi_value_headers: Headers::new(),
            context,
            is_base64_encoded: false,
        }
    }

    /// The connection's id.
    pub fn connection_id(&self) -> &ConnectionId {
        &self.context.connection_id
    }

    /// `disconnectStatusCode`: the WebSocket close code, e.g. 1000, 1001, or 1005 when the
    /// client's close frame had no code.
    pub fn status_code(&self) -> Option<i64> {
        self.context.disconnect_status_code
    }

    /// `disconnectReason`, e.g. `"Client-side close frame status not set"`.
    pub fn reason(&self) -> Option<&str> {
        self.context.disconnect_reason.as_deref()
    }

    /// Header `name` (case-insensitive), from `headers`, else the first value in
    /// `multiValueHeaders`.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, &self.multi_value_headers, name)
    }
}

/// A message from a client, on `$default` or a custom route.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MessageEvent {
    /// `requestContext`, with `messageId`.
    #[serde(rename = "requestContext")]
    pub context: RequestContext,
    /// `body` as sent: the message text, or base64 when `is_base64_encoded`. Use
    /// [`body_text`](Self::body_text), [`body_bytes`](Self::body_bytes) or
    /// [`json`](Self::json) to read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `isBase64Encoded`: whether `body` is base64 (binary frames converted to text).
    pub is_base64_encoded: bool,
}

impl MessageEvent {
    /// A MESSAGE event on route `$default` for `connection_id` carrying the text `body`.
    pub fn new(connection_id: ConnectionId, body: impl Into<String>) -> Self {
        let mut context = RequestContext::new(EventType::Message, connection_id);
        context.route_key = Some("$default".to_owned());
        Self {
            context,
            body: Some(body.into()),
            is_base64_encoded: false,
        }
    }

    /// The connection's id.
    pub fn connection_id(&self) -> &ConnectionId {
        &self.context.connection_id
    }

    /// `messageId`: API Gateway's id of this message.
    pub fn message_id(&self) -> Option<&str> {
        self.context.message_id.as_deref()
    }

    /// The body's bytes: base64-decoded when `isBase64Encoded`, borrowed otherwise. Empty when
    /// there is no body.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBody`] when the body is flagged base64 but is not valid (padded, standard
    /// alphabet) base64.
    pub fn body_bytes(&self) -> Result<Cow<'_, [u8]>> {
        let body = self.body.as_deref().unwrap_or("");
        if !self.is_base64_encoded {
            return Ok(Cow::Borrowed(body.as_bytes()));
        }
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map(Cow::Owned)
            .map_err(|e| {
                Error::invalid_body(
                    "is flagged `isBase64Encoded` but is not valid base64",
                    Some(e.into()),
                )
            })
    }

    /// The body as text: borrowed when it is not base64. Empty when there is no body.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBody`] when the body is flagged base64 and is not valid base64 or does
    /// not decode to UTF-8.
    pub fn body_text(&self) -> Result<Cow<'_, str>> {
        if !self.is_base64_encoded {
            return Ok(Cow::Borrowed(self.body.as_deref().unwrap_or("")));
        }
        match self.body_bytes()? {
            Cow::Borrowed(bytes) => std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .map_err(|e| Error::invalid_body("is not valid UTF-8", Some(e.into()))),
            Cow::Owned(bytes) => String::from_utf8(bytes)
                .map(Cow::Owned)
                .map_err(|e| Error::invalid_body("is not valid UTF-8", Some(e.into()))),
        }
    }

    /// The body deserialized from JSON as a `T` (after base64 decoding when flagged).
    ///
    /// ```
    /// # use stateless_ws::{ConnectionId, MessageEvent};
    /// #[derive(serde::Deserialize)]
    /// struct Send { action: String, message: String }
    ///
    /// let event = MessageEvent::new(ConnectionId::new("c1=")?, r#"{"action":"send","message":"hi"}"#);
    /// let send: Send = event.json()?;
    /// assert_eq!((send.action.as_str(), send.message.as_str()), ("send", "hi"));
    /// assert!(event.json::<Vec<u8>>().is_err());
    /// # Ok::<(), stateless_ws::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBody`] when there is no body, when decoding fails (see
    /// [`body_bytes`](Self::body_bytes)), when the body is not valid JSON, or when it is JSON of
    /// another shape than `T`; the JSON error is its source.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        if self.body.is_none() {
            return Err(Error::invalid_body(
                "is missing: the message has no body to read as JSON",
                None,
            ));
        }
        let bytes = self.body_bytes()?;
        serde_json::from_slice(&bytes).map_err(|e| {
            let reason = if e.is_data() {
                format!(
                    "is JSON but does not match the expected shape (`{}`)",
                    std::any::type_name::<T>()
                )
            } else {
                "is not valid JSON".to_owned()
            };
            Error::invalid_body(reason, Some(e.into()))
        })
    }
}

fn header<'a>(single: &'a Headers, multi: &'a MultiValueHeaders, name: &str) -> Option<&'a str> {
    single.get(name).map(String::as_str).or_else(|| {
        multi
            .get(name)
            .and_then(|values| values.first())
            .map(String::as_str)
    })
}

// ---------------------------------------------------------------------------------------------
// WebSocketEvent
// ---------------------------------------------------------------------------------------------

/// Any API Gateway WebSocket event, by its `requestContext.eventType`.
///
/// ```
/// use stateless_ws::WebSocketEvent;
///
/// let payload = br#"{
///     "requestContext": {
///         "routeKey": "$default",
///         "messageId": "Tn0ZPdYVIAMCJjQ=",
///         "eventType": "MESSAGE",
///         "stage": "prod",
///         "domainName": "abcd1234.execute-api.us-east-1.amazonaws.com",
///         "connectionId": "L0SM9cOFvHcCIhw=",
///         "apiId": "abcd1234"
///     },
///     "body": "{\"action\":\"send\",\"message\":\"hi\"}",
///     "isBase64Encoded": false
/// }"#;
///
/// match WebSocketEvent::from_slice(payload)? {
///     WebSocketEvent::Connect(connect) => println!("hello {}", connect.connection_id()),
///     WebSocketEvent::Disconnect(disconnect) => println!("bye ({:?})", disconnect.status_code()),
///     WebSocketEvent::Message(message) => {
///         let body: serde_json::Value = message.json()?;
///         assert_eq!(body["message"], "hi");
///         assert_eq!(
///             message.context.management_endpoint()?,
///             "https://abcd1234.execute-api.us-east-1.amazonaws.com/prod"
///         );
///     }
/// }
///
/// // Errors name the field at fault.
/// let err = WebSocketEvent::from_json_str(r#"{"requestContext":{"eventType":"MESSAGE"}}"#).unwrap_err();
/// assert!(matches!(
///     err,
///     stateless_ws::Error::InvalidEvent { ref field, .. } if field == "requestContext.connectionId"
/// ));
/// # Ok::<(), stateless_ws::Error>(())
/// ```
///
/// It also implements [`Deserialize`], so it can be a `lambda_runtime` handler's event type
/// directly; errors then come as serde's messages, without the JSON path that
/// [`from_slice`](Self::from_slice) gives.
#[derive(Debug, Clone, PartialEq)]
pub enum WebSocketEvent {
    /// `eventType` `CONNECT` (`$connect`).
    Connect(ConnectEvent),
    /// `eventType` `DISCONNECT` (`$disconnect`).
    Disconnect(DisconnectEvent),
    /// `eventType` `MESSAGE` (`$default` and custom routes).
    Message(MessageEvent),
}

impl WebSocketEvent {
    /// The event's `requestContext`.
    pub fn context(&self) -> &RequestContext {
        match self {
            WebSocketEvent::Connect(e) => &e.context,
            WebSocketEvent::Disconnect(e) => &e.context,
            WebSocketEvent::Message(e) => &e.context,
        }
    }

    /// The connection's id.
    pub fn connection_id(&self) -> &ConnectionId {
        &self.context().connection_id
    }

    /// Which kind of event this is.
    pub fn event_type(&self) -> EventType {
        match self {
            WebSocketEvent::Connect(_) => EventType::Connect,
            WebSocketEvent::Disconnect(_) => EventType::Disconnect,
            WebSocketEvent::Message(_) => EventType::Message,
        }
    }

    /// `requestContext.routeKey`, e.g. `$connect`, `$default`, `sendmessage`.
    pub fn route_key(&self) -> Option<&str> {
        self.context().route_key.as_deref()
    }
}

impl Serialize for WebSocketEvent {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            WebSocketEvent::Connect(e) => e.serialize(s),
            WebSocketEvent::Disconnect(e) => e.serialize(s),
            WebSocketEvent::Message(e) => e.serialize(s),
        }
    }
}

impl From<ConnectEvent> for WebSocketEvent {
    fn from(e: ConnectEvent) -> Self {
        WebSocketEvent::Connect(e)
    }
}

impl From<DisconnectEvent> for WebSocketEvent {
    fn from(e: DisconnectEvent) -> Self {
        WebSocketEvent::Disconnect(e)
    }
}

impl From<MessageEvent> for WebSocketEvent {
    fn from(e: MessageEvent) -> Self {
        WebSocketEvent::Message(e)
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// aws_lambda_events
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "lambda")]
impl TryFrom<aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest> for WebSocketEvent {
    type Error = Error;

    /// Converts `aws_lambda_events`' request by way of its JSON form.
    ///
    /// Header names come out in lower case (that crate keeps them in an `http::HeaderMap`);
    /// [`Headers`] compares names case-insensitively, so the event still equals the one parsed
    /// from the original JSON.
    fn try_from(
        request: aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest,
    ) -> Result<Self> {
        let mut value = serde_json::to_value(&request).map_err(|e| {
            Error::invalid_event_caused_by("$", "could not be converted to JSON", e)
        })?;
        // Its `QueryMap` serializes every value as a list, and it split the single-value map's
        // values on commas when reading them: join them back into the string API Gateway sent.
        if let Some(Value::Object(query)) = value.get_mut("queryStringParameters") {
            for v in query.values_mut() {
                if let Value::Array(parts) = v {
                    let joined = parts
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",");
                    *v = Value::String(joined);
                }
            }
        }
        Self::from_value(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        RequestContext::new(
            EventType::Message,
            ConnectionId::new("L0SM9cOFvHcCIhw=").unwrap(),
        )
    }

    #[test]
    fn headers_ignore_case_but_keep_it() {
        let mut h: Headers = [("Sec-WebSocket-Key", "k1".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(h.get("sec-websocket-key").map(String::as_str), Some("k1"));
        assert_eq!(h.get("SEC-WEBSOCKET-KEY").map(String::as_str), Some("k1"));
        assert!(h.get("Sec-WebSocket-Version").is_none());
        assert_eq!(
            h.insert("SEC-websocket-KEY", "k2".to_owned()).as_deref(),
            Some("k1")
        );
        assert_eq!(h.len(), 1);
        assert_eq!(
            h.iter().next(),
            Some(("SEC-websocket-KEY", &"k2".to_owned()))
        );

        let lower: Headers = [("sec-websocket-key", "k2".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(h, lower);
        let other: Headers = [("sec-websocket-key", "k3".to_owned())]
            .into_iter()
            .collect();
        assert_ne!(h, other);
        assert_ne!(h, Headers::new());

        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, r#"{"SEC-websocket-KEY":"k2"}"#);
    }

    #[test]
    fn duplicate_header_names_last_wins() {
        let h: Headers = serde_json::from_str(r#"{"Host":"a","host":"b"}"#).unwrap();
        assert_eq!(h.get("HOST").map(String::as_str), Some("b"));
    }

    #[test]
    fn event_header_lookup_falls_back_to_multi_value() {
        let mut e = ConnectEvent::new(ConnectionId::new("c=").unwrap());
        e.multi_value_headers
            .insert("Cookie", vec!["a=1".into(), "b=2".into()]);
        e.headers.insert("Host", "h".into());
        assert_eq!(e.header("host"), Some("h"));
        assert_eq!(e.header("cookie"), Some("a=1"));
        assert_eq!(e.header("nope"), None);
        e.multi_value_query_string_parameters
            .insert("tag".into(), vec!["x".into()]);
        assert_eq!(e.query("tag"), Some("x"));
        assert_eq!(e.query("TAG"), None, "query names are case-sensitive");
    }

    #[test]
    fn management_endpoint_needs_domain_and_stage() {
        let mut c = ctx();
        let err = c.management_endpoint().unwrap_err();
        assert!(
            matches!(&err, Error::InvalidEvent { field, .. } if field == "requestContext.domainName"),
            "{err}"
        );
        c.domain_name = Some("abcd1234.execute-api.us-east-1.amazonaws.com".into());
        let err = c.management_endpoint().unwrap_err();
        assert!(
            matches!(&err, Error::InvalidEvent { field, .. } if field == "requestContext.stage"),
            "{err}"
        );
        c.stage = Some(String::new());
        assert!(
            c.management_endpoint()
                .unwrap_err()
                .to_string()
                .contains("is empty")
        );
        c.stage = Some("prod".into());
        assert_eq!(
            c.management_endpoint().unwrap(),
            "https://abcd1234.execute-api.us-east-1.amazonaws.com/prod"
        );
        c.domain_name = Some("chat.example.com".into());
        assert_eq!(
            c.management_endpoint().unwrap(),
            "https://chat.example.com/prod"
        );
    }

    #[test]
    fn management_endpoint_uses_http_on_loopback() {
        let mut c = ctx();
        c.stage = Some("local".into());
        for (domain, scheme) in [
            ("localhost", "http"),
            ("LOCALHOST:3001", "http"),
            ("127.0.0.1", "http"),
            ("127.0.0.1:8080", "http"),
            ("127.42.0.9:1", "http"),
            ("[::1]", "http"),
            ("[::1]:3001", "http"),
            ("::1", "http"),
            ("localhost.example.com", "https"),
            ("128.0.0.1:80", "https"),
            ("[::2]:80", "https"),
            ("[::1", "https"),
            ("example.com:443", "https"),
        ] {
            c.domain_name = Some(domain.into());
            assert_eq!(
                c.management_endpoint().unwrap(),
                format!("{scheme}://{domain}/local"),
                "{domain}"
            );
        }
    }

    #[test]
    fn execute_api_endpoint() {
        let mut c = ctx();
        c.domain_name = Some("chat.example.com".into());
        let err = c.execute_api_endpoint("us-east-1").unwrap_err();
        assert!(
            matches!(&err, Error::InvalidEvent { field, .. } if field == "requestContext.apiId"),
            "{err}"
        );
        c.api_id = Some("abcd1234".into());
        let err = c.execute_api_endpoint("us-east-1").unwrap_err();
        assert!(
            matches!(&err, Error::InvalidEvent { field, .. } if field == "requestContext.stage"),
            "{err}"
        );
        c.stage = Some("prod".into());
        assert_eq!(
            c.execute_api_endpoint("eu-central-1").unwrap(),
            "https://abcd1234.execute-api.eu-central-1.amazonaws.com/prod"
        );
        assert_eq!(
            c.execute_api_endpoint("cn-north-1").unwrap(),
            "https://abcd1234.execute-api.cn-north-1.amazonaws.com.cn/prod"
        );
        assert!(matches!(
            c.execute_api_endpoint(""),
            Err(Error::Config { .. })
        ));
    }

    #[test]
    fn identity_drops_nulls_and_keeps_other_keys() {
        let id: Identity = serde_json::from_str(
            r#"{"cognitoIdentityPoolId":null,"accountId":null,"sourceIp":"203.0.113.0",
                "userAgent":null,"apiKeyId":"k1","accessKey":null}"#,
        )
        .unwrap();
        assert_eq!(id.source_ip.as_deref(), Some("203.0.113.0"));
        assert_eq!(id.user_agent, None);
        assert_eq!(id.extra.len(), 1);
        assert_eq!(id.extra["apiKeyId"], "k1");
        let json = serde_json::to_value(&id).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"sourceIp": "203.0.113.0", "apiKeyId": "k1"})
        );
        assert_eq!(serde_json::to_string(&Identity::new()).unwrap(), "{}");
    }

    #[test]
    fn authorizer_accepts_object_null_and_empty_string() {
        let read = |authorizer: &str| {
            let json = format!(
                r#"{{"requestContext":{{"eventType":"CONNECT","connectionId":"c=","authorizer":{authorizer}}}}}"#
            );
            ConnectEvent::from_json_str(&json).map(|e| e.context.authorizer)
        };
        assert_eq!(read("null").unwrap(), None);
        assert_eq!(read(r#""""#).unwrap(), None);
        let a = read(r#"{"principalId":"u1","n":1.5,"b":true,"s":"x","o":{"k":1},"z":null}"#)
            .unwrap()
            .unwrap();
        assert_eq!(a.principal_id(), Some("u1"));
        assert_eq!(a.get_str("n").as_deref(), Some("1.5"));
        assert_eq!(a.get_str("b").as_deref(), Some("true"));
        assert!(matches!(a.get_str("s"), Some(Cow::Borrowed("x"))));
        assert_eq!(a.get_str("o"), None);
        assert_eq!(a.get_str("z"), None);
        assert_eq!(a.get("o"), Some(&serde_json::json!({"k": 1})));
        assert_eq!(a.iter().count(), 6);
        let err = read(r#""allow""#).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidEvent { field, .. } if field == "requestContext.authorizer"),
            "{err}"
        );
    }

    #[test]
    fn event_type_text() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        assert!("connect".parse::<EventType>().is_err());
    }

    #[test]
    fn constructors_round_trip() {
        let id = ConnectionId::new("L0SM9cOFvHcCIhw=").unwrap();
        let mut connect = ConnectEvent::new(id.clone());
        connect.headers.insert("Host", "localhost:3001".into());
        connect
            .query_string_parameters
            .insert("room".into(), "general".into());
        connect.context.authorizer = Some(Authorizer::new().with_principal_id("u1"));
        let events: [WebSocketEvent; 3] = [
            connect.into(),
            DisconnectEvent::new(id.clone()).into(),
            MessageEvent::new(id, "hi").into(),
        ];
        for event in events {
            let json = serde_json::to_vec(&event).unwrap();
            assert_eq!(WebSocketEvent::from_slice(&json).unwrap(), event);
            let via_serde: WebSocketEvent = serde_json::from_slice(&json).unwrap();
            assert_eq!(via_serde, event);
        }
    }

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
