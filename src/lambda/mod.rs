//! Lambda glue (feature `lambda`): write `async fn(ConnectEvent, Context) -> Result<RouteResponse>`
//! (or any other event type, or [`WebSocketEvent`] for all three) and get the rest — parsing,
//! error mapping, tracing spans, the response shape — for free. Everything that touches
//! `lambda_runtime` or `aws_lambda_events` lives here:
//!
//! | item | for |
//! |---|---|
//! | [`run`], [`service`], [`Adapter`] | a WebSocket route's function (`$connect`, `$disconnect`, messages) |
//! | [`RouteHandler`] | what the adapter is, object-safe: `stateless-ws-local`'s gateway runs the same value in-process |
//! | [`deadline`], [`DEADLINE_MARGIN`] | the invocation's deadline for [`Broadcaster::with_deadline`](crate::broadcast::Broadcaster::with_deadline) and the queue worker |
//! | [`status_for`], [`error_response`] | how a handler error becomes the answer |
//! | [`authorizer`] | a REQUEST authorizer for `$connect`: `lambda::authorizer::run(f)`, `f` from an [`AuthorizerRequest`](authorizer::AuthorizerRequest) to a [`Decision`](authorizer::Decision) (allow / deny / unauthorized) |
//! | `sqs` (with feature `sqs`) | the SQS-triggered fan-out worker: `lambda::sqs::run(worker)` |
//! | conversions | from `aws_lambda_events`' `ApiGatewayWebsocketProxyRequest`, to and from its `ApiGatewayProxyResponse` |
//!
//! Built on the crates a Rust Lambda already uses: [`lambda_runtime`] 1.x (its [`Context`] and
//! [`run`](lambda_runtime::run) loop) and `aws_lambda_events` 1.x. Version 0.x of
//! `aws_lambda_events` is a different crate to the compiler: use 1.x.
//!
//! ```no_run
//! use stateless_ws::lambda::{self, Context};
//! use stateless_ws::{ConnectEvent, Result, RoomId, RouteResponse};
//!
//! // A function wired to `$connect` only: it takes a `ConnectEvent`.
//! async fn handle(connect: ConnectEvent, _context: Context) -> Result<RouteResponse> {
//!     // `?` on a bad room answers 400 and refuses the connection (see below).
//!     let _room = RoomId::new(connect.query("room").unwrap_or("lobby"))?;
//!     Ok(RouteResponse::ok())
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::result::Result<(), lambda::LambdaError> {
//!     lambda::init_tracing(); // logs go to CloudWatch; without a subscriber nothing is logged
//!     lambda::run(handle).await
//! }
//! ```
//!
//! One function for every route takes [`WebSocketEvent`] and matches on it.
//!
//! # What the adapter does with each invocation
//!
//! 1. Reads the payload as the handler's event type ([`RouteEvent`]: [`WebSocketEvent`],
//!    [`ConnectEvent`], [`DisconnectEvent`] or [`MessageEvent`]). A payload that is not an API
//!    Gateway WebSocket event, or an event of another type than the handler takes (a route wired
//!    to the wrong function), is answered with 400 and a warning naming the field, not a Lambda
//!    error.
//! 2. Calls the handler inside a `tracing` span `websocket` with `event_type`, `route` and
//!    `connection_id` (lambda_runtime's own span adds the request id).
//! 3. Turns `Err(error)` into a [`RouteResponse`] with [`status_for`]'s status — 400 for invalid
//!    input, 403, 410, 413, 429, and 500 for the rest — and `{"message": …}`: the error's text
//!    when it is about the client's input, API Gateway's own `Internal server error` otherwise
//!    (a 403 from the management API, a 410 for another connection or a throttled table says
//!    nothing to the client about the infrastructure; the full error goes to the log).
//!    [`Adapter::on_error`] replaces the mapping.
//!
//! The invocation never fails from API Gateway's point of view: the status carries the outcome.
//! On `$connect` a non-2xx status refuses the connection with that status — the client's
//! upgrade request gets that status and nothing else: API Gateway does not pass the body on
//! (see [`RouteResponse`]), so a refused client learns the status code
//! only, and the reason is for the log.
//!
//! # Troubleshooting
//!
//! - **A client is refused with 500 on `$connect`.** The handler failed (the log has the error)
//!   or returned an error mapped to 5xx; answers about the client's input (400, 413) carry the
//!   reason in their body, the others only `Internal server error`: read the log. (On
//!   `$connect` no body reaches the client at all, only the status.)
//! - **No logs.** Install a subscriber: [`init_tracing`] at the top of `main` (level from
//!   `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`); without one nothing is logged.
//! - **`MissingSigningRegion` / no region.** The SDK found no region: set `AWS_REGION` (Lambda
//!   sets it) or `aws_config::defaults(..).region(..)`.
//! - **Nothing delivered, `not_attempted` full.** The broadcaster's deadline had passed:
//!   with `with_deadline(lambda::deadline(&context))`, less than about 750 ms was left (the
//!   250 ms [`DEADLINE_MARGIN`] plus the broadcaster's cleanup reserve); a budget of zero or in
//!   the past attempts nothing.
//! - **The deployed function is old, or missing.** cargo-lambda writes
//!   `target/lambda/<bin>/bootstrap` under `CARGO_TARGET_DIR` when that is set: point the
//!   template's `CodeUri` there.
//! - **`Runtime.InvalidEntrypoint` / `exec format error`.** An x86_64 binary on an arm64
//!   function (or the reverse): build with `cargo lambda build --arm64` for
//!   `Architectures: [arm64]`.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use serde_json::Value;
use tracing::Instrument;

pub use lambda_runtime::{Context, Error as LambdaError, LambdaEvent};

use crate::error::{Error, Result};
use crate::event::{
    ConnectEvent, DisconnectEvent, MessageEvent, RequestContext, RouteResponse, WebSocketEvent,
};

pub mod authorizer;
mod deadline;
mod events;
#[cfg(feature = "sqs")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqs")))]
pub mod sqs;

pub use deadline::{DEADLINE_MARGIN, MAX_INVOCATION, deadline};

/// An event type a handler can take: [`WebSocketEvent`] (any), or one of [`ConnectEvent`],
/// [`DisconnectEvent`], [`MessageEvent`] for a function wired to those routes only. Sealed.
pub trait RouteEvent: TryFrom<Value, Error = Error> + Send + 'static + sealed::Sealed {
    /// The event's `requestContext`.
    fn request_context(&self) -> &RequestContext;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::event::WebSocketEvent {}
    impl Sealed for crate::event::ConnectEvent {}
    impl Sealed for crate::event::DisconnectEvent {}
    impl Sealed for crate::event::MessageEvent {}
}

