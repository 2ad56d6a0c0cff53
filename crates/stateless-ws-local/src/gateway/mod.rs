//! The emulator: [`LocalGateway`] and what it serves (see the crate docs for the user guide).
//!
//! This file is the public API and the router. Beside it, private: `connection.rs` (the
//! upgrade, the per-connection socket loop and its close codes), `context.rs` (what API Gateway
//! would send: connection ids, request contexts, events, route selection), `management.rs`
//! (`@connections` and AWS-style errors), `time.rs` (API Gateway's timestamp formats),
//! `in_process.rs` (routes served by a [`RouteHandler`] in this process, with Lambda's
//! `Context`), `invoke.rs` (routes served over the Lambda Invoke API), `authorizer.rs` (the
//! REQUEST authorizer and its IAM policy), `route.rs` (a message's route, beside its connection),
//! `not_found.rs` (requests for a stage not served) and `listener.rs` (the port: TLS and plain
//! HTTP side by side, and the HTTP/1 loop).

mod authorizer;
mod connection;
mod context;
mod in_process;
mod invoke;
mod listener;
mod management;
mod not_found;
mod route;
mod time;

pub(crate) use authorizer::RequestAuthorizer;
pub(crate) use invoke::{FunctionTarget, InvokeEndpoint};

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::routing::{any, get};
use tokio::sync::watch;

use connection::{Live, upgrade};
use in_process::InProcess;
use invoke::Answer;
use listener::GatewayTls;
use management::{management, unknown_path};
use stateless_ws::event::WebSocketEvent;
use stateless_ws::ids::ConnectionId;
use stateless_ws::lambda::RouteHandler;
use stateless_ws::{Error, Result};

/// [`Error::Config`] with `message`: the error of every invalid setting of the gateway.
pub(crate) fn config_error(message: impl Into<String>) -> Error {
    Error::Config {
        message: message.into(),
    }
}

