//! What API Gateway would send for a connection: its id, the request context every event
//! carries, the `$connect` / message / `$disconnect` events, and route selection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use axum::http::HeaderMap;
use base64::Engine as _;

use super::{LocalGatewayConfig, Shared, time};
use stateless_ws::event::{
    Authorizer, ConnectEvent, DisconnectEvent, EventType, Headers, MessageEvent, RequestContext,
};
use stateless_ws::ids::ConnectionId;

/// A fresh connection id in API Gateway's style: 11 base64 characters and `=`.
fn new_connection_id() -> ConnectionId {
    let bytes: [u8; 8] = fastrand::u64(..).to_le_bytes();
    let mut id = base64::engine::general_purpose::STANDARD.encode(&bytes[..8]);
    id.truncate(11);
    id = id.replace('/', "_");
    id.push('=');
    ConnectionId::new(id).unwrap_or_else(|_| unreachable!("11 base64 characters and '=' are valid"))
}

/// A fresh request (or message) id: 16 base64 characters.
pub(super) fn new_request_id() -> String {
    let bytes: [u8; 12] = std::array::from_fn(|_| fastrand::u8(..));
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn headers_of(map: &HeaderMap) -> (Headers, Headers<Vec<String>>) {
    let mut single = Headers::new();
    let mut multi: Headers<Vec<String>> = Headers::new();
    for (name, value) in map {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let name = name.as_str();
        single.insert(name, value.clone());
        let mut values = multi.get(name).cloned().unwrap_or_default();
        values.push(value);
        multi.insert(name, values);
    }
    (single, multi)
}

/// `queryStringParameters` and `multiValueQueryStringParameters` of the query string's `pairs`
/// (already decoded, in the order the client sent them), as API Gateway fills them for a Lambda
/// proxy integration: every value of a repeated key, in order, in the multi-value map; its
/// last value in the single-value map (`?room=a&room=b` → `{"room": ["a", "b"]}` and
/// `{"room": "b"}`).
///
/// AWS documents that "API Gateway supports multiple headers and query string parameters that
/// have the same name" (developer guide, "Support for multi-value headers and query string
/// parameters") without saying which value the single-value map keeps; API Gateway keeps the
/// last (a REST API's Lambda proxy event for `?x=1&x=2&x=3` holds `{"x": "3"}` and
/// `{"x": ["1", "2", "3"]}`, as measured in floci-io/floci#3548 and reported since 2018 in
/// aws/aws-lambda-go#42; a WebSocket `$connect` event carries the same two fields). Decoding is the form decoding axum's `Query`
/// does and API Gateway's events show: `%XX` sequences become their bytes (read as UTF-8, an
/// invalid sequence as U+FFFD), `+` a space (`?sort=-+createdAt` arrives as `"- createdAt"`),
/// a key without `=` an empty value.
fn query_parameters(
    pairs: &[(String, String)],
) -> (BTreeMap<String, String>, BTreeMap<String, Vec<String>>) {
    let mut single = BTreeMap::new();
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in pairs {
        single.insert(key.clone(), value.clone());
        multi.entry(key.clone()).or_default().push(value.clone());
    }
    (single, multi)
}

/// The parts of a request context every event of a connection shares.
#[derive(Clone)]
pub(super) struct ConnectionInfo {
    pub(super) connection_id: ConnectionId,
    domain_name: String,
    pub(super) connected_at: SystemTime,
    pub(super) source_ip: String,
    pub(super) user_agent: Option<String>,
    /// The REQUEST authorizer's result, repeated on every event of the connection.
    pub(super) authorizer: Option<Authorizer>,
}

impl ConnectionInfo {
    /// A new connection, from the HTTP upgrade request of client `peer`. `domain_name` is the
    /// gateway's own (configured or bound), never the request's `Host`: handlers send signed
    /// management requests to the endpoint derived from it.
    pub(super) fn from_upgrade(peer: SocketAddr, headers: &HeaderMap, domain_name: &str) -> Self {
        Self {
            connection_id: new_connection_id(),
            domain_name: domain_name.to_owned(),
            connected_at: SystemTime::now(),
            source_ip: peer.ip().to_string(),
            user_agent: headers
                .get("user-agent")
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned),
            authorizer: None,
        }
    }

    fn context(
        &self,
        config: &LocalGatewayConfig,
        event_type: EventType,
        route_key: &str,
    ) -> RequestContext {
        let now = SystemTime::now();
        let mut ctx = RequestContext::new(event_type, self.connection_id.clone());
        ctx.route_key = Some(route_key.to_owned());
        ctx.message_direction = Some("IN".to_owned());
        ctx.domain_name = Some(self.domain_name.clone());
        ctx.stage = Some(config.stage.clone());
        ctx.api_id = Some(config.api_id.clone());
        ctx.request_id = Some(new_request_id());
        ctx.extended_request_id = ctx.request_id.clone();
        ctx.connected_at = Some(time::epoch_millis(self.connected_at));
        ctx.request_time_epoch = Some(time::epoch_millis(now));
        ctx.request_time = Some(time::request_time(now));
        ctx.identity.source_ip = Some(self.source_ip.clone());
        ctx.identity.user_agent = self.user_agent.clone();
        ctx.authorizer = self.authorizer.clone();
        ctx
    }

    /// The `$connect` event, with the upgrade request's headers and query string (its pairs in
    /// order, decoded: see [`query_parameters`]).
    pub(super) fn connect_event(
        &self,
        config: &LocalGatewayConfig,
        headers: &HeaderMap,
        query: &[(String, String)],
    ) -> ConnectEvent {
        let mut connect = ConnectEvent::new(self.connection_id.clone());
        connect.context = self.context(config, EventType::Connect, "$connect");
        connect.context.message_direction = Some("IN".to_owned());
        let (single, multi) = headers_of(headers);
        connect.headers = single;
        connect.multi_value_headers = multi;
        let (single, multi) = query_parameters(query);
        connect.query_string_parameters = single;
        connect.multi_value_query_string_parameters = multi;
        connect
    }

    /// The event of message `body`, routed to `route_key`.
    pub(super) fn message_event(
        &self,
        config: &LocalGatewayConfig,
        route_key: &str,
        body: &str,
    ) -> MessageEvent {
        let mut event = MessageEvent::new(self.connection_id.clone(), body);
        event.context = self.context(config, EventType::Message, route_key);
        event.context.message_id = Some(new_request_id());
        event
    }

    /// The `$disconnect` event of a connection that ended with close `code` and `reason`.
    pub(super) fn disconnect_event(
        &self,
        config: &LocalGatewayConfig,
        code: u16,
        reason: String,
    ) -> DisconnectEvent {
        let mut disconnect = DisconnectEvent::new(self.connection_id.clone());
        disconnect.context = self.context(config, EventType::Disconnect, "$disconnect");
        disconnect.context.disconnect_status_code = Some(i64::from(code));
        disconnect.context.disconnect_reason = Some(reason);
        disconnect
    }
}

/// The route key API Gateway would select: the body's selection field when the body is a JSON
/// object holding a string there and a handler exists for it; `$default` otherwise.
pub(super) fn select_route(shared: &Shared, body: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return "$default".to_owned();
    };
    let mut cursor = &value;
    for key in shared.config.route_selection.split('.') {
        match cursor.get(key) {
            Some(next) => cursor = next,
            None => return "$default".to_owned(),
        }
    }
    match cursor.as_str() {
        Some(route) if shared.routes.contains_key(route) && !route.starts_with('$') => {
            route.to_owned()
        }
        _ => "$default".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_look_like_api_gateways() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1_000 {
            let id = new_connection_id();
            assert_eq!(id.as_str().len(), 12);
            assert!(id.as_str().ends_with('='));
            assert!(!id.as_str().contains('/'));
            seen.insert(id);
        }
        assert_eq!(seen.len(), 1_000);
    }
}
