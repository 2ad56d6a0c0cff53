//! Conversions from `aws_lambda_events`' WebSocket request type, for every event type, and to and
//! from its proxy response type.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::{ConnectEvent, DisconnectEvent, MessageEvent, RouteResponse, WebSocketEvent};

/// The request's JSON form, as API Gateway sent it.
fn to_json(request: &ApiGatewayWebsocketProxyRequest) -> Result<Value> {
    let mut value = serde_json::to_value(request)
        .map_err(|e| Error::invalid_event_caused_by("$", "could not be converted to JSON", e))?;
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
    Ok(value)
}

macro_rules! from_request {
    ($($ty:ident),*) => {$(
        impl TryFrom<ApiGatewayWebsocketProxyRequest> for $ty {
            type Error = Error;

            /// Converts `aws_lambda_events`' request by way of its JSON form; errors as
            /// [`from_slice`](Self::from_slice)'s.
            ///
            /// Header names come out in lower case (that crate keeps them in an
            /// `http::HeaderMap`); [`Headers`](crate::event::Headers) compares names
            /// case-insensitively, so the event still equals the one parsed from the original
            /// JSON.
            fn try_from(request: ApiGatewayWebsocketProxyRequest) -> Result<Self> {
                Self::try_from(to_json(&request)?)
            }
        }
    )*};
}

from_request!(WebSocketEvent, ConnectEvent, DisconnectEvent, MessageEvent);

impl From<RouteResponse> for aws_lambda_events::apigw::ApiGatewayProxyResponse {
    fn from(response: RouteResponse) -> Self {
        let mut proxy = Self::default();
        proxy.status_code = i64::from(response.status_code);
        proxy.body = response.body.map(aws_lambda_events::encodings::Body::Text);
        proxy
    }
}

impl TryFrom<aws_lambda_events::apigw::ApiGatewayProxyResponse> for RouteResponse {
    type Error = Error;

    /// Keeps the status and the body; headers are dropped (API Gateway does not pass them to
    /// WebSocket clients).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPayload`] when the status is not an HTTP status (100..=599) or the body is
    /// binary and not UTF-8.
    fn try_from(proxy: aws_lambda_events::apigw::ApiGatewayProxyResponse) -> Result<Self> {
        use aws_lambda_events::encodings::Body;
        let status = u16::try_from(proxy.status_code)
            .ok()
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| Error::InvalidPayload {
                reason: format!("statusCode {} is not an HTTP status", proxy.status_code),
            })?;
        let body = match proxy.body {
            None | Some(Body::Empty) => None,
            Some(Body::Text(text)) => Some(text),
            Some(Body::Binary(bytes)) => {
                Some(String::from_utf8(bytes).map_err(|_| Error::InvalidPayload {
                    reason: "the response body is binary, not UTF-8 text".to_owned(),
                })?)
            }
            Some(_) => {
                return Err(Error::InvalidPayload {
                    reason: "the response body is of a kind this version does not know".to_owned(),
                });
            }
        };
        Ok(RouteResponse {
            status_code: status,
            body,
        })
    }
}