/// The largest message API Gateway accepts: 128 KB.
pub const MAX_MESSAGE_SIZE: usize = 131_072;

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
    /// Most bytes of posted messages waiting for one client (default 1 MiB, eight 128 KB
    /// messages). A `POST @connections` beyond it answers 429 `LimitExceededException`, as API
    /// Gateway does when "the WebSocket client side buffer is full".
    pub max_queued_bytes: usize,
    /// Most posted messages waiting for one client (default 1,024); beyond it, 429 as above.
    pub max_queued_messages: usize,
    /// How long writing one message to a client may take (default 10 s). A client that does
    /// not read for that long is disconnected (TCP connection dropped, `$disconnect` with 1006):
    /// a stuck client must not hold memory or a task.
    pub send_timeout: Duration,
    /// How long [`RunningGateway::shutdown`] waits for the connections to close and their
    /// `$disconnect` handlers to finish (default 30 s, a little over API Gateway's 29 s
    /// integration timeout). Handlers still running then are left to finish in the
    /// background and counted in the [`ShutdownReport`].
    pub shutdown_grace: Duration,
    /// The public domain name put in `requestContext.domainName` (e.g. `ws.example.test:8080`
    /// behind a proxy). Default `None`: the bound address (`127.0.0.1:{port}`; an unspecified
    /// address such as `0.0.0.0` becomes loopback).
    ///
    /// Never taken from a request: on AWS `domainName` is set by API Gateway, and a handler
    /// derives the management endpoint it stores from it
    /// ([`RequestContext::management_endpoint`](stateless_ws::event::RequestContext::management_endpoint)),
    /// so a client's `Host` header must not decide where signed requests go.
    pub domain_name: Option<String>,
    /// How long an HTTP connection may wait for its next request (default 60 s, as an AWS
    /// Application Load Balancer's idle timeout): the management API's keep-alive connections,
    /// and connections that never send a request, are closed after it. Upgraded WebSocket
    /// connections are not concerned ([`idle_timeout`](Self::idle_timeout) governs them).
    pub http_idle_timeout: Duration,
    /// Tell clients what failed when an integration fails (default `false`): the answer to a
    /// message (and the refused `$connect`) then carries a `detail` beside API Gateway's
    /// generic `"Internal server error"` — the function's error type and message, the Invoke
    /// API's answer, the timeout. For development only: by default a client learns nothing
    /// about the infrastructure (function names, endpoints, tables) and the details go to the
    /// log, as on AWS.
    pub expose_errors: bool,
    /// Most routes running at once for one connection (default 16; 0 counts as 1).
    ///
    /// What API Gateway does with several messages of one connection: it invokes each
    /// message's integration on its own and promises no order — "In the WebSocket protocol,
    /// communication is two-way. Responses are asynchronous and are not necessarily received
    /// by the client in the same order as the client's messages were sent" (API Gateway
    /// developer guide, "Invoking your backend integration: `$default` route and custom
    /// routes") — and waits for each integration 29 s at most. The gateway does the same:
    /// routes run beside the connection, never in its way (posts, `DELETE @connections`, the
    /// idle and duration limits and shutdown act while a route runs); answers are sent as
    /// routes finish, so two messages' answers may arrive in either order; a slow or hung
    /// route holds up none of the connection's other messages, and past
    /// [`integration_timeout`](Self::integration_timeout) its caller gets "Endpoint request
    /// timed out" and its slot is freed.
    ///
    /// Where it differs: API Gateway documents no per-connection bound (only the account's
    /// request rate, and Lambda's concurrency); here a message that arrives while this many
    /// routes of its connection run waits, unread (its frames wait in TCP), until one
    /// answers or times out — so a client cannot make one connection start unbounded work.
    /// With one route per message and handlers that answer within the timeout, the two
    /// behave alike.
    pub max_routes_in_flight: usize,
    /// Accept TLS on the gateway's port beside plain HTTP (default `true`): `wss://` and
    /// `https://` work as `ws://` and `http://` do, so a handler's
    /// `https://{domainName}/{stage}` reaches the management API. Each connection is told apart
    /// by its first byte (a TLS handshake starts with 0x16, no HTTP request does).
    ///
    /// The certificate is issued at each start by a CA kept in [`ca_dir`](Self::ca_dir) (see
    /// [`LocalCa`](crate::LocalCa)). When that is the default directory and it cannot be used
    /// (no `HOME`, read-only), the gateway serves plain HTTP alone and logs a WARN.
    pub tls: bool,
    /// Where the local CA is kept (default `None`: [`LocalCa::default_dir`](crate::LocalCa::default_dir),
    /// `$XDG_DATA_HOME/stateless-ws-local` or `~/.local/share/stateless-ws-local`). A directory
    /// set here must work: [`LocalGateway::bind`] fails otherwise.
    pub ca_dir: Option<PathBuf>,
    /// How long a client may take over its TLS handshake (default 10 s); a client that sends a
    /// ClientHello and then nothing is dropped after it.
    pub tls_handshake_timeout: Duration,
    /// How long the gateway waits for a route's answer (default 29 s, API Gateway's
    /// integration timeout): past it, a message's caller gets `{"message": "Endpoint request
    /// timed out", ...}` and its slot among [`max_routes_in_flight`](Self::max_routes_in_flight)
    /// is freed, a `$connect` is refused with 500. The handler is not cancelled — Lambda does
    /// not stop a function because API Gateway stopped waiting — it goes on in the background
    /// (and [`RunningGateway::shutdown`] waits for it as for any route). In-process handlers
    /// get this as their `Context` deadline; for template functions the CLI's `--timeout` sets
    /// it.
    pub integration_timeout: Duration,
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
            max_queued_bytes: 1 << 20,
            max_queued_messages: 1_024,
            send_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            domain_name: None,
            http_idle_timeout: Duration::from_secs(60),
            expose_errors: false,
            max_routes_in_flight: 16,
            tls: true,
            ca_dir: None,
            tls_handshake_timeout: Duration::from_secs(10),
            integration_timeout: invoke::INTEGRATION_TIMEOUT,
        }
    }
}

/// What every request and connection task of one running gateway shares.
struct Shared {
    config: LocalGatewayConfig,
    /// `requestContext.domainName` of every event: from the configuration or the bound address.
    domain_name: String,
    routes: HashMap<String, Route>,
    /// The REQUEST authorizer in front of `$connect`, if any.
    authorizer: Option<RequestAuthorizer>,
    connections: Mutex<HashMap<ConnectionId, Live>>,
    shutdown: watch::Receiver<bool>,
    /// Connection tasks (socket loop and then `$disconnect`) and route tasks that have not
    /// finished: shutdown waits until this is 0.
    tasks: watch::Sender<usize>,
}