impl RouteEvent for WebSocketEvent {
    fn request_context(&self) -> &RequestContext {
        self.context()
    }
}

macro_rules! route_event {
    ($($ty:ident),*) => {$(
        impl RouteEvent for $ty {
            fn request_context(&self) -> &RequestContext {
                &self.context
            }
        }
    )*};
}
route_event!(ConnectEvent, DisconnectEvent, MessageEvent);

/// A route's function, object-safe: the event as API Gateway sends it (JSON) and the
/// invocation's [`Context`] in, the integration's answer out. Never fails: errors are answers.
///
/// [`service`] makes one ([`Adapter`]); `stateless-ws-local`'s gateway takes any, so the
/// handler a Lambda runs is the one the local gateway runs.
pub trait RouteHandler: Send + Sync + 'static {
    /// Handles one invocation.
    fn call(
        &self,
        payload: Value,
        context: Context,
    ) -> Pin<Box<dyn Future<Output = RouteResponse> + Send + 'static>>;
}

/// The HTTP status a handler error becomes (the default of [`Adapter::on_error`]).
///
/// | error | status |
/// |---|---|
/// | [`Error::InvalidEvent`], [`Error::InvalidBody`], [`Error::InvalidId`], [`Error::InvalidPayload`] | 400 |
/// | [`Error::Forbidden`], [`Error::RoomRefused`] | 403 |
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
        Error::Forbidden { .. } | Error::RoomRefused(_) => 403,
        Error::Gone { .. } => 410,
        Error::PayloadTooLarge { .. } => 413,
        Error::Throttled { .. } => 429,
        _ => 500,
    }
}

