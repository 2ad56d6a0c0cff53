//! A Lambda REQUEST authorizer for the `$connect` route, without `lambda_runtime` in your code:
//! [`run`] takes a function from the [`AuthorizerRequest`] to a [`Decision`].
//!
//! API Gateway calls the authorizer with the `$connect` request — its headers, query string and
//! `requestContext`, plus the `methodArn` of the route — before `$connect` runs. The answer
//! decides the handshake:
//!
//! | [`Decision`] | the function answers | the client gets |
//! |---|---|---|
//! | [`allow(principal)`](Decision::allow) | an IAM policy allowing `execute-api:Invoke` on the `methodArn`, the `principalId` and the `context` | `$connect` runs, with `requestContext.authorizer` = `{"principalId": …, …context}` on every event of the connection |
//! | [`deny(principal)`](Decision::deny) | the same policy with `Deny` | 403 |
//! | [`unauthorized()`](Decision::unauthorized) | the error `Unauthorized` | 401 |
//! | your function's error | the error (logged at ERROR with its chain) | 500 |
//!
//! (API Gateway developer guide, "Control access to WebSocket APIs with AWS Lambda REQUEST
//! authorizers" and "Output from an API Gateway Lambda authorizer": a policy that does not allow
//! the `methodArn` is a 403; the error message `Unauthorized` is a 401; any other error a 500. A
//! request missing an identity source is answered 401 by API Gateway without invoking the
//! authorizer.)
//!
//! The user id the crate's handlers read ([`RequestContext::user_id`](crate::RequestContext))
//! is the `principalId`: take it from what you verified (a token's subject), never from
//! anything the client merely states. `context` values must be strings, numbers or booleans —
//! API Gateway refuses anything else with a 500, so [`Decision::with_context`] takes only those.
//!
//! ```no_run
//! use stateless_ws::lambda::authorizer::{self, AuthorizerRequest, Decision};
//! use stateless_ws::lambda::{Context, LambdaError};
//!
//! async fn authorize(request: AuthorizerRequest, _: Context) -> Result<Decision, LambdaError> {
//!     // Verify the token with your identity provider; here, a stand-in.
//!     Ok(match request.connect.query("token") {
//!         Some("s3cret") => Decision::allow("alice").with_context("plan", "pro"),
//!         Some(_) => Decision::deny("anonymous"),
//!         None => Decision::unauthorized(),
//!     })
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), LambdaError> {
//!     stateless_ws::lambda::init_tracing();
//!     authorizer::run(authorize).await
//! }
//! ```
//!
//! Locally, `stateless-ws-local` runs the template's authorizer function the way API Gateway
//! does (identity sources, policy evaluation, `principalId` and `context` handed on).

use std::fmt;
use std::future::Future;

use serde_json::{Map, Value, json};

use super::{Context, LambdaError, LambdaEvent};
use crate::error::{Error, Result};
use crate::event::ConnectEvent;

/// The event API Gateway sends a REQUEST authorizer on `$connect`: the `$connect` request
/// itself ([`connect`](Self::connect): headers, query string, `requestContext`) and the
/// `methodArn` the answer's policy must name.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AuthorizerRequest {
    /// `methodArn`: `arn:aws:execute-api:REGION:ACCOUNT:API_ID/STAGE/$connect`.
    pub method_arn: String,
    /// The `$connect` request: `headers`, `queryStringParameters` (and their multi-value
    /// forms), `requestContext` (connection id, stage, domain, source IP).
    pub connect: ConnectEvent,
}

impl TryFrom<Value> for AuthorizerRequest {
    type Error = Error;

