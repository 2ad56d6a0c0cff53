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
use tokio::sync::{mpsc, watch};

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

/// `GET /{stage}`: runs `$connect`, then upgrades unless the handler refused.
pub(super) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let info = ConnectionInfo::from_upgrade(peer, &headers, &shared.domain_name);
    let connect = info.connect_event(&shared.config, &headers, query);
    if let Some(response) = call(&shared, "$connect", WebSocketEvent::Connect(connect)).await
        && !response.is_success()
    {
        tracing::info!(connection = %info.connection_id, status = response.status_code, "$connect refused");
        let body = response.body.unwrap_or_else(|| "Forbidden".to_owned());
        return (StatusCode::FORBIDDEN, body).into_response();
    }
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
        .on_upgrade(move |socket| serve_connection(shared, info, socket))
}

/// Why a connection ended: the `$disconnect` status code and reason.
struct Ending(u16, String);

async fn serve_connection(shared: Arc<Shared>, info: ConnectionInfo, mut socket: WebSocket) {
    let _task = TaskGuard::new(&shared);
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
    let disconnect = info.disconnect_event(config, code, reason);
    call(
        &shared,
        "$disconnect",
        WebSocketEvent::Disconnect(disconnect),
    )
    .await;
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
