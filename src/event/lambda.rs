//! Conversion from `aws_lambda_events`' request type (feature `lambda`), for every event type.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use serde_json::Value;

use super::{ConnectEvent, DisconnectEvent, MessageEvent, WebSocketEvent};
use crate::error::{Error, Result};

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
            /// `http::HeaderMap`); [`Headers`](super::Headers) compares names
            /// case-insensitively, so the event still equals the one parsed from the original
            /// JSON.
            fn try_from(request: ApiGatewayWebsocketProxyRequest) -> Result<Self> {
                Self::try_from(to_json(&request)?)
            }
        }
    )*};
}

from_request!(WebSocketEvent, ConnectEvent, DisconnectEvent, MessageEvent);
