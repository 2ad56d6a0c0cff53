//! What the Lambda binaries share, on the library's adapter (`stateless_ws::lambda`):
//! configuration read once at start-up (a clear error instead of a panic at the first request),
//! the fan-out deadline, and the answer to an event of the wrong kind.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use stateless_ws::event::EventType;
use stateless_ws::lambda::{self, Adapter, Context, LambdaError};
use stateless_ws::{Result, RouteResponse, WebSocketEvent};

use crate::Chat;

/// The instant by which a fan-out must stop starting posts: the invocation's deadline minus
/// [`lambda::DEADLINE_MARGIN`] for the cleanup. `None` when the context carries no deadline
/// (tests, some local runners): then nothing is cut short.
pub fn fan_out_deadline(context: &Context) -> Option<Instant> {
    lambda::deadline(context).map(|at| at.checked_sub(lambda::DEADLINE_MARGIN).unwrap_or(at))
}

/// A 400 for an event this function does not serve (a route wired to the wrong function).
pub fn wrong_route(event: &WebSocketEvent, serves: EventType) -> RouteResponse {
    RouteResponse::error(
        400,
        format!(
            "invalid WebSocket event: field `requestContext.eventType`: is {}, but this function serves {serves} events",
            event.event_type()
        ),
    )
}

/// `handler` with its chat, as the `lambda_runtime` service the binaries run (and their tests
/// call with `Context::default()`).
pub fn adapter<F, Fut>(
    chat: Arc<Chat>,
    handler: F,
) -> Adapter<impl Fn(WebSocketEvent, Context) -> Fut + Clone>
where
    F: Fn(Arc<Chat>, WebSocketEvent, Context) -> Fut + Clone,
    Fut: Future<Output = Result<RouteResponse>> + Send + 'static,
{
    lambda::service(move |event, context| handler(Arc::clone(&chat), event, context))
}

/// Reads the configuration from the environment once, then serves invocations with `handler`.
/// A missing or invalid variable stops the function at start-up with a message naming it.
///
/// # Errors
///
/// The configuration error, or what `lambda_runtime` returns.
pub async fn run<F, Fut>(handler: F) -> std::result::Result<(), LambdaError>
where
    F: Fn(Arc<Chat>, WebSocketEvent, Context) -> Fut + Clone,
    Fut: Future<Output = Result<RouteResponse>> + Send + 'static,
{
    lambda::init_tracing();
    let chat = match Chat::from_env().await {
        Ok(chat) => Arc::new(chat),
        Err(e) => {
            tracing::error!(error = %e, "start-up configuration is invalid");
            return Err(e.into());
        }
    };
    lambda_runtime::run(adapter(chat, handler)).await
}
