//! A message's route: the task that runs it beside its connection's socket loop, and the call
//! of what serves a route as API Gateway calls an integration (at most the integration timeout,
//! never cancelled).

use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::context::{ConnectionInfo, new_request_id, select_route};
use super::invoke::{Answer, IntegrationFailure};
use super::{Shared, TaskGuard, call};
use stateless_ws::event::WebSocketEvent;

/// [`LocalGatewayConfig::max_routes_in_flight`](super::LocalGatewayConfig::max_routes_in_flight),
/// at least 1.
pub(super) fn max_routes_in_flight(config: &super::LocalGatewayConfig) -> usize {
    config.max_routes_in_flight.clamp(1, Semaphore::MAX_PERMITS)
}

/// Calls what serves `route_key` with `event` as API Gateway calls an integration: waiting at
/// most [`integration_timeout`](super::LocalGatewayConfig::integration_timeout) (29 s).
///
/// The call runs as a task of its own holding `guard` (so shutdown counts it), which is handed
/// back when the call answers in time. Past the timeout the answer is API Gateway's integration
/// timeout and the call goes on in the background with the guard: the caller is free (its
/// route slot too) while the handler is not cancelled, as Lambda does not stop a function whose
/// caller stopped waiting. A handler that panics is an integration failure, as a function
/// error is.
pub(super) async fn call_within(
    shared: &Arc<Shared>,
    route_key: &str,
    event: WebSocketEvent,
    guard: TaskGuard,
) -> (Option<Answer>, Option<TaskGuard>) {
    if !shared.routes.contains_key(route_key) {
        return (None, Some(guard));
    }
    let task_shared = Arc::clone(shared);
    let key = route_key.to_owned();
    let mut running = tokio::spawn(async move {
        let answer = call(&task_shared, &key, event).await;
        (answer, guard)
    });
    let timeout = shared.config.integration_timeout;
    match tokio::time::timeout(timeout, &mut running).await {
        Ok(Ok((answer, guard))) => (answer, Some(guard)),
        Ok(Err(e)) => {
            tracing::error!(route = route_key, error = %e, "route handler panicked");
            let detail = format!("{route_key}: the handler panicked: {e}");
            (
                Some(Answer::failed(IntegrationFailure::Error, detail)),
                None,
            )
        }
        Err(_) => {
            // Dropping the handle detaches the task: the handler runs on.
            drop(running);
            tracing::warn!(
                route = route_key,
                ?timeout,
                "no answer within the integration timeout; the handler goes on in the background"
            );
            let detail = format!("{route_key}: no answer within {timeout:?} (integration timeout)");
            (
                Some(Answer::failed(IntegrationFailure::Timeout, detail)),
                None,
            )
        }
    }
}

/// One message's route, running beside the socket loop: it calls what serves the route and
/// hands the answer to the loop.
pub(super) struct RouteTask {
    pub(super) shared: Arc<Shared>,
    pub(super) info: ConnectionInfo,
    pub(super) replies: mpsc::Sender<Message>,
    /// The connection's slot, freed when the route has answered.
    pub(super) slot: OwnedSemaphorePermit,
    /// Shutdown waits for running handlers, as for `$disconnect`; it goes to the handler's
    /// call (see [`call_within`]).
    pub(super) task: TaskGuard,
}

impl RouteTask {
    pub(super) async fn run(self, text: Utf8Bytes) {
        let RouteTask {
            shared,
            info,
            replies,
            slot: _slot,
            task,
        } = self;
        let shared = &shared;
        let info = &info;
        let route_key = select_route(shared, text.as_str());
        let event = info.message_event(&shared.config, &route_key, text.as_str());
        let request_id = event.context.request_id.clone();
        let (answer, _) =
            call_within(shared, &route_key, WebSocketEvent::Message(event), task).await;
        let reply = match answer {
            Some(Answer::Response(response)) => response.body.filter(|b| !b.is_empty()),
            Some(Answer::Failed(failure, detail)) => {
                // What API Gateway sends the caller when the integration fails, two-way route
                // or not; what failed is logged where the call failed, and told the client
                // only when the developer asked for it.
                let detail = shared.config.expose_errors.then_some(detail.as_str());
                Some(failure.body(&info.connection_id, request_id.as_deref(), detail))
            }
            None => {
                // What API Gateway answers when no route matches and there is no $default.
                let body = serde_json::json!({
                    "message": "Forbidden",
                    "connectionId": info.connection_id,
                    "requestId": new_request_id(),
                });
                Some(body.to_string())
            }
        };
        let Some(body) = reply else {
            return;
        };
        let limit = shared.config.max_message_size;
        if body.len() > limit {
            // API Gateway's message quota applies to what it sends too (128 KB, as for
            // `PostToConnection`); AWS does not document what becomes of a larger route
            // response, so it is dropped — the connection stays open — and the developer told.
            tracing::warn!(
                connection = %info.connection_id,
                route = %route_key,
                request_id = request_id.as_deref().unwrap_or(""),
                size = body.len(),
                limit,
                "route response dropped: larger than the message limit"
            );
            return;
        }
        // Fails only when the connection has ended: the answer has nowhere to go.
        let _ = replies.send(Message::text(body)).await;
    }
}
