//! Routes served by real functions: a call over the Lambda Invoke API
//! (`POST {endpoint}/2015-03-31/functions/{name}/invocations`), and its answer mapped the way
//! API Gateway maps a Lambda proxy integration's.
//!
//! Every local Lambda runner speaks this API — `cargo lambda watch`, `sam local start-lambda`,
//! MiniStack — and none of them checks request signatures, so requests go out unsigned over
//! plain HTTP with hyper (already compiled for axum and the AWS SDK) rather than through
//! `aws-sdk-lambda`, which would add a crate the size of the DynamoDB client to every build of
//! this crate and sign requests nobody checks.

use std::fmt;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use stateless_ws::Result;

use super::config_error;
use stateless_ws::event::{RouteResponse, WebSocketEvent};

/// API Gateway's integration timeout: 29 seconds.
pub(crate) const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(29);

/// The largest synchronous Lambda response: 6 MB. A larger answer is an integration failure.
const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// A Lambda Invoke API endpoint, such as `http://127.0.0.1:9000` (`cargo lambda watch`),
/// `http://127.0.0.1:3001` (`sam local start-lambda`) or MiniStack's port.
///
/// Requests are unsigned: local runners do not check signatures. Only `http://` URLs are
/// accepted — the endpoint is a process on this machine or a trusted network.
#[derive(Clone)]
pub(crate) struct InvokeEndpoint {
    /// `http://host:port` plus an optional path prefix, without a trailing `/`.
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl fmt::Debug for InvokeEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvokeEndpoint")
            .field("url", &self.base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl InvokeEndpoint {
    /// The endpoint at `url` (`http://host:port`, optionally with a path prefix), with API
    /// Gateway's 29 s integration timeout.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](stateless_ws::Error::Config) when `url` is not an `http://` URL with a host, or has a query.
    pub(crate) fn new(url: &str) -> Result<Self> {
        let bad = |why: &str| config_error(format!("Lambda endpoint {url:?}: {why}"));
        let uri: hyper::Uri = url.trim().parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad(
                "must start with http:// (local runners serve plain HTTP)",
            ));
        }
        let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
        if uri.query().is_some() {
            return Err(bad("must not have a query string"));
        }
        let base = format!("http://{authority}{}", uri.path().trim_end_matches('/'));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        Ok(Self {
            base,
            client,
            timeout: INTEGRATION_TIMEOUT,
        })
    }

    /// How long one invocation may take before it counts as a timeout (default
    /// [`INTEGRATION_TIMEOUT`], 29 s).
    #[must_use]
    pub(crate) fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The endpoint's URL.
    #[cfg(test)]
    fn url(&self) -> &str {
        &self.base
    }

    /// The integration timeout.
    #[cfg(test)]
    fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Invokes `function` with `payload` and waits for its result, at most the timeout.
    pub(super) async fn invoke(&self, function: &str, payload: Vec<u8>) -> Invocation {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, self.send(function, payload)).await;
        let elapsed = started.elapsed();
        let invocation = match outcome {
            Ok(invocation) => invocation,
            Err(_) => Invocation::Failed(Failure::Timeout(self.timeout)),
        };
        match &invocation {
            Invocation::Result(_) => {
                tracing::debug!(function, elapsed_ms = elapsed.as_millis(), "invoked");
            }
            Invocation::Failed(failure) => tracing::warn!(
                function,
                endpoint = %self.base,
                elapsed_ms = elapsed.as_millis(),
                "invocation failed: {failure}"
            ),
        }
        invocation
    }

    async fn send(&self, function: &str, payload: Vec<u8>) -> Invocation {
        let uri = format!("{}/2015-03-31/functions/{function}/invocations", self.base);
        let request = hyper::Request::post(uri)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("x-amz-invocation-type", "RequestResponse")
            .header(
                hyper::header::USER_AGENT,
                concat!("stateless-ws-local/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(payload)));
        let request = match request {
            Ok(request) => request,
            Err(e) => return Invocation::Failed(Failure::Unreachable(e.to_string())),
        };
        let response = match self.client.request(request).await {
            Ok(response) => response,
            Err(e) => {
                return Invocation::Failed(Failure::Unreachable(error_chain(&e)));
            }
        };
        let status = response.status();
        let function_error = response
            .headers()
            .get("x-amz-function-error")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let body = match Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return Invocation::Failed(Failure::Unreachable(e.to_string())),
        };
        let text = String::from_utf8_lossy(&body);
        if !status.is_success() {
            return Invocation::Failed(Failure::Status(status.as_u16(), snippet(&text)));
        }
        if let Some(kind) = function_error {
            return Invocation::Failed(Failure::Function(kind, snippet(&text)));
        }
        if text.trim().is_empty() {
            return Invocation::Result(Value::Null);
        }
        match serde_json::from_str(&text) {
            Ok(value) => Invocation::Result(value),
            Err(_) => Invocation::Failed(Failure::Invalid(format!(
                "the result is not JSON: {}",
                snippet(&text)
            ))),
        }
    }
}

