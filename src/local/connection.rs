//! One client connection: the HTTP upgrade (and its `$connect`), the socket loop, and how a
//! connection ends (close codes, `$disconnect`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::{HeaderMap, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, oneshot, watch};

use super::context::{ConnectionInfo, new_request_id, select_route};
use super::{Shared, TaskGuard, call, time};
use crate::event::WebSocketEvent;

/// What the gateway tells a connection's task.
pub(super) enum Command {
    Send(Message),
    Close(u16, &'static str),
}

/// An open connection as the gateway (and its management API) sees it.
pub(super) struct Live {
    pub(super) tx: mpsc::UnboundedSender<Command>,
    pub(super) connected_at: SystemTime,
    pub(super) last_active_ms: Arc<AtomicU64>,
    pub(super) source_ip: String,
    pub(super) user_agent: Option<String>,
}

/// The WebSocket client's peer address (loopback when the server runs without connect info).
pub(super) struct Peer(SocketAddr);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        let info = ConnectInfo::<SocketAddr>::from_request_parts(parts, state).await;
        Ok(Peer(info.map_or_else(
            |_| SocketAddr::from(([127, 0, 0, 1], 0)),
            |c| c.0,
        )))
    }
}

/// A connection whose `$connect` accepted it. Until the socket loop takes it over, dropping it
/// (the client went away before the upgrade completed, or the upgrade failed) runs its
/// `$disconnect`: the handler may already have recorded the connection.
pub(super) struct Accepted {
    shared: Arc<Shared>,
    parts: Option<(ConnectionInfo, TaskGuard)>,
}

impl Accepted {
    fn into_parts(mut self) -> Option<(ConnectionInfo, TaskGuard)> {
        self.parts.take()
    }
}

impl Drop for Accepted {
    fn drop(&mut self) {
        let Some((info, guard)) = self.parts.take() else {
            return;
        };
        let shared = Arc::clone(&self.shared);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _guard = guard;
                tracing::info!(connection = %info.connection_id, "upgrade abandoned after $connect accepted it");
                disconnect(&shared, &info, 1006, "Connection lost".to_owned()).await;
            });
        }
    }
}

/// What `$connect` decided.
enum Decision {
    Accept(Accepted),
    Refuse(Option<String>),
}