/// Counts one connection task in [`Shared::tasks`] until dropped (so a handler that panics
/// still ends its count).
pub(crate) struct TaskGuard(Arc<Shared>);

impl TaskGuard {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.tasks.send_modify(|n| *n += 1);
        Self(Arc::clone(shared))
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.tasks.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Shared {
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Live>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// What serves a route: a handler in this process, or a function invoked over the Lambda
/// Invoke API.
#[derive(Clone)]
enum Route {
    Handler(InProcess),
    Function(Box<FunctionTarget>),
}

/// Calls what serves `route_key`; `None` when nothing does.
async fn call(shared: &Shared, route_key: &str, event: WebSocketEvent) -> Option<Answer> {
    match shared.routes.get(route_key)? {
        Route::Handler(function) => Some(function.call(&event).await),
        Route::Function(target) => Some(target.call(&event).await),
    }
}

/// Builds and starts a local gateway; see the [crate docs](crate).
#[must_use]
pub struct LocalGateway {
    config: LocalGatewayConfig,
    routes: HashMap<String, Route>,
    authorizer: Option<RequestAuthorizer>,
    extra: Router,
}

impl fmt::Debug for LocalGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalGateway")
            .field("config", &self.config)
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .field("authorizer", &self.authorizer)
            .finish_non_exhaustive()
    }
}

impl LocalGateway {
    /// A gateway with `config` and no handlers yet.
    pub fn new(config: LocalGatewayConfig) -> Self {
        Self {
            config,
            routes: HashMap::new(),
            authorizer: None,
            extra: Router::new(),
        }
    }

    /// Registers `handler` for `route_key` (`$connect`, `$disconnect`, `$default`, or a value of
    /// the route selection field such as `join`).
    ///
    /// The handler is what a Lambda function runs — [`lambda::service(handle)`](stateless_ws::lambda::service),
    /// or any [`RouteHandler`] — and is called as Lambda calls it: with the event API Gateway
    /// would send, as JSON, and a [`Context`](stateless_ws::lambda::Context) whose `deadline` is the
    /// integration timeout (29 s) from now, with a fresh `request_id` and a function named
    /// `{api_id}-{route}` (`local-connect`, `local-join`) in `invoked_function_arn` and
    /// `env_config`.
    pub fn route(self, route_key: impl Into<String>, handler: impl RouteHandler) -> Self {
        self.route_arc(route_key.into(), Arc::new(handler))
    }

    fn route_arc(mut self, route_key: String, handler: Arc<dyn RouteHandler>) -> Self {
        let function = InProcess::new(
            handler,
            &self.config.api_id,
            &route_key,
            self.config.integration_timeout,
        );
        self.routes.insert(route_key, Route::Handler(function));
        self
    }

    /// Serves `route_key` with a real function: each event is sent to `target` over the Lambda
    /// Invoke API and its answer mapped as API Gateway maps a Lambda proxy integration's — on
    /// `$connect` a non-2xx `statusCode` refuses the upgrade with that status and an empty
    /// body; on a two-way route the
    /// `body` goes back to the caller. A function error, an unusable answer or no answer within
    /// the endpoint's timeout is API Gateway's integration failure: `$connect` is refused with
    /// 500, a message's caller gets `{"message": "Internal server error"` (or `"Endpoint
    /// request timed out"`)`, "connectionId": …, "requestId": …}`.
    pub(crate) fn function(mut self, route_key: impl Into<String>, target: FunctionTarget) -> Self {
        self.routes
            .insert(route_key.into(), Route::Function(Box::new(target)));
        self
    }

