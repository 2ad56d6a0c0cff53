//! `requestContext`: [`RequestContext`], and the management API endpoints derived from it.

use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

use super::authorizer::deserialize_authorizer;
use super::{Authorizer, EventType, Identity, null_as_default, null_is_missing};
use crate::error::{Error, Result};
use crate::ids::ConnectionId;

/// `requestContext`: what API Gateway says about the connection and this event.
///
/// Only `eventType` and `connectionId` are required; API Gateway fills the rest, but emulators
/// and older events leave some out, so each is an `Option`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RequestContext {
    /// `eventType`: `CONNECT`, `MESSAGE` or `DISCONNECT`.
    #[serde(deserialize_with = "null_is_missing")]
    pub event_type: EventType,
    /// `connectionId`: the id to send to this client through the management API.
    #[serde(deserialize_with = "deserialize_connection_id")]
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

/// Reads `connectionId`, with why an invalid one is refused worded to follow the field's name.
fn deserialize_connection_id<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<ConnectionId, D::Error> {
    let id: String = null_is_missing(d)?;
    ConnectionId::new(id).map_err(|e| match e {
        Error::InvalidId { reason, .. } => {
            serde::de::Error::custom(format_args!("is not a valid connection id: {reason}"))
        }
        other => serde::de::Error::custom(other),
    })
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
}