/// The default answer for a handler error: [`status_for`]'s status with `{"message": …}` — the
/// error's text when it is about the client's own input ([`Error::InvalidEvent`],
/// [`Error::InvalidBody`], [`Error::InvalidId`], [`Error::InvalidPayload`],
/// [`Error::PayloadTooLarge`], [`Error::RoomRefused`]), `Internal server error` (API Gateway's wording) for every other
/// error, 4xx included: [`Error::Forbidden`] names the management endpoint and its IAM
/// permission, [`Error::Gone`] another client's connection id, [`Error::Throttled`] the table —
/// nothing a client should read. The full error goes to the log.
pub fn error_response(error: &Error) -> RouteResponse {
    let status = status_for(error);
    let about_the_input = matches!(
        error,
        Error::InvalidEvent { .. }
            | Error::InvalidBody { .. }
            | Error::InvalidId { .. }
            | Error::InvalidPayload { .. }
            | Error::PayloadTooLarge { .. }
            | Error::RoomRefused(_)
    );
    if about_the_input {
        RouteResponse::error(status, error.to_string())
    } else {
        RouteResponse::error(status, "Internal server error")
    }
}

type OnError = Arc<dyn Fn(&Error) -> RouteResponse + Send + Sync>;

/// A `lambda_runtime` service around a WebSocket handler taking events of type `E`; see the
/// [module docs](self).
///
/// Made by [`service`]; give it to [`lambda_runtime::run`] (or use [`run`]), or to
/// `stateless-ws-local`'s gateway as a [`RouteHandler`].
pub struct Adapter<F, E = WebSocketEvent> {
    handler: F,
    on_error: OnError,
    event: PhantomData<fn() -> E>,
}

impl<F: Clone, E> Clone for Adapter<F, E> {
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
            on_error: Arc::clone(&self.on_error),
            event: PhantomData,
        }
    }
}

impl<F, E> fmt::Debug for Adapter<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Adapter")
            .field("event", &std::any::type_name::<E>())
            .finish_non_exhaustive()
    }
}

/// Wraps `handler` into a `lambda_runtime` service taking any JSON payload.
///
/// The handler may be an `async fn(E, Context) -> Result<RouteResponse>` — `E` being
/// [`WebSocketEvent`] or one event type ([`RouteEvent`]), inferred from the function — or a
/// closure returning such a future (clone shared state into it: `move |event: WebSocketEvent,
/// ctx| { let app = app.clone(); async move { app.handle(event, ctx).await } }`).
pub fn service<E, F, Fut>(handler: F) -> Adapter<F, E>
where
    E: RouteEvent,
    F: Fn(E, Context) -> Fut,
    Fut: Future<Output = Result<RouteResponse>> + Send + 'static,
{
    Adapter {
        handler,
        on_error: Arc::new(error_response),
        event: PhantomData,
    }
}

impl<F, E> Adapter<F, E> {
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
        E: RouteEvent,
        F: Fn(E, Context) -> Fut,
        Fut: Future<Output = Result<RouteResponse>> + Send + 'static,
    {
        invoke(&self.handler, &self.on_error, payload, context)
    }
}

impl<F, E, Fut> RouteHandler for Adapter<F, E>
where
    E: RouteEvent,
    F: Fn(E, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<RouteResponse>> + Send + 'static,
{
    fn call(
        &self,
        payload: Value,
        context: Context,
    ) -> Pin<Box<dyn Future<Output = RouteResponse> + Send + 'static>> {
        Box::pin(invoke(&self.handler, &self.on_error, payload, context))
    }
}

