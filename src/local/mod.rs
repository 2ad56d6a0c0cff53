//! A local API Gateway WebSocket endpoint: the whole stateless architecture on one machine.
//!
//! AWS's own tools cannot run WebSocket APIs locally. [`LocalGateway`] can: it accepts WebSocket
//! clients on loopback, builds for each connect, message and close the event API Gateway would
//! send (this crate's [`WebSocketEvent`] — the same JSON a Lambda receives, which
//! `aws_lambda_events` parses too), calls your in-process handlers by route key, and serves the
//! Management API (`POST|GET|DELETE /{stage}/@connections/{id}`) on the same port, so
//! [`ApiGatewaySender`](crate::broadcast::ApiGatewaySender) — the AWS SDK's own client — works
//! against it unchanged.
//!
//! ```no_run
//! use std::sync::Arc;
//! use stateless_ws::chat::{Chat, ChatConfig};
//! use stateless_ws::local::{LocalGateway, LocalGatewayConfig, handler};
//! # async fn run(chat: Chat) -> stateless_ws::Result<()> {
//! let chat = Arc::new(chat);
//! let gateway = LocalGateway::new(LocalGatewayConfig::default())
//!     .default_handler(handler(move |event| {
//!         let chat = Arc::clone(&chat);
//!         async move { chat.handle(&event, None).await }
//!     }))
//!     .bind("127.0.0.1:0".parse().unwrap())
//!     .await?;
//! println!("clients: {}  management API: {}", gateway.ws_url(), gateway.management_endpoint());
//! gateway.shutdown().await; // every open connection gets its $disconnect
//! # Ok(()) }
//! ```
//!
//! # Faithfulness
//!
//! | API Gateway | here |
//! |---|---|
//! | `wss://{api}.execute-api.{region}.amazonaws.com/{stage}` | `ws://127.0.0.1:{port}/{stage}` |
//! | connection ids like `L0SM9cOFvHc=` | 12 base64 characters ending in `=` |
//! | `$connect` answering non-2xx refuses the upgrade | HTTP 403, no upgrade |
//! | route selection `$request.body.action`, `$default` fallback, non-JSON to `$default` | same (the path is configurable) |
//! | a message route's response body is sent to the caller | same |
//! | Management API `POST`/`GET`/`DELETE @connections/{id}`; 410 `GoneException`, 413 `PayloadTooLargeException` | same, with `x-amzn-ErrorType` |
//! | idle timeout 10 min, maximum duration 2 h, messages ≤ 128 KB (1009), no binary frames (1003) | same, configurable |
//! | `DELETE @connections` closes the socket and runs `$disconnect` | same |
//!
//! Not emulated: authorizers (set the identity on the events yourself with a `$connect`
//! wrapper, or use the chat's insecure demo mode), IAM signature checks (requests must be
//! signed, but any key is accepted), frame-level 32 KB limits, and the account throttle.

mod time;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine as _;
use tokio::sync::{mpsc, watch};

use crate::error::{Error, Result};
use crate::event::RouteResponse;
use crate::event::{
    ConnectEvent, DisconnectEvent, EventType, Headers, MessageEvent, RequestContext, WebSocketEvent,
};
use crate::ids::ConnectionId;

/// The largest message API Gateway accepts: 128 KB.
pub const MAX_MESSAGE_SIZE: usize = 131_072;

/// A boxed route handler: an event in, the integration's response out.
pub type Handler = Arc<
    dyn Fn(WebSocketEvent) -> Pin<Box<dyn Future<Output = RouteResponse> + Send>> + Send + Sync,
>;

/// Wraps an async closure as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(WebSocketEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = RouteResponse> + Send + 'static,
{
    Arc::new(move |event| Box::pin(f(event)))
}

/// Settings of a [`LocalGateway`]; defaults are API Gateway's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalGatewayConfig {
    /// The stage: clients connect to `/{stage}`, the management API is under it (default
    /// `local`).
    pub stage: String,
    /// The API id put in events (default `local`).
    pub api_id: String,
    /// The route selection path into the JSON body, as in `$request.body.action` (default
    /// `action`; dots select nested fields).
    pub route_selection: String,
    /// Close a connection after this long without messages in either direction (default
    /// 10 minutes).
    pub idle_timeout: Duration,
    /// Close a connection this long after it opened (default 2 hours).
    pub max_connection_duration: Duration,
    /// Largest message accepted from a client or posted to one (default 128 KB).
    pub max_message_size: usize,
}

