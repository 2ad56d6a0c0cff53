//! Lambda glue (feature `lambda`): write `async fn(WebSocketEvent, Context) -> Result<RouteResponse>`
//! and get the rest — parsing, error mapping, tracing spans, the response shape — for free.
//!
//! Built on the crates a Rust Lambda already uses: [`lambda_runtime`] 1.x (its [`Context`] and
//! [`run`](lambda_runtime::run) loop) and `aws_lambda_events` 1.x (conversions from its
//! `ApiGatewayWebsocketProxyRequest` and to its `ApiGatewayProxyResponse`). Version 0.x of
//! `aws_lambda_events` is a different crate to the compiler: use 1.x.
//!
//! ```no_run
//! use stateless_ws::lambda::{self, Context};
//! use stateless_ws::{Result, RouteResponse, WebSocketEvent};
//!
//! async fn handle(event: WebSocketEvent, _context: Context) -> Result<RouteResponse> {
//!     match event {
//!         WebSocketEvent::Connect(connect) => {
//!             // `?` on a bad room answers 400 and refuses the connection (see below).
//!             let _room = stateless_ws::RoomId::new(connect.query("room").unwrap_or("lobby"))?;
//!             Ok(RouteResponse::ok())
//!         }
//!         _ => Ok(RouteResponse::ok()),
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::result::Result<(), lambda::LambdaError> {
//!     lambda::init_tracing(); // logs go to CloudWatch; without a subscriber nothing is logged
//!     lambda::run(handle).await
//! }
//! ```
//!
//! # What the adapter does with each invocation
//!
//! 1. Reads the payload as a [`WebSocketEvent`]. A payload that is not an API Gateway WebSocket
//!    event is answered with 400 (and a warning naming the field), not a Lambda error.
//! 2. Calls the handler inside a `tracing` span `websocket` with `event_type`, `route` and
//!    `connection_id` (lambda_runtime's own span adds the request id).
//! 3. Turns `Err(error)` into a [`RouteResponse`] with [`status_for`]'s status — 400 for invalid
//!    input, 403, 410, 413, 429, and 500 for the rest — and `{"message": …}`: the error's text for
//!    4xx, API Gateway's own `Internal server error` for 5xx (the full error goes to the log, not
//!    to the client). [`Adapter::on_error`] replaces the mapping.
//!
//! The invocation never fails from API Gateway's point of view: the status carries the outcome.
//! On `$connect` a non-2xx status refuses the connection with that status.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tracing::Instrument;

pub use lambda_runtime::{Context, Error as LambdaError, LambdaEvent};

use crate::error::{Error, Result};
use crate::event::{RouteResponse, WebSocketEvent};

/// The time kept free before a Lambda's deadline by [`Broadcaster::with_lambda_deadline`]: 250 ms,
/// for the function's answer. The broadcaster keeps its own
/// [`cleanup_reserve`](crate::broadcast::BroadcastConfig::cleanup_reserve) (500 ms) before that
/// for the Gone cleanup, so posting stops about 750 ms before the invocation's deadline.
///
/// [`Broadcaster::with_lambda_deadline`]: crate::broadcast::Broadcaster::with_lambda_deadline
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

/// The invocation's deadline as an [`Instant`], from [`Context::deadline`] (epoch milliseconds).
///
/// `None` when the context carries none: `deadline == 0`, as in `Context::default()` in tests
/// and in local runners that leave it out. That means "no deadline", never "no time left". A
/// deadline already in the past gives `Instant::now()`.
///
/// ```
/// use stateless_ws::lambda::{deadline, Context};
/// assert!(deadline(&Context::default()).is_none());
/// ```
pub fn deadline(context: &Context) -> Option<Instant> {
    if context.deadline == 0 {
        return None;
    }
    let at = UNIX_EPOCH + Duration::from_millis(context.deadline);
    let left = at.duration_since(SystemTime::now()).unwrap_or_default();
    Some(Instant::now() + left)
}

/// The HTTP status a handler error becomes (the default of [`Adapter::on_error`]).
///
/// | error | status |
/// |---|---|
/// | [`Error::InvalidEvent`], [`Error::InvalidBody`], [`Error::InvalidId`], [`Error::InvalidPayload`] | 400 |
/// | [`Error::Forbidden`] | 403 |
/// | [`Error::Gone`] | 410 |
/// | [`Error::PayloadTooLarge`] | 413 |
/// | [`Error::Throttled`] | 429 |
/// | anything else (store, configuration, delivery failures) | 500 |
pub fn status_for(error: &Error) -> u16 {
    match error {
        Error::InvalidEvent { .. }
        | Error::InvalidBody { .. }
        | Error::InvalidId { .. }
        | Error::InvalidPayload { .. } => 400,
        Error::Forbidden { .. } => 403,
        Error::Gone { .. } => 410,
        Error::PayloadTooLarge { .. } => 413,
        Error::Throttled { .. } => 429,
        _ => 500,
    }
}

/// The default answer for a handler error: [`status_for`]'s status with `{"message": …}` — the
/// error's text for 4xx, `Internal server error` (API Gateway's wording) for 5xx.
pub fn error_response(error: &Error) -> RouteResponse {
    let status = status_for(error);
    if status >= 500 {
        RouteResponse::error(status, "Internal server error")
    } else {
        RouteResponse::error(status, error.to_string())
    }
}

type OnError = Arc<dyn Fn(&Error) -> RouteResponse + Send + Sync>;

/// A `lambda_runtime` service around a WebSocket handler; see the [module docs](self).
///
/// Made by [`service`]; give it to [`lambda_runtime::run`] (or use [`run`]).
#[derive(Clone)]
pub struct Adapter<F> {
    handler: F,
    on_error: OnError,
}

impl<F> fmt::Debug for Adapter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Adapter").finish_non_exhaustive()
    }
}