    /// Puts a Lambda REQUEST authorizer in front of `$connect`, as API Gateway runs it: 401
    /// without invoking it when an identity source is missing; otherwise the function gets the
    /// REQUEST-authorizer event (`type`, `methodArn`, headers, query string, request context);
    /// its IAM policy must allow `execute-api:Invoke` on the `methodArn` (403 otherwise, and on
    /// any matching `Deny`); an error or malformed answer is a 500. Its `principalId` and
    /// `context` become `requestContext.authorizer` of every event of the connection.
    pub(crate) fn authorizer(mut self, authorizer: RequestAuthorizer) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// Registers `handler` for `$connect`, `$disconnect` and `$default` — with the route
    /// selection falling back to `$default`, every event reaches it (what a single Lambda
    /// serving all routes sees).
    pub fn default_handler(self, handler: impl RouteHandler) -> Self {
        let handler: Arc<dyn RouteHandler> = Arc::new(handler);
        self.route_arc("$connect".to_owned(), Arc::clone(&handler))
            .route_arc("$disconnect".to_owned(), Arc::clone(&handler))
            .route_arc("$default".to_owned(), handler)
    }

    /// Sets [`LocalGatewayConfig::expose_errors`]: integration failures tell the client what
    /// failed (for development).
    pub fn expose_errors(mut self, expose: bool) -> Self {
        self.config.expose_errors = expose;
        self
    }

    /// Sets [`LocalGatewayConfig::tls`]: TLS beside plain HTTP on the port (on by default).
    pub fn tls(mut self, on: bool) -> Self {
        self.config.tls = on;
        self
    }

    /// Sets [`LocalGatewayConfig::ca_dir`]: where the local CA is kept (it must then work).
    pub fn ca_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.ca_dir = Some(dir.into());
        self
    }

    /// Serves `router`'s routes on the same port (e.g. a demo page at `/`). Paths under
    /// `/{stage}` are the gateway's. A request that no route of either matches (and that
    /// `router`'s own fallback, if any, answers with an empty 404) gets a 404 naming the stage
    /// served, and a WARN log line.
    pub fn merge(mut self, router: Router) -> Self {
        self.extra = self.extra.merge(router);
        self
    }

    /// Binds `addr` (port 0 picks a free port) and starts serving.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the address cannot be bound, the stage is not a single path
    /// segment, or the CA directory set in [`LocalGatewayConfig::ca_dir`] cannot be used.
    pub async fn bind(self, addr: SocketAddr) -> Result<RunningGateway> {
        let stage = self.config.stage.clone();
        if stage.is_empty() || stage.contains('/') || stage.starts_with('@') {
            return Err(config_error(format!(
                "local gateway stage {stage:?} must be one path segment"
            )));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| config_error(format!("cannot bind the local gateway to {addr}: {e}")))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| config_error(format!("local gateway address: {e}")))?;
        let domain_name = match &self.config.domain_name {
            Some(name) => {
                // One host[:port]: it becomes `http(s)://{domainName}/{stage}` in handlers.
                if name.is_empty()
                    || name
                        .chars()
                        .any(|c| !(c.is_ascii_alphanumeric() || ".-:[]".contains(c)))
                {
                    return Err(config_error(format!(
                        "local gateway domain name {name:?} must be a host name, optionally with :port"
                    )));
                }
                name.clone()
            }
            None => public_addr(local_addr).to_string(),
        };
        // The certificate names what clients may dial besides loopback: the configured domain's
        // host and a specific bind address.
        let mut hosts = vec![listener::host_of(&domain_name).to_owned()];
        if !local_addr.ip().is_unspecified() {
            hosts.push(local_addr.ip().to_string());
        }
        let tls = GatewayTls::new(&self.config, &hosts)?.map(Arc::new);
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            config: self.config,
            domain_name,
            routes: self.routes,
            authorizer: self.authorizer,
            connections: Mutex::new(HashMap::new()),
            shutdown: stop_rx.clone(),
            tasks: watch::channel(0).0,
        });
        let gateway = Router::new()
            .route(&format!("/{stage}"), get(upgrade))
            .route(&format!("/{stage}/"), get(upgrade))
            // The management route reads its body itself, up to the message limit + 1, so a
            // large POST gets a 413 PayloadTooLargeException rather than axum's plain 413.
            .route(
                &format!("/{stage}/@connections/{{id}}"),
                any(management).layer(axum::extract::DefaultBodyLimit::disable()),
            )
            .route(&format!("/{stage}/{{*rest}}"), any(unknown_path))
            .with_state(Arc::clone(&shared));
        let public = public_addr(local_addr);
        let unserved = not_found::Unserved::new(
            &stage,
            format!("ws://{public}/{stage}"),
            format!("http://{public}/{stage}"),
        );
        let app = gateway
            .merge(self.extra)
            .layer(axum::middleware::from_fn_with_state(
                unserved,
                not_found::explain,
            ));
        let server = tokio::spawn(listener::serve(
            listener,
            app,
            shared.config.http_idle_timeout,
            tls.clone(),
            stop_rx,
        ));
        tracing::info!(%local_addr, %stage, tls = tls.is_some(), "local gateway listening");
        Ok(RunningGateway {
            addr: local_addr,
            stage,
            shared,
            stop: stop_tx,
            server,
            tls,
        })
    }
}