impl Default for LocalGatewayConfig {
    fn default() -> Self {
        Self {
            stage: "local".to_owned(),
            api_id: "local".to_owned(),
            route_selection: "action".to_owned(),
            idle_timeout: Duration::from_secs(10 * 60),
            max_connection_duration: Duration::from_secs(2 * 60 * 60),
            max_message_size: MAX_MESSAGE_SIZE,
        }
    }
}

/// What the gateway tells a connection's task.
enum Command {
    Send(String),
    Close(u16, &'static str),
}

struct Live {
    tx: mpsc::UnboundedSender<Command>,
    connected_at: SystemTime,
    last_active_ms: Arc<AtomicU64>,
    source_ip: String,
    user_agent: Option<String>,
}

struct Shared {
    config: LocalGatewayConfig,
    routes: HashMap<String, Handler>,
    connections: Mutex<HashMap<ConnectionId, Live>>,
    shutdown: watch::Receiver<bool>,
    /// Fires when a connection task ends (shutdown waits for all of them).
    closed: tokio::sync::Notify,
}

impl Shared {
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Live>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Builds and starts a local gateway; see the [module docs](self).
#[must_use]
pub struct LocalGateway {
    config: LocalGatewayConfig,
    routes: HashMap<String, Handler>,
    extra: Router,
}

impl fmt::Debug for LocalGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalGateway")
            .field("config", &self.config)
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LocalGateway {
    /// A gateway with `config` and no handlers yet.
    pub fn new(config: LocalGatewayConfig) -> Self {
        Self {
            config,
            routes: HashMap::new(),
            extra: Router::new(),
        }
    }

    /// Registers `handler` for `route_key` (`$connect`, `$disconnect`, `$default`, or a value of
    /// the route selection field such as `join`).
    pub fn route(mut self, route_key: impl Into<String>, handler: Handler) -> Self {
        self.routes.insert(route_key.into(), handler);
        self
    }

    /// Registers `handler` for `$connect`, `$disconnect` and `$default` — with the route
    /// selection falling back to `$default`, every event reaches it (what a single Lambda
    /// serving all routes sees).
    pub fn default_handler(self, handler: Handler) -> Self {
        self.route("$connect", Arc::clone(&handler))
            .route("$disconnect", Arc::clone(&handler))
            .route("$default", handler)
    }

    /// Serves `router`'s routes on the same port (e.g. a demo page at `/`). Paths under
    /// `/{stage}` are the gateway's.
    pub fn merge(mut self, router: Router) -> Self {
        self.extra = self.extra.merge(router);
        self
    }

    /// Binds `addr` (port 0 picks a free port) and starts serving.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the address cannot be bound or the stage is not a single path
    /// segment.
    pub async fn bind(self, addr: SocketAddr) -> Result<RunningGateway> {
        let stage = self.config.stage.clone();
        if stage.is_empty() || stage.contains('/') || stage.starts_with('@') {
            return Err(Error::config(format!(
                "local gateway stage {stage:?} must be one path segment"
            )));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::config(format!("cannot bind the local gateway to {addr}: {e}")))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::config(format!("local gateway address: {e}")))?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            config: self.config,
            routes: self.routes,
            connections: Mutex::new(HashMap::new()),
            shutdown: stop_rx.clone(),
            closed: tokio::sync::Notify::new(),
        });
        let gateway = Router::new()
            .route(&format!("/{stage}"), get(upgrade))
            .route(&format!("/{stage}/"), get(upgrade))
            .route(&format!("/{stage}/@connections/{{id}}"), any(management))
            .with_state(Arc::clone(&shared));
        let app = gateway.merge(self.extra);
        let mut server_stop = stop_rx;
        let server = tokio::spawn(async move {
            let serve = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "local gateway server failed");
            }
        });
        tracing::info!(%local_addr, %stage, "local gateway listening");
        Ok(RunningGateway {
            addr: local_addr,
            stage,
            shared,
            stop: stop_tx,
            server,
        })
    }
}