/// `e` and its sources, one after another: hyper's own message alone ("client error
/// (Connect)") does not say that nothing listens on the port.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn snippet(text: &str) -> String {
    const MAX: usize = 300;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// What an invocation returned.
pub(super) enum Invocation {
    /// The function's result (`null` for an empty answer).
    Result(Value),
    Failed(Failure),
}

/// Why an invocation did not produce a usable result; logged for the developer, while the
/// client sees only API Gateway's generic answer.
pub(super) enum Failure {
    Timeout(Duration),
    /// No answer: nothing listens, the connection broke.
    Unreachable(String),
    /// The Invoke API refused (e.g. 404 `ResourceNotFoundException`: no such function).
    Status(u16, String),
    /// `X-Amz-Function-Error`: the function failed (its error type and body).
    Function(String, String),
    /// The result is not what API Gateway accepts.
    Invalid(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(after) => write!(f, "no answer within {after:?} (integration timeout)"),
            Self::Unreachable(why) => write!(f, "the Invoke API did not answer: {why}"),
            Self::Status(404, body) => write!(
                f,
                "the runner has no such function (404: {body}); check the function name (--function-name-map)"
            ),
            Self::Status(status, body) => write!(f, "the Invoke API answered {status}: {body}"),
            Self::Function(kind, body) => write!(f, "the function failed ({kind}): {body}"),
            Self::Invalid(why) => write!(f, "invalid answer: {why}"),
        }
    }
}

/// A route served by a function on an Invoke API endpoint; see
/// [`LocalGateway::function`](super::LocalGateway::function).
#[derive(Debug, Clone)]
pub(crate) struct FunctionTarget {
    endpoint: InvokeEndpoint,
    name: String,
    two_way: bool,
}

impl FunctionTarget {
    /// `function` (its name as the runner knows it) on `endpoint`. The route is two-way: the
    /// function's `body` goes back to the caller, as with a route response on API Gateway.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](stateless_ws::Error::Config) when `function` is not a Lambda function name (letters, digits, `-`,
    /// `_`, or an ARN's `:` and `.`; at most 170 characters): it becomes part of a URL path.
    pub(crate) fn new(endpoint: InvokeEndpoint, function: impl Into<String>) -> Result<Self> {
        let name = function.into();
        validate_function_name(&name)?;
        Ok(Self {
            endpoint,
            name,
            two_way: true,
        })
    }

    /// Whether the function's `body` is sent back to the caller (default true). API Gateway
    /// sends it only when the route has a route response; a one-way route discards it.
    #[must_use]
    pub(crate) fn two_way(mut self, two_way: bool) -> Self {
        self.two_way = two_way;
        self
    }

    /// The function's name.
    pub(crate) fn function_name(&self) -> &str {
        &self.name
    }

    pub(super) async fn invoke_json(&self, payload: Vec<u8>) -> Invocation {
        self.endpoint.invoke(&self.name, payload).await
    }

    /// Invokes the function with `event` and maps its answer as API Gateway maps a Lambda
    /// proxy integration's.
    pub(super) async fn call(&self, event: &WebSocketEvent) -> Answer {
        let payload = match serde_json::to_vec(event) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::error!(function = %self.name, error = %e, "cannot serialize the event");
                return Answer::failed(
                    IntegrationFailure::Error,
                    format!("cannot serialize the event: {e}"),
                );
            }
        };
        match self.invoke_json(payload).await {
            Invocation::Result(value) => match route_response(value) {
                Ok(mut response) => {
                    if !self.two_way {
                        response.body = None;
                    }
                    Answer::Response(response)
                }
                Err(why) => {
                    tracing::warn!(function = %self.name, "invalid answer: {why}");
                    Answer::failed(
                        IntegrationFailure::Error,
                        format!("{}: invalid answer: {why}", self.name),
                    )
                }
            },
            Invocation::Failed(failure @ Failure::Timeout(_)) => Answer::failed(
                IntegrationFailure::Timeout,
                format!("{}: {failure}", self.name),
            ),
            Invocation::Failed(failure) => Answer::failed(
                IntegrationFailure::Error,
                format!("{}: {failure}", self.name),
            ),
        }
    }
}

