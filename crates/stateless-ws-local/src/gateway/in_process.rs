//! Routes served by a handler in this process, called as Lambda calls a function: the event as
//! JSON and a [`Context`] like the one Lambda would hand that invocation.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use stateless_ws::event::WebSocketEvent;
use stateless_ws::lambda::{Context, RouteHandler};

use super::invoke::{Answer, IntegrationFailure};
use super::time;

/// The region and account of the functions' ARNs (those of the authorizer's `methodArn` too).
const REGION: &str = "us-east-1";
const ACCOUNT_ID: &str = "123456789012";

/// A route's in-process handler with the function identity its invocations carry.
#[derive(Clone)]
pub(super) struct InProcess {
    handler: Arc<dyn RouteHandler>,
    /// `arn:aws:lambda:{region}:{account}:function:{name}`.
    arn: String,
    env_config: Arc<lambda_runtime::Config>,
    /// How long API Gateway waits for the answer: the `Context` deadline.
    timeout: Duration,
}

impl InProcess {
    /// `handler` serving `route_key` of API `api_id`, as function `{api_id}-{route}` (the route
    /// key without its `$`, other characters a function name cannot hold as `-`), whose
    /// invocations have `timeout` (the integration timeout) to answer.
    pub(super) fn new(
        handler: Arc<dyn RouteHandler>,
        api_id: &str,
        route_key: &str,
        timeout: Duration,
    ) -> Self {
        let name: String = format!("{api_id}-{}", route_key.trim_start_matches('$'))
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        let env_config = lambda_runtime::Config {
            log_group: format!("/aws/lambda/{name}"),
            log_stream: "local".to_owned(),
            function_name: name.clone(),
            memory: 128,
            version: "$LATEST".to_owned(),
        };
        Self {
            handler,
            arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"),
            env_config: Arc::new(env_config),
            timeout,
        }
    }

    /// The context of one invocation: a fresh request id, and the integration timeout from now
    /// as its deadline (epoch milliseconds), the time API Gateway waits for the answer.
    fn context(&self) -> Context {
        let mut context = Context::default();
        context.request_id = new_invocation_id();
        let deadline = SystemTime::now() + self.timeout;
        context.deadline = u64::try_from(time::epoch_millis(deadline)).unwrap_or(0);
        context.invoked_function_arn.clone_from(&self.arn);
        context.env_config = Arc::clone(&self.env_config);
        context
    }

    /// Calls the handler with `event` as API Gateway sends it.
    pub(super) async fn call(&self, event: &WebSocketEvent) -> Answer {
        match serde_json::to_value(event) {
            Ok(payload) => Answer::Response(self.handler.call(payload, self.context()).await),
            Err(e) => {
                tracing::error!(function = %self.arn, error = %e, "cannot serialize the event");
                Answer::failed(
                    IntegrationFailure::Error,
                    format!("cannot serialize the event: {e}"),
                )
            }
        }
    }
}

/// A Lambda request id: a random UUID (version 4), as Lambda's are.
fn new_invocation_id() -> String {
    let mut bytes: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::invoke::INTEGRATION_TIMEOUT;
    use std::time::UNIX_EPOCH;

    #[test]
    fn the_context_is_lambdas() {
        struct Nothing;
        impl RouteHandler for Nothing {
            fn call(
                &self,
                _: serde_json::Value,
                _: Context,
            ) -> std::pin::Pin<Box<dyn Future<Output = stateless_ws::RouteResponse> + Send + 'static>>
            {
                Box::pin(async { stateless_ws::RouteResponse::ok() })
            }
        }
        let function = InProcess::new(Arc::new(Nothing), "local", "$connect", INTEGRATION_TIMEOUT);
        let context = function.context();
        assert_eq!(
            context.invoked_function_arn,
            "arn:aws:lambda:us-east-1:123456789012:function:local-connect"
        );
        assert_eq!(context.env_config.function_name, "local-connect");
        assert_eq!(context.request_id.len(), 36);
        assert_eq!(&context.request_id[14..15], "4");
        assert_ne!(context.request_id, function.context().request_id);
        let deadline = UNIX_EPOCH + Duration::from_millis(context.deadline);
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        assert!(
            left > Duration::from_secs(28) && left <= INTEGRATION_TIMEOUT,
            "{left:?}"
        );
        let odd = InProcess::new(Arc::new(Nothing), "api", "a.b/c", INTEGRATION_TIMEOUT);
        assert_eq!(odd.env_config.function_name, "api-a-b-c");
    }
}