/// A running [`LocalGateway`]. Dropping it leaves the server running until the runtime ends;
/// call [`shutdown`](Self::shutdown) to stop it cleanly.
pub struct RunningGateway {
    addr: SocketAddr,
    stage: String,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for RunningGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningGateway")
            .field("addr", &self.addr)
            .field("stage", &self.stage)
            .field("connections", &self.connection_count())
            .finish()
    }
}

impl RunningGateway {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where WebSocket clients connect: `ws://{addr}/{stage}`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/{}", self.addr, self.stage)
    }

    /// The management API endpoint for [`ApiGatewaySender`](crate::broadcast::ApiGatewaySender):
    /// `http://{addr}/{stage}`.
    pub fn management_endpoint(&self) -> String {
        format!("http://{}/{}", self.addr, self.stage)
    }

    /// Open connections.
    pub fn connection_count(&self) -> usize {
        self.shared.live().len()
    }

    /// Closes every open connection (close code 1001, each with its `$disconnect`), then stops
    /// the server.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        loop {
            let closed = self.shared.closed.notified();
            if self.shared.live().is_empty() {
                break;
            }
            closed.await;
        }
        let _ = self.server.await;
    }
}

/// A fresh connection id in API Gateway's style: 11 base64 characters and `=`.
fn new_connection_id() -> ConnectionId {
    let bytes: [u8; 8] = fastrand::u64(..).to_le_bytes();
    let mut id = base64::engine::general_purpose::STANDARD.encode(&bytes[..8]);
    id.truncate(11);
    id = id.replace('/', "_");
    id.push('=');
    ConnectionId::new(id).unwrap_or_else(|_| unreachable!("11 base64 characters and '=' are valid"))
}

fn new_request_id() -> String {
    let bytes: [u8; 12] = std::array::from_fn(|_| fastrand::u8(..));
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn headers_of(map: &HeaderMap) -> (Headers, Headers<Vec<String>>) {
    let mut single = Headers::new();
    let mut multi: Headers<Vec<String>> = Headers::new();
    for (name, value) in map {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let name = name.as_str();
        single.insert(name, value.clone());
        let mut values = multi.get(name).cloned().unwrap_or_default();
        values.push(value);
        multi.insert(name, values);
    }
    (single, multi)
}

/// The parts of a request context every event of a connection shares.
#[derive(Clone)]
struct ConnectionInfo {
    connection_id: ConnectionId,
    domain_name: String,
    connected_at: SystemTime,
    source_ip: String,
    user_agent: Option<String>,
}

impl ConnectionInfo {
    fn context(
        &self,
        config: &LocalGatewayConfig,
        event_type: EventType,
        route_key: &str,
    ) -> RequestContext {
        let now = SystemTime::now();
        let mut ctx = RequestContext::new(event_type, self.connection_id.clone());
        ctx.route_key = Some(route_key.to_owned());
        ctx.message_direction = Some("IN".to_owned());
        ctx.domain_name = Some(self.domain_name.clone());
        ctx.stage = Some(config.stage.clone());
        ctx.api_id = Some(config.api_id.clone());
        ctx.request_id = Some(new_request_id());
        ctx.extended_request_id = ctx.request_id.clone();
        ctx.connected_at = Some(time::epoch_millis(self.connected_at));
        ctx.request_time_epoch = Some(time::epoch_millis(now));
        ctx.request_time = Some(time::request_time(now));
        ctx.identity.source_ip = Some(self.source_ip.clone());
        ctx.identity.user_agent = self.user_agent.clone();
        ctx
    }
}

async fn call(shared: &Shared, route_key: &str, event: WebSocketEvent) -> Option<RouteResponse> {
    let handler = shared.routes.get(route_key)?;
    Some(handler(event).await)
}

/// The WebSocket client's peer address (loopback when the server runs without connect info).
struct Peer(SocketAddr);

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

async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let info = ConnectionInfo {
        connection_id: new_connection_id(),
        domain_name: headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
            .to_owned(),
        connected_at: SystemTime::now(),
        source_ip: peer.ip().to_string(),
        user_agent: headers
            .get("user-agent")
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned),
    };
    let mut connect = ConnectEvent::new(info.connection_id.clone());
    connect.context = info.context(&shared.config, EventType::Connect, "$connect");
    connect.context.message_direction = Some("IN".to_owned());
    let (single, multi) = headers_of(&headers);
    connect.headers = single;
    connect.multi_value_headers = multi;
    connect.multi_value_query_string_parameters = query
        .iter()
        .map(|(k, v)| (k.clone(), vec![v.clone()]))
        .collect();
    connect.query_string_parameters = query;
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
                Some(Command::Send(text)) => {
                    last_active_ms.store(now_ms(), Ordering::Relaxed);
                    match socket.send(Message::text(text)).await {
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
    let mut disconnect = DisconnectEvent::new(info.connection_id.clone());
    disconnect.context = info.context(config, EventType::Disconnect, "$disconnect");
    disconnect.context.disconnect_status_code = Some(i64::from(ending.0));
    disconnect.context.disconnect_reason = Some(ending.1);
    call(
        &shared,
        "$disconnect",
        WebSocketEvent::Disconnect(disconnect),
    )
    .await;
    shared.closed.notify_waiters();
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

/// The route key API Gateway would select: the body's selection field when the body is a JSON
/// object holding a string there and a handler exists for it; `$default` otherwise.
fn select_route(shared: &Shared, body: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return "$default".to_owned();
    };
    let mut cursor = &value;
    for key in shared.config.route_selection.split('.') {
        match cursor.get(key) {
            Some(next) => cursor = next,
            None => return "$default".to_owned(),
        }
    }
    match cursor.as_str() {
        Some(route) if shared.routes.contains_key(route) && !route.starts_with('$') => {
            route.to_owned()
        }
        _ => "$default".to_owned(),
    }
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
    let mut event = MessageEvent::new(info.connection_id.clone(), text.as_str());
    event.context = info.context(&shared.config, EventType::Message, &route_key);
    event.context.message_id = Some(new_request_id());
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

fn aws_error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-ErrorType", kind),
            ("content-type", "application/json"),
        ],
        serde_json::json!({ "message": message }).to_string(),
    )
        .into_response()
}