/// The address clients reach: an unspecified bind address (`0.0.0.0`, `::`) is reachable on
/// loopback.
fn public_addr(bound: SocketAddr) -> SocketAddr {
    let mut addr = bound;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// A running [`LocalGateway`]. Dropping it leaves the server running until the runtime ends;
/// call [`shutdown`](Self::shutdown) to stop it cleanly.
pub struct RunningGateway {
    addr: SocketAddr,
    stage: String,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    tls: Option<Arc<GatewayTls>>,
}

impl fmt::Debug for RunningGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningGateway")
            .field("addr", &self.addr)
            .field("stage", &self.stage)
            .field("connections", &self.connection_count())
            .field("tls", &self.tls.is_some())
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
        format!("ws://{}/{}", public_addr(self.addr), self.stage)
    }

    /// The management API endpoint for [`ApiGatewaySender`](https://docs.rs/stateless-ws/latest/stateless_ws/broadcast/struct.ApiGatewaySender.html):
    /// `http://{addr}/{stage}`.
    pub fn management_endpoint(&self) -> String {
        format!("http://{}/{}", public_addr(self.addr), self.stage)
    }

    /// Where WebSocket clients connect over TLS: `wss://{addr}/{stage}` — `None` when the
    /// gateway serves no TLS ([`LocalGatewayConfig::tls`]).
    pub fn wss_url(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|_| format!("wss://{}/{}", public_addr(self.addr), self.stage))
    }

    /// The management API over TLS: `https://{domainName}/{stage}`, the endpoint handlers in
    /// the wild build from the event's `requestContext` — `None` without TLS. Its certificate
    /// is issued by [`local_ca`](Self::local_ca).
    pub fn https_management_endpoint(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|_| format!("https://{}/{}", self.shared.domain_name, self.stage))
    }

    /// The CA that issued the gateway's TLS certificate (its files, and the variables that make
    /// runtimes trust it) — `None` without TLS.
    pub fn local_ca(&self) -> Option<&crate::LocalCa> {
        self.tls.as_ref().map(|tls| &tls.ca)
    }

    /// Open connections.
    pub fn connection_count(&self) -> usize {
        self.shared.live().len()
    }

    /// Closes every open connection at once (close code 1001, each with its `$disconnect`,
    /// whatever routes are running), waits for every `$disconnect` handler and every route
    /// still running to finish, then stops the server — all within
    /// [`LocalGatewayConfig::shutdown_grace`]. A connection whose client does not read is
    /// dropped at the TCP level once its close frame cannot be written.
    pub async fn shutdown(self) -> ShutdownReport {
        let grace = self.shared.config.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        let open = self.connection_count();
        let _ = self.stop.send(true);
        let mut tasks = self.shared.tasks.subscribe();
        let _ = tokio::time::timeout_at(deadline, tasks.wait_for(|n| *n == 0)).await;
        let unfinished = *tasks.borrow();
        let mut server = self.server;
        if tokio::time::timeout_at(deadline, &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        if unfinished > 0 {
            tracing::warn!(
                unfinished,
                ?grace,
                "local gateway shut down with $disconnect handlers still running"
            );
        }
        ShutdownReport {
            open_connections: open,
            unfinished,
        }
    }
}

/// What [`RunningGateway::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Connections open when shutdown began.
    pub open_connections: usize,
    /// Handlers — `$disconnect`, a message's route, or `$connect` for a handshake in
    /// progress — that had not finished when the grace period ended; they go on in the
    /// background.
    pub unfinished: usize,
}
