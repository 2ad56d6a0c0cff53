//! [`RouteResponse`]: what a route's handler answers API Gateway.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a Lambda proxy integration answers API Gateway for a WebSocket route:
/// `{"statusCode": …, "body": …}`.
///
/// - On `$connect`, a status outside 2xx refuses the connection: the client's upgrade request
///   gets that status — 400 stays 400, 401 stays 401 (the AWS guide's subprotocol example: the
///   function returns `{statusCode: 400}` and wscat reports "Unexpected server response: 400") —
///   and only the status: `body` does not reach the client (API Gateway passes a body on only
///   through a route response, and `$connect` sends none), so log the reason rather than
///   returning it. A failed or erroring integration is a 500; an authorizer's refusal a 401
///   (identity source missing) or 403 (`Deny`).
/// - On a route with a *route response* (a two-way route), `body` is sent back to the caller as
///   a message. On one-way routes API Gateway discards it.
/// - On `$disconnect` the answer is ignored.
///
/// ```
/// use stateless_ws::RouteResponse;
///
/// let reply = RouteResponse::json(200, &serde_json::json!({"type": "pong"}));
/// assert!(reply.is_success());
/// assert_eq!(serde_json::to_string(&reply)?, r#"{"statusCode":200,"body":"{\"type\":\"pong\"}"}"#);
/// assert_eq!(RouteResponse::error(400, "bad room").body_json()["message"], "bad room");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RouteResponse {
    /// The HTTP status: 2xx accepts (`$connect`) or succeeds.
    pub status_code: u16,
    /// The body, sent to the caller on two-way routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl RouteResponse {
    /// 200 with no body: accept the connection, or acknowledge the message.
    pub fn ok() -> Self {
        Self::status(200)
    }

    /// `status` with no body.
    pub fn status(status: u16) -> Self {
        Self {
            status_code: status,
            body: None,
        }
    }

    /// `status` with a text body.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status_code: status,
            body: Some(body.into()),
        }
    }

    /// `status` with `body` serialized as JSON.
    pub fn json(status: u16, body: &Value) -> Self {
        Self::text(status, body.to_string())
    }

    /// `status` with `{"message": …}`, the shape of API Gateway's own error answers.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, &serde_json::json!({ "message": message.into() }))
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status_code)
    }

    /// The body parsed as JSON (`Value::Null` when absent or not JSON).
    pub fn body_json(&self) -> Value {
        self.body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null)
    }
}

impl Default for RouteResponse {
    /// [`RouteResponse::ok`].
    fn default() -> Self {
        Self::ok()
    }
}
