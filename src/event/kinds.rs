//! The event types: [`ConnectEvent`], [`DisconnectEvent`], [`MessageEvent`], and
//! [`WebSocketEvent`], any one of them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde::ser::Serializer;

use super::{EventType, Headers, MultiValueHeaders, RequestContext};
use crate::error::{Error, Result};
use crate::ids::ConnectionId;

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
/// let err = r#"{"requestContext":{"eventType":"MESSAGE"}}"#.parse::<WebSocketEvent>().unwrap_err();
/// assert!(matches!(
///     err,
///     stateless_ws::Error::InvalidEvent { ref field, .. } if field == "requestContext.connectionId"
/// ));
/// # Ok::<(), stateless_ws::Error>(())
/// ```
///
/// It also implements [`Deserialize`](serde::Deserialize), so it can be a `lambda_runtime`
/// handler's event type directly; its errors carry the same message, naming the field, as
/// [`from_slice`](Self::from_slice)'s (tracking the path as it reads makes it about half as
/// fast).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Authorizer;

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
}