/// Wraps `handler` into a `lambda_runtime` service taking any JSON payload.
///
/// The handler may be an `async fn(WebSocketEvent, Context) -> Result<RouteResponse>` or a closure
/// returning such a future (clone shared state into it: `move |event, ctx| { let app = app.clone();
/// async move { app.handle(event, ctx).await } }`).
pub fn service<F, Fut>(handler: F) -> Adapter<F>
where
    F: Fn(WebSocketEvent, Context) -> Fut,
    Fut: Future<Output = Result<RouteResponse>> + Send + 'static,
{
    Adapter {
        handler,
        on_error: Arc::new(error_response),
    }
}

impl<F> Adapter<F> {
    /// Replaces how a handler error becomes the answer (default [`error_response`]).
    #[must_use]
    pub fn on_error(
        mut self,
        on_error: impl Fn(&Error) -> RouteResponse + Send + Sync + 'static,
    ) -> Self {
        self.on_error = Arc::new(on_error);
        self
    }

    /// Handles one invocation: what the service does, callable directly in tests with
    /// `Context::default()`.
    pub fn call<Fut>(
        &self,
        payload: Value,
        context: Context,
    ) -> impl Future<Output = RouteResponse> + Send + 'static
    where
        F: Fn(WebSocketEvent, Context) -> Fut,
        Fut: Future<Output = Result<RouteResponse>> + Send + 'static,
    {
        invoke(&self.handler, &self.on_error, payload, context)
    }
}

fn invoke<F, Fut>(
    handler: &F,
    on_error: &OnError,
    payload: Value,
    context: Context,
) -> impl Future<Output = RouteResponse> + Send + 'static
where
    F: Fn(WebSocketEvent, Context) -> Fut,
    Fut: Future<Output = Result<RouteResponse>> + Send + 'static,
{
    let on_error = Arc::clone(on_error);
    let parsed = WebSocketEvent::try_from(payload);
    let call = parsed.map(|event| {
        let span = tracing::info_span!(
            "websocket",
            event_type = %event.event_type(),
            route = event.route_key().unwrap_or(""),
            connection_id = %event.connection_id(),
        );
        (handler(event, context), span)
    });
    async move {
        match call {
            Err(error) => {
                tracing::warn!(%error, "the payload is not an API Gateway WebSocket event");
                on_error(&error)
            }
            Ok((future, span)) => async move {
                match future.await {
                    Ok(response) => response,
                    Err(error) => {
                        let response = on_error(&error);
                        if response.status_code >= 500 {
                            tracing::error!(error = %error_chain(&error), status = response.status_code, "handler failed");
                        } else {
                            tracing::info!(%error, status = response.status_code, "handler refused the request");
                        }
                        response
                    }
                }
            }
            .instrument(span)
            .await,
        }
    }
}

/// The error and its causes, one after another: `Display` shows one layer only.
fn error_chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl<F, Fut> lambda_runtime::Service<LambdaEvent<Value>> for Adapter<F>
where
    F: Fn(WebSocketEvent, Context) -> Fut,
    Fut: Future<Output = Result<RouteResponse>> + Send + 'static,
{
    type Response = RouteResponse;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<RouteResponse, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<std::result::Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, event: LambdaEvent<Value>) -> Self::Future {
        let future = invoke(&self.handler, &self.on_error, event.payload, event.context);
        Box::pin(async move { Ok(future.await) })
    }
}

/// Runs `handler` as this Lambda function: [`lambda_runtime::run`] over [`service`].
///
/// # Errors
///
/// What `lambda_runtime::run` returns (the Runtime API failed). It panics, as `lambda_runtime`
/// does, when the Lambda environment variables are missing — i.e. outside Lambda or a local
/// runner such as `cargo lambda watch`.
pub async fn run<F, Fut>(handler: F) -> std::result::Result<(), LambdaError>
where
    F: Fn(WebSocketEvent, Context) -> Fut,
    Fut: Future<Output = Result<RouteResponse>> + Send + 'static,
{
    lambda_runtime::run(service(handler)).await
}