/// `POST|GET|DELETE /{stage}/@connections/{id}`.
async fn management(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: axum::http::Method,
    body: Bytes,
) -> Response {
    let gone = || aws_error(StatusCode::GONE, "GoneException", "");
    let Ok(id) = ConnectionId::new(id) else {
        return gone();
    };
    match method.as_str() {
        "POST" => {
            if body.len() > shared.config.max_message_size {
                return aws_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PayloadTooLargeException",
                    &format!(
                        "Message too long; the limit is {} bytes",
                        shared.config.max_message_size
                    ),
                );
            }
            let text = String::from_utf8_lossy(&body).into_owned();
            match shared.live().get(&id) {
                Some(live) if live.tx.send(Command::Send(text)).is_ok() => {
                    StatusCode::OK.into_response()
                }
                _ => gone(),
            }
        }
        "GET" => {
            let live = shared.live();
            let Some(live) = live.get(&id) else {
                return gone();
            };
            let last = std::time::UNIX_EPOCH
                + Duration::from_millis(live.last_active_ms.load(Ordering::Relaxed));
            // Wire names as in the management API's model: camelCase.
            let body = serde_json::json!({
                "connectedAt": time::iso8601(live.connected_at),
                "identity": {"sourceIp": live.source_ip, "userAgent": live.user_agent},
                "lastActiveAt": time::iso8601(last),
            });
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                body.to_string(),
            )
                .into_response()
        }
        "DELETE" => match shared.live().get(&id) {
            Some(live)
                if live
                    .tx
                    .send(Command::Close(
                        1000,
                        "Connection closed by the management API",
                    ))
                    .is_ok() =>
            {
                StatusCode::NO_CONTENT.into_response()
            }
            _ => gone(),
        },
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_look_like_api_gateways() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1_000 {
            let id = new_connection_id();
            assert_eq!(id.as_str().len(), 12);
            assert!(id.as_str().ends_with('='));
            assert!(!id.as_str().contains('/'));
            seen.insert(id);
        }
        assert_eq!(seen.len(), 1_000);
    }
}