pub(super) fn validate_function_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 170
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'));
    if valid {
        Ok(())
    } else {
        Err(config_error(format!(
            "{name:?} is not a Lambda function name (letters, digits, '-', '_', ':', '.'; at most 170)"
        )))
    }
}

/// A function's answer as a [`RouteResponse`]: `null` (no answer) is a 200 without body;
/// an object needs a numeric `statusCode`, and its `body` is taken as is when a string,
/// serialized otherwise.
fn route_response(value: Value) -> std::result::Result<RouteResponse, String> {
    let Value::Object(mut object) = value else {
        return match value {
            Value::Null => Ok(RouteResponse::ok()),
            other => Err(format!(
                "expected an object with statusCode, got {}",
                snippet(&other.to_string())
            )),
        };
    };
    let status = object
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..600).contains(s))
        .ok_or("the object has no statusCode between 100 and 599")?;
    let mut response = RouteResponse::status(status);
    response.body = match object.remove("body") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text),
        Some(other) => Some(other.to_string()),
    };
    Ok(response)
}

/// What a route produced: a response, or API Gateway's integration failure (and what went
/// wrong, for the log and — with `expose_errors` — the client).
pub(crate) enum Answer {
    Response(RouteResponse),
    Failed(IntegrationFailure, String),
}

impl Answer {
    pub(crate) fn failed(failure: IntegrationFailure, detail: impl Into<String>) -> Self {
        Self::Failed(failure, detail.into())
    }
}

/// The two integration failures a client can tell apart on API Gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntegrationFailure {
    /// The function failed, was not found, or answered something unusable.
    Error,
    /// No answer within the integration timeout.
    Timeout,
}

impl IntegrationFailure {
    /// The body API Gateway sends a message's caller: `message`, `connectionId`, `requestId`;
    /// with `detail` (the gateway's `expose_errors`, for development) also `detail`.
    pub(crate) fn body(
        self,
        connection_id: &stateless_ws::ids::ConnectionId,
        request_id: Option<&str>,
        detail: Option<&str>,
    ) -> String {
        let mut body = serde_json::json!({
            "message": self.message(),
            "connectionId": connection_id,
            "requestId": request_id,
        });
        if let Some(detail) = detail {
            body["detail"] = Value::String(detail.to_owned());
        }
        body.to_string()
    }

    /// The `message` API Gateway sends the client.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Error => "Internal server error",
            Self::Timeout => "Endpoint request timed out",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_are_plain_http_urls() {
        let e = InvokeEndpoint::new("http://127.0.0.1:9000/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.url(), "http://127.0.0.1:9000");
        assert_eq!(e.timeout(), INTEGRATION_TIMEOUT);
        for bad in [
            "",
            "127.0.0.1:9000",
            "https://x",
            "http://x/?a=b",
            "ftp://x",
        ] {
            assert!(InvokeEndpoint::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn function_names_cannot_escape_the_path() {
        for ok in [
            "ConnectFunction",
            "lambda_connect",
            "arn:aws:lambda:us-east-1:1:function:f:1",
        ] {
            assert!(validate_function_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "../x", "a?b", "a b", "a%2F", &"x".repeat(171)] {
            assert!(validate_function_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_map_like_a_proxy_integration() {
        let r = route_response(json!({"statusCode": 200, "body": "hi"}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.status_code, r.body.as_deref()), (200, Some("hi")));
        let r = route_response(json!({"statusCode": 403})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.status_code, r.body), (403, None));
        let r = route_response(json!({"statusCode": 200, "body": {"a": 1}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.body.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(route_response(Value::Null).map(|r| r.status_code), Ok(200));
        for bad in [
            json!("text"),
            json!({"body": "x"}),
            json!({"statusCode": "200"}),
            json!({"statusCode": 99}),
        ] {
            assert!(route_response(bad.clone()).is_err(), "{bad}");
        }
    }
}
