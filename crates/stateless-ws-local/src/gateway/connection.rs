//! One client connection: the HTTP upgrade (and its `$connect`), the socket loop, and how a
//! connection ends (close codes, `$disconnect`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::{HeaderMap, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::authorizer::Verdict;
use super::context::ConnectionInfo;
use super::invoke::{Answer, IntegrationFailure};
use super::route::{RouteTask, call_within, max_routes_in_flight};
use super::{Shared, TaskGuard, call, time};
use stateless_ws::event::WebSocketEvent;

/// How long a close frame may take to write before the TCP connection is dropped instead: a
/// client that does not read cannot hold a closing connection open.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// An open connection as the gateway (and its management API) sees it.
pub(super) struct Live {
    /// Messages posted to the client, bounded in number by the channel and in bytes by
    /// `queued_bytes`.
    outbound: mpsc::Sender<Message>,
    queued_bytes: Arc<AtomicUsize>,
    /// A close requested by `DELETE @connections`; read by the socket loop even while a send
    /// is stuck.
    close: watch::Sender<Option<(u16, &'static str)>>,
    pub(super) connected_at: SystemTime,
    pub(super) last_active_ms: Arc<AtomicU64>,
    pub(super) source_ip: String,
    pub(super) user_agent: Option<String>,
}

/// What a `POST @connections` did with a message.
pub(super) enum Posted {
    Queued,
    /// The connection's outbound buffer is full (the client is not reading fast enough).
    Full,
    Gone,
}

impl Live {
    /// Queues `message` unless that would exceed the connection's outbound limits; never
    /// waits.
    pub(super) fn post(&self, message: Message, max_bytes: usize) -> Posted {
        let len = frame_len(&message);
        // One message always fits in an empty buffer, so a limit below the message size
        // cannot make every post fail.
        let reserved =
            self.queued_bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                    (queued == 0 || queued.saturating_add(len) <= max_bytes)
                        .then(|| queued.saturating_add(len))
                });
        if reserved.is_err() {
            return Posted::Full;
        }
        match self.outbound.try_send(message) {
            Ok(()) => Posted::Queued,
            Err(e) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                match e {
                    mpsc::error::TrySendError::Full(_) => Posted::Full,
                    mpsc::error::TrySendError::Closed(_) => Posted::Gone,
                }
            }
        }
    }

    /// Asks the socket loop to close with `code` and `reason`; false when it has ended.
    pub(super) fn close(&self, code: u16, reason: &'static str) -> bool {
        self.close.send(Some((code, reason))).is_ok()
    }
}

fn frame_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) => bytes.len(),
        _ => 0,
    }
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

/// What `$connect` (and the authorizer before it) decided.
enum Decision {
    Accept(Accepted),
    /// The HTTP status of the refused upgrade and its body (none: an empty body).
    Refuse(u16, Option<String>),
}