    /// Reads a REQUEST-authorizer event.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] naming the field: `type` other than `REQUEST` (a TOKEN
    /// authorizer's event), `methodArn` missing or not a string, or the rest not a `$connect`
    /// request.
    fn try_from(mut value: Value) -> Result<Self> {
        let Some(object) = value.as_object_mut() else {
            return Err(Error::invalid_event(
                "$",
                "is not a REQUEST authorizer event (not a JSON object)",
            ));
        };
        match object.get("type").and_then(Value::as_str) {
            Some("REQUEST") | None => {}
            Some(other) => {
                return Err(Error::invalid_event(
                    "type",
                    format!("is {other:?}: WebSocket APIs have REQUEST authorizers only"),
                ));
            }
        }
        let method_arn = match object.remove("methodArn") {
            Some(Value::String(arn)) if !arn.is_empty() => arn,
            _ => {
                return Err(Error::invalid_event(
                    "methodArn",
                    "is missing or not a string: this is not a REQUEST authorizer event",
                ));
            }
        };
        object.remove("type");
        object.remove("stageVariables");
        let connect = ConnectEvent::try_from(value)?;
        Ok(Self {
            method_arn,
            connect,
        })
    }
}

/// What the authorizer decided; see the [module docs](self) for what each becomes.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum Decision {
    /// Let the connection in as `principal_id`, with `context` for every event of it.
    Allow {
        /// The `principalId`: the user id the handlers read.
        principal_id: String,
        /// Flat `context`: strings, numbers, booleans.
        context: Map<String, Value>,
    },
    /// Refuse it (403).
    Deny {
        /// The `principalId` reported with the refusal.
        principal_id: String,
    },
    /// No valid credentials (401).
    Unauthorized,
}

impl fmt::Debug for Decision {
    /// Names the decision and the principal, never the context (it may hold claims).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Allow {
                principal_id,
                context,
            } => f
                .debug_struct("Allow")
                .field("principal_id", principal_id)
                .field("context_keys", &context.keys().collect::<Vec<_>>())
                .finish(),
            Self::Deny { principal_id } => f
                .debug_struct("Deny")
                .field("principal_id", principal_id)
                .finish(),
            Self::Unauthorized => f.write_str("Unauthorized"),
        }
    }
}

/// A value API Gateway accepts in an authorizer's `context`: a string, a number or a boolean.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextValue(Value);

impl From<&str> for ContextValue {
    fn from(v: &str) -> Self {
        Self(Value::String(v.to_owned()))
    }
}

impl From<String> for ContextValue {
    fn from(v: String) -> Self {
        Self(Value::String(v))
    }
}

impl From<bool> for ContextValue {
    fn from(v: bool) -> Self {
        Self(Value::Bool(v))
    }
}

macro_rules! number_context {
    ($($ty:ty),*) => {$(
        impl From<$ty> for ContextValue {
            fn from(v: $ty) -> Self {
                Self(Value::from(v))
            }
        }
    )*};
}
number_context!(i32, i64, u32, u64);

impl Decision {
    /// Allow, as `principal_id` (the user id the handlers will read).
    pub fn allow(principal_id: impl Into<String>) -> Self {
        Self::Allow {
            principal_id: principal_id.into(),
            context: Map::new(),
        }
    }

    /// Deny (403), reporting `principal_id`.
    pub fn deny(principal_id: impl Into<String>) -> Self {
        Self::Deny {
            principal_id: principal_id.into(),
        }
    }

    /// No valid credentials (401).
    pub fn unauthorized() -> Self {
        Self::Unauthorized
    }

    /// Adds `key` to an allow's `context` (ignored by deny and unauthorized). The key
    /// `principalId` is API Gateway's own and is not added.
    #[must_use]
    pub fn with_context(mut self, key: impl Into<String>, value: impl Into<ContextValue>) -> Self {
        if let Self::Allow { context, .. } = &mut self {
            let key = key.into();
            if key != "principalId" {
                context.insert(key, value.into().0);
            }
        }
        self
    }