/// `GET /{stage}`: runs `$connect`, then upgrades unless the handler refused.
///
/// `$connect` runs in its own task, to completion even when the client goes away mid-handshake
/// (hyper then drops this future): Lambda does not cancel an invocation whose caller left, and a
/// handler that already wrote its record must get its `$disconnect`.
pub(super) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let guard = TaskGuard::new(&shared);
    let info = ConnectionInfo::from_upgrade(peer, &headers, &shared.domain_name);
    let connect = info.connect_event(&shared.config, &headers, query);
    let (decided, decision) = oneshot::channel();
    let task_shared = Arc::clone(&shared);
    tokio::spawn(async move {
        let response = call(&task_shared, "$connect", WebSocketEvent::Connect(connect)).await;
        let outcome = match response {
            Some(response) if !response.is_success() => {
                tracing::info!(connection = %info.connection_id, status = response.status_code, "$connect refused");
                Decision::Refuse(response.body)
            }
            _ => Decision::Accept(Accepted {
                shared: task_shared,
                parts: Some((info, guard)),
            }),
        };
        // When the upgrade request is gone, the decision is dropped here: an accepted
        // connection then gets its $disconnect (see `Accepted`).
        let _ = decided.send(outcome);
    });
    let accepted = match decision.await {
        Ok(Decision::Accept(accepted)) => accepted,
        Ok(Decision::Refuse(body)) => {
            let body = body.unwrap_or_else(|| "Forbidden".to_owned());
            return (StatusCode::FORBIDDEN, body).into_response();
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    // Buffers sized for many idle connections; the limit itself is checked per message below so
    // that an oversize message closes with 1009 the way API Gateway does.
    ws.read_buffer_size(1024)
        .write_buffer_size(0)
        .max_message_size(
            shared
                .config
                .max_message_size
                .saturating_mul(8)
                .max(1 << 20),
        )
        // A failed upgrade drops the callback, and with it `accepted`: $disconnect runs.
        .on_upgrade(move |socket| serve_connection(accepted, socket))
}

/// Why a connection ended: the `$disconnect` status code and reason.
struct Ending(u16, String);

async fn serve_connection(accepted: Accepted, mut socket: WebSocket) {
    let shared = Arc::clone(&accepted.shared);
    let Some((info, _task)) = accepted.into_parts() else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let last_active_ms = Arc::new(AtomicU64::new(now_ms()));
    shared.live().insert(
        info.connection_id.clone(),
        Live {
            tx,
            connected_at: info.connected_at,
            last_active_ms: Arc::clone(&last_active_ms),
            source_ip: info.source_ip.clone(),
            user_agent: info.user_agent.clone(),
        },
    );
    let config = &shared.config;
    let hard_deadline = tokio::time::Instant::now() + config.max_connection_duration;
    let mut shutdown = shared.shutdown.clone();
    let ending = loop {
        let idle_deadline = tokio::time::Instant::now() + config.idle_timeout;
        let ended = tokio::select! {
            incoming = socket.recv() => match incoming {
                None => Some(Ending(1006, "Connection lost".to_owned())),
                Some(Err(e)) => {
                    let text = e.to_string();
                    if text.contains("too long") || text.contains("Space limit") || text.contains("capacity") {
                        let _ = close(&mut socket, 1009, "Message too big").await;
                        Some(Ending(1009, "Message too big".to_owned()))
                    } else {
                        Some(Ending(1006, "Connection lost".to_owned()))
                    }
                }
                Some(Ok(message)) => {
                    last_active_ms.store(now_ms(), Ordering::Relaxed);
                    on_client_message(&shared, &info, &mut socket, message).await
                }
            },
            command = rx.recv() => match command {
                Some(Command::Send(message)) => {
                    last_active_ms.store(now_ms(), Ordering::Relaxed);
                    match socket.send(message).await {
                        Ok(()) => None,
                        Err(_) => Some(Ending(1006, "Connection lost".to_owned())),
                    }
                }
                Some(Command::Close(code, reason)) => {
                    let _ = close(&mut socket, code, reason).await;
                    Some(Ending(code, reason.to_owned()))
                }
                None => Some(Ending(1011, "Internal error".to_owned())),
            },
            () = tokio::time::sleep_until(idle_deadline) => {
                let _ = close(&mut socket, 1001, "Going away").await;
                Some(Ending(1001, "Going away".to_owned()))
            }
            () = tokio::time::sleep_until(hard_deadline) => {
                let _ = close(&mut socket, 1001, "Going away").await;
                Some(Ending(1001, "Going away".to_owned()))
            }
            () = stopped(&mut shutdown) => {
                let _ = close(&mut socket, 1001, "Going away").await;
                Some(Ending(1001, "Going away".to_owned()))
            }
        };
        if let Some(ending) = ended {
            break ending;
        }
    };
    shared.live().remove(&info.connection_id);
    let Ending(code, reason) = ending;
    disconnect(&shared, &info, code, reason).await;
}

/// Runs the `$disconnect` of a connection that ended with close `code` and `reason`.
async fn disconnect(shared: &Shared, info: &ConnectionInfo, code: u16, reason: String) {
    let event = info.disconnect_event(&shared.config, code, reason);
    call(shared, "$disconnect", WebSocketEvent::Disconnect(event)).await;
}

async fn close(
    socket: &mut WebSocket,
    code: u16,
    reason: &'static str,
) -> std::result::Result<(), axum::Error> {
    socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await
}

/// Resolves once shutdown is requested (without holding the watch guard across an await).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn now_ms() -> u64 {
    u64::try_from(time::epoch_millis(SystemTime::now())).unwrap_or(0)
}

async fn on_client_message(
    shared: &Shared,
    info: &ConnectionInfo,
    socket: &mut WebSocket,
    message: Message,
) -> Option<Ending> {
    let text = match message {
        Message::Text(text) => text,
        Message::Binary(_) => {
            let _ = close(socket, 1003, "Binary frames are not supported").await;
            return Some(Ending(1003, "Binary frames are not supported".to_owned()));
        }
        Message::Close(frame) => {
            return Some(match frame {
                Some(f) => Ending(f.code, f.reason.as_str().to_owned()),
                None => Ending(1005, "Client-side close frame status not set".to_owned()),
            });
        }
        Message::Ping(_) | Message::Pong(_) => return None,
    };
    if text.len() > shared.config.max_message_size {
        let _ = close(socket, 1009, "Message too big").await;
        return Some(Ending(1009, "Message too big".to_owned()));
    }
    let route_key = select_route(shared, text.as_str());
    let event = info.message_event(&shared.config, &route_key, text.as_str());
    match call(shared, &route_key, WebSocketEvent::Message(event)).await {
        Some(response) => {
            if let Some(body) = response.body.filter(|b| !b.is_empty())
                && socket.send(Message::text(body)).await.is_err()
            {
                return Some(Ending(1006, "Connection lost".to_owned()));
            }
        }
        None => {
            // What API Gateway answers when no route matches and there is no $default.
            let body = serde_json::json!({
                "message": "Forbidden",
                "connectionId": info.connection_id,
                "requestId": new_request_id(),
            });
            if socket.send(Message::text(body.to_string())).await.is_err() {
                return Some(Ending(1006, "Connection lost".to_owned()));
            }
        }
    }
    None
}