/// The refusal of a `$connect` whose integration answered `status` (not 2xx).
///
/// As on API Gateway, the client's upgrade request gets that status — 400 stays 400, 500 stays
/// 500 (the AWS guide's subprotocol example: the function returns `{statusCode: 400}` and wscat
/// reports "Unexpected server response: 400") — and only the status: a Lambda proxy
/// integration's `body` reaches a client only through a route response, which `$connect` does
/// not send, so whatever the function put there (often what went wrong) stays in the log. A
/// status no HTTP response can carry as a refusal (below 200 — a 101 would claim the upgrade —
/// or above 599) is an unusable answer: an integration failure, 500.
fn refusal(shared: &Shared, info: &ConnectionInfo, status: u16) -> Decision {
    if (300..600).contains(&status) {
        tracing::info!(connection = %info.connection_id, status, "$connect refused by its integration");
        return Decision::Refuse(status, None);
    }
    let failure = IntegrationFailure::Error;
    let detail = format!(
        "$connect answered statusCode {status}, which is not an HTTP status a refusal can carry"
    );
    tracing::warn!(connection = %info.connection_id, "{detail}: refused with 500");
    let mut body = serde_json::json!({ "message": failure.message() });
    if shared.config.expose_errors {
        body["detail"] = serde_json::Value::String(detail);
    }
    Decision::Refuse(500, Some(body.to_string()))
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
    Query(query): Query<Vec<(String, String)>>,
    ws: WebSocketUpgrade,
) -> Response {
    let guard = TaskGuard::new(&shared);
    let mut info = ConnectionInfo::from_upgrade(peer, &headers, &shared.domain_name);
    let mut connect = info.connect_event(&shared.config, &headers, &query);
    let (decided, decision) = oneshot::channel();
    let task_shared = Arc::clone(&shared);
    tokio::spawn(async move {
        if let Some(authorizer) = &task_shared.authorizer {
            match authorizer.authorize(&connect).await {
                Verdict::Allow(result) => {
                    connect.context.authorizer = Some(result.clone());
                    info.authorizer = Some(result);
                }
                Verdict::Refuse(status, message) => {
                    let body = serde_json::json!({ "message": message }).to_string();
                    let _ = decided.send(Decision::Refuse(status, Some(body)));
                    return;
                }
            }
        }
        let (answer, guard) = call_within(
            &task_shared,
            "$connect",
            WebSocketEvent::Connect(connect),
            guard,
        )
        .await;
        let outcome = match answer {
            Some(Answer::Response(response)) if !response.is_success() => {
                refusal(&task_shared, &info, response.status_code)
            }
            Some(Answer::Failed(failure, detail)) => {
                tracing::info!(connection = %info.connection_id, %detail, "$connect refused: integration failure");
                let mut body = serde_json::json!({ "message": failure.message() });
                if task_shared.config.expose_errors {
                    body["detail"] = serde_json::Value::String(detail);
                }
                Decision::Refuse(500, Some(body.to_string()))
            }
            _ => match guard {
                Some(guard) => Decision::Accept(Accepted {
                    shared: task_shared,
                    parts: Some((info, guard)),
                }),
                // Never: only a call that timed out or panicked keeps the guard, and both are
                // failures.
                None => Decision::Refuse(500, None),
            },
        };
        // When the upgrade request is gone, the decision is dropped here: an accepted
        // connection then gets its $disconnect (see `Accepted`).
        let _ = decided.send(outcome);
    });
    let accepted = match decision.await {
        Ok(Decision::Accept(accepted)) => accepted,
        Ok(Decision::Refuse(status, body)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, body.unwrap_or_default()).into_response();
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
    let config = &shared.config;
    let (outbound, mut outbound_rx) = mpsc::channel(config.max_queued_messages.max(1));
    let (close, close_rx) = watch::channel(None);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let last_active_ms = Arc::new(AtomicU64::new(now_ms()));
    shared.live().insert(
        info.connection_id.clone(),
        Live {
            outbound,
            queued_bytes: Arc::clone(&queued_bytes),
            close,
            connected_at: info.connected_at,
            last_active_ms: Arc::clone(&last_active_ms),
            source_ip: info.source_ip.clone(),
            user_agent: info.user_agent.clone(),
        },
    );
    let mut limits = Limits {
        close: close_rx,
        shutdown: shared.shutdown.clone(),
        hard_deadline: Instant::now() + config.max_connection_duration,
        idle_timeout: config.idle_timeout,
        last_activity: Instant::now(),
        send_timeout: config.send_timeout,
    };
    // Routes run as tasks of their own, so that nothing a handler does — or takes long to do —
    // holds up the connection's control: posts, DELETE, the limits and shutdown act at once.
    // At most `max_routes_in_flight` run at a time; a message beyond that waits, unread, for a
    // slot (the client's further frames wait in TCP), while everything else goes on.
    let in_flight = max_routes_in_flight(config);
    let slots = Arc::new(Semaphore::new(in_flight));
    let (replies, mut replies_rx) = mpsc::channel::<Message>(in_flight);
    let mut waiting: Option<Utf8Bytes> = None;
    let ending = loop {
        let ended = tokio::select! {
            incoming = socket.recv(), if waiting.is_none() => match incoming {
                None => Some(Ending(1006, "Connection lost".to_owned())),
                Some(Err(e)) => {
                    let text = e.to_string();
                    if text.contains("too long") || text.contains("Space limit") || text.contains("capacity") {
                        close_within(&mut socket, 1009, "Message too big").await;
                        Some(Ending(1009, "Message too big".to_owned()))
                    } else {
                        Some(Ending(1006, "Connection lost".to_owned()))
                    }
                }
                Some(Ok(message)) => {
                    limits.last_activity = Instant::now();
                    last_active_ms.store(now_ms(), Ordering::Relaxed);
                    match on_client_message(&shared, &mut socket, message).await {
                        Ok(text) => {
                            waiting = text;
                            None
                        }
                        Err(ending) => Some(ending),
                    }
                }
            },
            slot = Arc::clone(&slots).acquire_owned(), if waiting.is_some() => {
                if let (Ok(slot), Some(text)) = (slot, waiting.take()) {
                    let route = RouteTask {
                        shared: Arc::clone(&shared),
                        info: info.clone(),
                        replies: replies.clone(),
                        slot,
                        task: TaskGuard::new(&shared),
                    };
                    tokio::spawn(route.run(text));
                }
                None
            }
            reply = replies_rx.recv() => match reply {
                Some(message) => {
                    let ended = send_within(&mut socket, &mut limits, message).await;
                    if ended.is_none() {
                        last_active_ms.store(now_ms(), Ordering::Relaxed);
                    }
                    ended
                }
                // Never: this loop holds a sender.
                None => None,
            },
            message = outbound_rx.recv() => match message {
                Some(message) => {
                    let len = frame_len(&message);
                    let ended = send_within(&mut socket, &mut limits, message).await;
                    queued_bytes.fetch_sub(len, Ordering::AcqRel);
                    if ended.is_none() {
                        last_active_ms.store(now_ms(), Ordering::Relaxed);
                    }
                    ended
                }
                // DELETE removed the connection (dropping the queue's sender) after asking
                // for a close: that close, with its code.
                None => {
                    let (code, reason) = limits.reached().await;
                    close_within(&mut socket, code, reason).await;
                    Some(Ending(code, reason.to_owned()))
                }
            },
            (code, reason) = limits.reached() => {
                close_within(&mut socket, code, reason).await;
                Some(Ending(code, reason.to_owned()))
            }
        };
        if let Some(ending) = ended {
            break ending;
        }
    };
    shared.live().remove(&info.connection_id);
    // The socket is dropped here, which closes the TCP connection even when the close frame
    // could not be written. Routes still running go on (Lambda does not cancel an invocation
    // whose caller left); their answers have nowhere to go and are dropped.
    drop(socket);
    drop(replies_rx);
    let Ending(code, reason) = ending;
    disconnect(&shared, &info, code, reason).await;
}

/// What ends a connection besides the client: `DELETE @connections`, shutdown, the idle and
/// maximum-duration limits. Checked while waiting for the client *and* while a send is in
/// progress, so a client that stops reading cannot hold the connection open.
struct Limits {
    close: watch::Receiver<Option<(u16, &'static str)>>,
    shutdown: watch::Receiver<bool>,
    hard_deadline: Instant,
    idle_timeout: Duration,
    /// The last message received or sent completely.
    last_activity: Instant,
    send_timeout: Duration,
}

impl Limits {
    /// The close code and reason of the first limit reached.
    async fn reached(&mut self) -> (u16, &'static str) {
        let idle_deadline = self.last_activity + self.idle_timeout;
        tokio::select! {
            requested = self.close.wait_for(Option::is_some) => match requested.as_deref() {
                Ok(Some(close)) => *close,
                // The gateway dropped its side: treat as shutdown.
                _ => (1001, "Going away"),
            },
            _ = self.shutdown.wait_for(|stop| *stop) => (1001, "Going away"),
            () = tokio::time::sleep_until(self.hard_deadline) => (1001, "Going away"),
            () = tokio::time::sleep_until(idle_deadline) => (1001, "Going away"),
        }
    }
}

/// Sends `message` unless a limit is reached first or the client takes longer than the send
/// timeout to accept it; `Some` ends the connection.
async fn send_within(
    socket: &mut WebSocket,
    limits: &mut Limits,
    message: Message,
) -> Option<Ending> {
    let send_timeout = limits.send_timeout;
    tokio::select! {
        sent = tokio::time::timeout(send_timeout, socket.send(message)) => match sent {
            Ok(Ok(())) => {
                limits.last_activity = Instant::now();
                None
            }
            Ok(Err(_)) => Some(Ending(1006, "Connection lost".to_owned())),
            Err(_) => {
                tracing::info!(?send_timeout, "client not reading; dropping the connection");
                Some(Ending(1006, "Connection lost".to_owned()))
            }
        },
        (code, reason) = limits.reached() => {
            // The interrupted frame stays in the socket's write buffer, ahead of the close
            // frame; both usually fail to go out, and the TCP connection is dropped.
            close_within(socket, code, reason).await;
            Some(Ending(code, reason.to_owned()))
        }
    }
}

/// Writes a close frame, giving up after [`CLOSE_WRITE_TIMEOUT`].
/// Then waits as long again for the client's close frame, so that the TCP connection is not
/// reset under a client that is still answering the closing handshake.
async fn close_within(socket: &mut WebSocket, code: u16, reason: &'static str) {
    if let Ok(Ok(())) = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, close(socket, code, reason)).await
    {
        let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, async {
            while let Some(Ok(message)) = socket.recv().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
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

fn now_ms() -> u64 {
    u64::try_from(time::epoch_millis(SystemTime::now())).unwrap_or(0)
}

/// What the loop does with a client's `message`: `Ok(Some(text))` is a message for a route,
/// `Err` ends the connection.
async fn on_client_message(
    shared: &Shared,
    socket: &mut WebSocket,
    message: Message,
) -> std::result::Result<Option<Utf8Bytes>, Ending> {
    let text = match message {
        Message::Text(text) => text,
        Message::Binary(_) => {
            close_within(socket, 1003, "Binary frames are not supported").await;
            return Err(Ending(1003, "Binary frames are not supported".to_owned()));
        }
        Message::Close(frame) => {
            return Err(match frame {
                Some(f) => Ending(f.code, f.reason.as_str().to_owned()),
                None => Ending(1005, "Client-side close frame status not set".to_owned()),
            });
        }
        Message::Ping(_) | Message::Pong(_) => return Ok(None),
    };
    if text.len() > shared.config.max_message_size {
        close_within(socket, 1009, "Message too big").await;
        return Err(Ending(1009, "Message too big".to_owned()));
    }
    Ok(Some(text))
}