    /// The authorizer's answer to `request`: the IAM policy document on its `methodArn`, the
    /// `principalId` and the `context`.
    ///
    /// # Errors
    ///
    /// For [`Decision::Unauthorized`], the error whose message is `Unauthorized` — what a
    /// Lambda authorizer raises for API Gateway to answer 401.
    pub fn into_response(
        self,
        request: &AuthorizerRequest,
    ) -> std::result::Result<Value, LambdaError> {
        let (effect, principal_id, context) = match self {
            Self::Allow {
                principal_id,
                context,
            } => ("Allow", principal_id, context),
            Self::Deny { principal_id } => ("Deny", principal_id, Map::new()),
            Self::Unauthorized => return Err("Unauthorized".into()),
        };
        let mut answer = json!({
            "principalId": principal_id,
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Action": "execute-api:Invoke",
                    "Effect": effect,
                    "Resource": request.method_arn,
                }],
            },
        });
        if !context.is_empty() {
            answer["context"] = Value::Object(context);
        }
        Ok(answer)
    }
}

/// One invocation: the event read, `handler` asked, its decision answered. An event that is
/// not a REQUEST-authorizer event or a handler error is an error (a 500 at API Gateway),
/// logged at ERROR with its chain.
///
/// # Errors
///
/// As above, and `Unauthorized` for [`Decision::Unauthorized`].
pub async fn handle<F, Fut, E>(
    handler: &F,
    event: LambdaEvent<Value>,
) -> std::result::Result<Value, LambdaError>
where
    F: Fn(AuthorizerRequest, Context) -> Fut + Sync,
    Fut: Future<Output = std::result::Result<Decision, E>> + Send,
    E: Into<LambdaError>,
{
    let request = match AuthorizerRequest::try_from(event.payload) {
        Ok(request) => request,
        Err(error) => {
            tracing::error!(error = %error.chain(), "authorizer: not a REQUEST authorizer event");
            return Err(error.into());
        }
    };
    let connection = request.connect.connection_id().clone();
    match handler(request.clone(), event.context).await {
        Ok(decision) => {
            match &decision {
                Decision::Allow { principal_id, .. } => {
                    tracing::info!(%connection, principal_id, "authorizer: allow");
                }
                Decision::Deny { principal_id } => {
                    tracing::info!(%connection, principal_id, "authorizer: deny (403)");
                }
                Decision::Unauthorized => {
                    tracing::info!(%connection, "authorizer: unauthorized (401)");
                }
            }
            decision.into_response(&request)
        }
        Err(error) => {
            let error: LambdaError = error.into();
            tracing::error!(%connection, error = %error, "authorizer failed: API Gateway answers 500");
            Err(error)
        }
    }
}

