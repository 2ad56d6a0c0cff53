//! What the Lambda binaries share, on the library's adapter (`stateless_ws::lambda`):
//! configuration read once at start-up (a clear error instead of a panic at the first request).
//! Each binary's handler takes its own event type (`ConnectEvent`, `DisconnectEvent`,
//! `MessageEvent`); the adapter answers an event of another type with 400.

use std::future::Future;
use std::sync::Arc;

use stateless_ws::lambda::{self, Adapter, Context, LambdaError, RouteEvent};
use stateless_ws::{Result, RouteResponse};

use crate::Chat;

/// `handler` with its chat, as the `lambda_runtime` service the binaries run (and their tests
/// call with `Context::default()`).
pub fn adapter<E, F, Fut>(
    chat: Arc<Chat>,
    handler: F,
) -> Adapter<impl Fn(E, Context) -> Fut + Clone + Send + Sync + 'static, E>
where
    E: RouteEvent,
    F: Fn(Arc<Chat>, E, Context) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<RouteResponse>> + Send + 'static,
{
    lambda::service(move |event: E, context| handler(Arc::clone(&chat), event, context))
}

/// Reads the configuration from the environment once, then serves invocations with `handler`.
/// A missing or invalid variable stops the function at start-up with a message naming it.
///
/// # Errors
///
/// The configuration error, or what `lambda_runtime` returns.
pub async fn run<E, F, Fut>(handler: F) -> std::result::Result<(), LambdaError>
where
    E: RouteEvent,
    F: Fn(Arc<Chat>, E, Context) -> Fut + Clone + Send + Sync + 'static,
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
