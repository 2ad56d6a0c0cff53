//! What the Lambda examples share: start-up (configuration read once, a clear error instead of a
//! panic at the first request) and the invocation deadline.
//!
//! Used by each `src/bin/lambda_*.rs`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{Chat, DEADLINE_MARGIN};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use stateless_ws::RouteResponse;

/// The instant by which a fan-out must stop starting posts: the invocation's deadline minus a
/// margin for the cleanup. `None` when the context carries no deadline (tests).
pub fn fan_out_deadline(context: &lambda_runtime::Context) -> Option<Instant> {
    if context.deadline == 0 {
        return None;
    }
    let deadline = UNIX_EPOCH + Duration::from_millis(context.deadline);
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Some(Instant::now() + left.saturating_sub(DEADLINE_MARGIN))
}

/// Reads the configuration from the environment once, then serves invocations with `handler`.
/// A missing or invalid variable stops the function at start-up with a message naming it.
pub async fn run<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(Arc<Chat>, LambdaEvent<Value>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<RouteResponse, Error>> + Send,
{
    lambda_runtime::tracing::init_default_subscriber();
    let chat = match Chat::from_env().await {
        Ok(chat) => Arc::new(chat),
        Err(e) => {
            tracing::error!(error = %e, "start-up configuration is invalid");
            return Err(e.into());
        }
    };
    lambda_runtime::run(service_fn(|event| handler(Arc::clone(&chat), event))).await
}