/// Installs `lambda_runtime`'s default `tracing` subscriber: logs to stdout (CloudWatch), level
/// from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default INFO), JSON when the function's log format
/// is JSON. Call it once at the top of `main`; without a subscriber nothing is logged.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

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

impl crate::broadcast::Broadcaster {
    /// A copy whose deadline is [`DEADLINE_MARGIN`] before this invocation's: the fan-out and
    /// its Gone cleanup finish by then (posting stops `cleanup_reserve` earlier), leaving time
    /// for the answer. With no deadline in `context`
    /// (`Context::default()`, some local runners) the copy has none either: everything is sent.
    #[must_use]
    pub fn with_lambda_deadline(&self, context: &Context) -> Self {
        match deadline(context) {
            Some(at) => self.with_deadline(at.checked_sub(DEADLINE_MARGIN).unwrap_or(at)),
            None => self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::MessageEvent;
    use crate::ids::ConnectionId;

    fn message(body: &str) -> Value {
        serde_json::to_value(MessageEvent::new(ConnectionId::new("c1=").unwrap(), body)).unwrap()
    }

    async fn echo(event: WebSocketEvent, _: Context) -> Result<RouteResponse> {
        let WebSocketEvent::Message(message) = event else {
            return Ok(RouteResponse::ok());
        };
        let room = crate::RoomId::new(message.body_text()?.into_owned())?;
        Ok(RouteResponse::text(200, room.to_string()))
    }

    #[tokio::test]
    async fn answers_map_errors_to_statuses() {
        let adapter = service(echo);
        let ok = adapter.call(message("lobby"), Context::default()).await;
        assert_eq!((ok.status_code, ok.body.as_deref()), (200, Some("lobby")));

        let bad = adapter.call(message("a#b"), Context::default()).await;
        assert_eq!(bad.status_code, 400);
        assert!(
            bad.body_json()["message"]
                .as_str()
                .unwrap()
                .contains("room id")
        );

        let not_an_event = adapter
            .call(serde_json::json!({"hello": 1}), Context::default())
            .await;
        assert_eq!(not_an_event.status_code, 400);
        assert!(not_an_event.body.unwrap().contains("requestContext"));
    }

    #[tokio::test]
    async fn server_errors_are_masked_and_the_mapping_is_replaceable() {
        async fn broken(_: WebSocketEvent, _: Context) -> Result<RouteResponse> {
            Err(Error::Config {
                message: "table secret-internal-name missing".into(),
            })
        }
        let masked = service(broken).call(message("x"), Context::default()).await;
        assert_eq!(masked.status_code, 500);
        assert_eq!(masked.body_json()["message"], "Internal server error");

        let custom = service(broken)
            .on_error(|e| RouteResponse::error(503, format!("try later ({})", status_for(e))))
            .call(message("x"), Context::default())
            .await;
        assert_eq!(custom.status_code, 503);
        assert_eq!(custom.body_json()["message"], "try later (500)");
    }

    #[test]
    fn statuses() {
        let gone = Error::Gone {
            connection_id: ConnectionId::new("c=").unwrap(),
        };
        assert_eq!(status_for(&gone), 410);
        assert_eq!(
            status_for(&Error::PayloadTooLarge { size: 1, limit: 0 }),
            413
        );
        assert_eq!(status_for(&crate::RoomId::new("").unwrap_err()), 400);
    }

    #[test]
    fn deadline_zero_is_none_and_a_past_deadline_is_now() {
        let mut context = Context::default();
        assert_eq!(deadline(&context), None);
        context.deadline = 1; // 1970
        let d = deadline(&context).unwrap();
        assert!(d <= Instant::now());
        let in_10s = SystemTime::now() + Duration::from_secs(10);
        context.deadline =
            u64::try_from(in_10s.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
        let d = deadline(&context).unwrap();
        let left = d - Instant::now();
        assert!(
            left > Duration::from_secs(9) && left <= Duration::from_secs(10),
            "{left:?}"
        );
    }

    #[test]
    fn proxy_response_round_trip() {
        use aws_lambda_events::apigw::ApiGatewayProxyResponse;
        let response = RouteResponse::text(201, "hi");
        let proxy: ApiGatewayProxyResponse = response.clone().into();
        assert_eq!(proxy.status_code, 201);
        assert_eq!(RouteResponse::try_from(proxy).unwrap(), response);
        let mut bad = ApiGatewayProxyResponse::default();
        bad.status_code = 42;
        assert!(matches!(
            RouteResponse::try_from(bad),
            Err(Error::InvalidPayload { .. })
        ));
    }
}