/// Runs `handler` as this Lambda function, a REQUEST authorizer: [`lambda_runtime::run`] over
/// [`handle`].
///
/// # Errors
///
/// What `lambda_runtime::run` returns (the Runtime API failed). It panics, as `lambda_runtime`
/// does, outside Lambda or a local runner.
pub async fn run<F, Fut, E>(handler: F) -> std::result::Result<(), LambdaError>
where
    F: Fn(AuthorizerRequest, Context) -> Fut + Sync,
    Fut: Future<Output = std::result::Result<Decision, E>> + Send,
    E: Into<LambdaError>,
{
    let handler = &handler;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<Value>| async move { handle(handler, event).await },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The REQUEST authorizer input of AWS's developer guide ("Control access to WebSocket APIs
    /// with AWS Lambda REQUEST authorizers"), as API Gateway sends it.
    fn sample() -> Value {
        json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef123/default/$connect",
            "headers": {
                "Connection": "upgrade",
                "content-length": "0",
                "HeaderAuth1": "headerValue1",
                "Host": "abcdef123.execute-api.us-east-1.amazonaws.com",
                "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
                "Sec-WebSocket-Key": "...",
                "Sec-WebSocket-Version": "13",
                "Upgrade": "websocket",
                "X-Amzn-Trace-Id": "..."
            },
            "multiValueHeaders": {
                "Connection": ["upgrade"],
                "HeaderAuth1": ["headerValue1"],
                "Host": ["abcdef123.execute-api.us-east-1.amazonaws.com"]
            },
            "queryStringParameters": {"QueryString1": "queryValue1"},
            "multiValueQueryStringParameters": {"QueryString1": ["queryValue1"]},
            "stageVariables": {},
            "requestContext": {
                "routeKey": "$connect",
                "eventType": "CONNECT",
                "extendedRequestId": "ABCD1234=",
                "requestTime": "09/Feb/2024:18:11:43 +0000",
                "messageDirection": "IN",
                "stage": "default",
                "connectedAt": 1_707_502_303_419_u64,
                "requestTimeEpoch": 1_707_502_303_420_u64,
                "identity": {"sourceIp": "192.0.2.1"},
                "requestId": "ABCD1234=",
                "domainName": "abcdef123.execute-api.us-east-1.amazonaws.com",
                "connectionId": "AAAA1234=",
                "apiId": "abcdef123"
            }
        })
    }

    fn event(payload: Value) -> LambdaEvent<Value> {
        LambdaEvent::new(payload, Context::default())
    }

    async fn by_query(
        request: AuthorizerRequest,
        _: Context,
    ) -> std::result::Result<Decision, LambdaError> {
        Ok(match request.connect.query("QueryString1") {
            Some("queryValue1") => Decision::allow("alice")
                .with_context("plan", "pro")
                .with_context("seats", 3_u32)
                .with_context("admin", false)
                .with_context("principalId", "mallory"),
            Some(_) => Decision::deny("anonymous"),
            None => Decision::unauthorized(),
        })
    }

    #[tokio::test]
    async fn aws_sample_is_read_and_allowed_with_a_policy_on_its_method_arn() {
        let request = AuthorizerRequest::try_from(sample()).unwrap();
        assert_eq!(request.connect.connection_id().as_str(), "AAAA1234=");
        assert_eq!(request.connect.header("headerauth1"), Some("headerValue1"));
        let answer = handle(&by_query, event(sample())).await.unwrap();
        assert_eq!(
            answer,
            json!({
                "principalId": "alice",
                "policyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Action": "execute-api:Invoke", "Effect": "Allow",
                    "Resource": "arn:aws:execute-api:us-east-1:123456789012:abcdef123/default/$connect"
                }]},
                "context": {"plan": "pro", "seats": 3, "admin": false}
            })
        );
    }

    #[tokio::test]
    async fn deny_is_a_deny_policy_and_unauthorized_the_unauthorized_error() {
        let mut wrong = sample();
        wrong["queryStringParameters"]["QueryString1"] = json!("other");
        let answer = handle(&by_query, event(wrong)).await.unwrap();
        assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Deny");
        assert!(answer.get("context").is_none());
        let mut none = sample();
        none["queryStringParameters"] = Value::Null;
        none["multiValueQueryStringParameters"] = Value::Null;
        let error = handle(&by_query, event(none)).await.unwrap_err();
        assert_eq!(error.to_string(), "Unauthorized");
    }

    #[tokio::test]
    async fn other_events_and_handler_errors_are_errors_naming_the_cause() {
        let mut token = sample();
        token["type"] = json!("TOKEN");
        let error = handle(&by_query, event(token)).await.unwrap_err();
        assert!(error.to_string().contains("type"), "{error}");
        let mut no_arn = sample();
        no_arn.as_object_mut().unwrap().remove("methodArn");
        let error = handle(&by_query, event(no_arn)).await.unwrap_err();
        assert!(error.to_string().contains("methodArn"), "{error}");
        let failing = |_: AuthorizerRequest, _: Context| async {
            Err::<Decision, LambdaError>("identity provider unreachable".into())
        };
        let error = handle(&failing, event(sample())).await.unwrap_err();
        assert_eq!(error.to_string(), "identity provider unreachable");
    }

    #[test]
    fn debug_never_shows_context_values() {
        let decision = Decision::allow("alice").with_context("email", "alice@example.com");
        let text = format!("{decision:?}");
        assert!(text.contains("alice") && text.contains("email"), "{text}");
        assert!(!text.contains("example.com"), "{text}");
    }
}