fn invoke<E, F, Fut>(
    handler: &F,
    on_error: &OnError,
    payload: Value,
    context: Context,
) -> impl Future<Output = RouteResponse> + Send + 'static
where
    E: RouteEvent,
    F: Fn(E, Context) -> Fut,
    Fut: Future<Output = Result<RouteResponse>> + Send + 'static,
{
    let on_error = Arc::clone(on_error);
    let parsed = E::try_from(payload);
    let call = parsed.map(|event| {
        let request = event.request_context();
        let span = tracing::info_span!(
            "websocket",
            event_type = %request.event_type,
            route = request.route_key.as_deref().unwrap_or(""),
            connection_id = %request.connection_id,
        );
        (handler(event, context), span)
    });
    async move {
        match call {
            Err(error) => {
                tracing::warn!(error = %error.chain(), "the payload is not an API Gateway WebSocket event this function serves");
                on_error(&error)
            }
            Ok((future, span)) => async move {
                match future.await {
                    Ok(response) => response,
                    Err(error) => {
                        let response = on_error(&error);
                        if response.status_code >= 500 {
                            tracing::error!(error = %error.chain(), status = response.status_code, "handler failed");
                        } else {
                            tracing::info!(error = %error.chain(), status = response.status_code, "handler refused the request");
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

impl<F, E, Fut> lambda_runtime::Service<LambdaEvent<Value>> for Adapter<F, E>
where
    E: RouteEvent,
    F: Fn(E, Context) -> Fut,
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
pub async fn run<E, F, Fut>(handler: F) -> std::result::Result<(), LambdaError>
where
    E: RouteEvent,
    F: Fn(E, Context) -> Fut,
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

    #[tokio::test]
    async fn infrastructure_errors_tell_the_client_nothing() {
        let gone = ConnectionId::new("other-client=").unwrap();
        let errors = [
            Error::Gone {
                connection_id: gone.clone(),
            },
            Error::Forbidden {
                endpoint: "https://abc.execute-api.eu-west-1.amazonaws.com/prod".into(),
                source: "AccessDenied".into(),
            },
            Error::Throttled {
                backend: "DynamoDbStore(ws-connections)".into(),
                source: "ProvisionedThroughputExceeded".into(),
            },
        ];
        for error in errors {
            let response = error_response(&error);
            assert!(response.status_code >= 400, "{error}");
            let body = response.body.unwrap_or_default();
            assert_eq!(
                serde_json::from_str::<Value>(&body).unwrap()["message"],
                "Internal server error",
                "{error}"
            );
            for secret in [
                "other-client",
                "execute-api",
                "ManageConnections",
                "ws-connections",
            ] {
                assert!(!body.contains(secret), "{error}: {body}");
            }
        }
        let too_large = error_response(&Error::PayloadTooLarge {
            size: 200_000,
            limit: 131_072,
        });
        assert!(too_large.body.unwrap().contains("131072"));
    }

    #[tokio::test]
    async fn a_typed_handler_takes_its_event_type_and_refuses_the_others() {
        async fn on_connect(connect: ConnectEvent, _: Context) -> Result<RouteResponse> {
            Ok(RouteResponse::text(
                200,
                connect.connection_id().to_string(),
            ))
        }
        let adapter = service(on_connect);
        let connect =
            serde_json::to_value(ConnectEvent::new(ConnectionId::new("k1=").unwrap())).unwrap();
        let ok = adapter.call(connect, Context::default()).await;
        assert_eq!((ok.status_code, ok.body.as_deref()), (200, Some("k1=")));

        let wrong = adapter.call(message("lobby"), Context::default()).await;
        assert_eq!(wrong.status_code, 400);
        let text = wrong.body_json()["message"].as_str().unwrap().to_owned();
        assert!(text.contains("requestContext.eventType"), "{text}");
    }

    #[tokio::test]
    async fn the_adapter_is_an_object_safe_route_handler() {
        let handlers: Vec<Arc<dyn RouteHandler>> = vec![Arc::new(service(echo))];
        let answer = RouteHandler::call(&*handlers[0], message("lobby"), Context::default()).await;
        assert_eq!(answer.body.as_deref(), Some("lobby"));
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
