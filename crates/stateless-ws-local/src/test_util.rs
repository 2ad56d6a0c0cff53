//! Test doubles for code that talks to API Gateway (feature `test-util`).
//!
//! [`FakeManagementApi`] is a loopback HTTP server posing as the API Gateway Management API
//! (`POST|GET|DELETE /{stage}/@connections/{id}`), recording every request as received, with
//! faults you inject per connection id: 410 `GoneException`, 429 `LimitExceededException` every
//! time, an answer that never comes (hang), or an answer after a delay. Deliveries are counted
//! per id at the moment a POST is accepted — before any delay or hang — so a post whose answer
//! comes late (or never) still counts as delivered, as it would at API Gateway.
//!
//! Where [`LocalGateway`](crate::LocalGateway) delivers to real WebSocket clients, the fake
//! delivers nowhere: use it to test a sender or broadcaster's handling of faults.
//!
//! ```
//! use stateless_ws_local::test_util::FakeManagementApi;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let fake = FakeManagementApi::start("prod").await;
//! fake.set_gone("gone-conn-id");
//! // Point the code under test at `fake.endpoint()` (`http://127.0.0.1:PORT/prod`), e.g.
//! // `ApiGatewaySender::new(&sdk_config).with_default_endpoint(&fake.endpoint())?`, then check:
//! assert_eq!(fake.deliveries("some-conn-id"), 0);
//! assert!(fake.requests().is_empty());
//! # });
//! ```

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// One request as the server saw it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Recorded {
    /// The HTTP method: `POST` (post to the connection), `GET` (its info) or `DELETE`.
    pub method: Method,
    /// The path exactly as sent (still percent-encoded).
    pub raw_path: String,
    /// The connection id decoded once from the path.
    pub connection_id: String,
    /// The request's headers (the SDK's signature among them).
    pub headers: HeaderMap,
    /// The request's body: for a `POST`, the message.
    pub body: Bytes,
}

#[derive(Debug, Default)]
struct Inner {
    stage: String,
    requests: Mutex<Vec<Recorded>>,
    gone: Mutex<HashSet<String>>,
    throttled: Mutex<HashSet<String>>,
    hung: Mutex<HashSet<String>>,
    delay: Mutex<Duration>,
    delay_for: Mutex<HashMap<String, Duration>>,
    deliveries: Mutex<HashMap<String, usize>>,
    /// Benchmarks turn the request log off: it would grow with every iteration.
    quiet: AtomicBool,
}

/// A fake API Gateway Management API on loopback; see the [module docs](self).
///
/// Clones share the server and its records. The server runs until the tokio runtime that
/// started it ends (dropping the handle does not stop it).
#[derive(Debug, Clone)]
pub struct FakeManagementApi {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

/// Locks `mutex`, ignoring poisoning: every critical section leaves the data consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeManagementApi {
    /// Starts the fake on `127.0.0.1:0` (a free port) for `stage`: requests outside
    /// `/{stage}/@connections/` answer 403 `ForbiddenException`, as API Gateway does.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound: a test cannot run without one.
    #[allow(clippy::expect_used)]
    pub async fn start(stage: &str) -> Self {
        let inner = Arc::new(Inner {
            stage: stage.to_owned(),
            ..Inner::default()
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the fake management API");
        let addr = listener
            .local_addr()
            .expect("the fake management API's address");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "fake management API server failed");
            }
        });
        Self { inner, addr }
    }

    /// The bound address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The management endpoint: `http://127.0.0.1:PORT/{stage}`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/{}", self.addr, self.inner.stage)
    }

    /// Makes `id` answer 410 GoneException.
    pub fn set_gone(&self, id: &str) {
        lock(&self.inner.gone).insert(id.to_owned());
    }

    /// Answers every request after `delay`.
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.inner.delay) = delay;
    }

    /// Makes `id` answer every request with 429 `LimitExceededException`.
    pub fn set_throttled(&self, id: &str) {
        lock(&self.inner.throttled).insert(id.to_owned());
    }

    /// Makes `id` never answer (the POST is delivered, the response never comes).
    pub fn set_hung(&self, id: &str) {
        lock(&self.inner.hung).insert(id.to_owned());
    }

    /// Answers requests for `id` after `delay` (instead of the global delay); a POST is
    /// delivered before the wait.
    pub fn set_delay_for(&self, id: &str, delay: Duration) {
        lock(&self.inner.delay_for).insert(id.to_owned(), delay);
    }

    /// Stops keeping the request log ([`requests`](Self::requests) stays empty); delivery counts
    /// are still kept.
    pub fn set_quiet(&self) {
        self.inner.quiet.store(true, Ordering::Relaxed);
    }

    /// POSTs to `id` that were accepted for delivery (not gone, not throttled), whatever
    /// happened to their answers.
    pub fn deliveries(&self, id: &str) -> usize {
        lock(&self.inner.deliveries).get(id).copied().unwrap_or(0)
    }

    /// Accepted POSTs over all ids.
    pub fn total_deliveries(&self) -> usize {
        lock(&self.inner.deliveries).values().sum()
    }

    /// Every request received so far, in order (empty after [`set_quiet`](Self::set_quiet)).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.inner.requests).clone()
    }

    /// The bodies of the POSTs to `id` so far, in order (from the request log).
    pub fn posts_to(&self, id: &str) -> Vec<Bytes> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == Method::POST && r.connection_id == id)
            .map(|r| r.body)
            .collect()
    }
}

/// Decodes `%XX` escapes once; a malformed escape is kept as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(byte) = escaped {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn aws_error(status: StatusCode, kind: &str) -> Response {
    (
        status,
        [
            ("x-amzn-ErrorType", kind),
            ("content-type", "application/json"),
        ],
        "{\"message\":null}",
    )
        .into_response()
}

async fn handle(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let method = request.method().clone();
    let raw_path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    // API Gateway's own limit is 128 KB; a larger body than this is not a test of anything.
    let Ok(body) = axum::body::to_bytes(request.into_body(), 1 << 20).await else {
        return aws_error(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLargeException");
    };
    let prefix = format!("/{}/@connections/", inner.stage);
    let Some(encoded) = raw_path.strip_prefix(&prefix) else {
        return aws_error(StatusCode::FORBIDDEN, "ForbiddenException");
    };
    let connection_id = percent_decode(encoded);
    if !inner.quiet.load(Ordering::Relaxed) {
        lock(&inner.requests).push(Recorded {
            method: method.clone(),
            raw_path: raw_path.clone(),
            connection_id: connection_id.clone(),
            headers,
            body,
        });
    }
    let gone = lock(&inner.gone).contains(&connection_id);
    let throttled = lock(&inner.throttled).contains(&connection_id);
    if method == Method::POST && !gone && !throttled {
        *lock(&inner.deliveries)
            .entry(connection_id.clone())
            .or_default() += 1;
    }
    if lock(&inner.hung).contains(&connection_id) {
        std::future::pending::<()>().await;
    }
    let delay = lock(&inner.delay_for)
        .get(&connection_id)
        .copied()
        .unwrap_or_else(|| *lock(&inner.delay));
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if throttled {
        return aws_error(StatusCode::TOO_MANY_REQUESTS, "LimitExceededException");
    }
    // Checked again after the wait: a DELETE may have closed the connection meanwhile.
    if lock(&inner.gone).contains(&connection_id) {
        return aws_error(StatusCode::GONE, "GoneException");
    }
    match method {
        Method::POST => StatusCode::OK.into_response(),
        Method::DELETE => {
            lock(&inner.gone).insert(connection_id);
            StatusCode::NO_CONTENT.into_response()
        }
        Method::GET => (
            StatusCode::OK,
            [("content-type", "application/json")],
            // The wire names are camelCase (the SDK model's jsonName), not the shapes' PascalCase.
            r#"{"connectedAt":"2026-11-26T10:00:00.000Z","identity":{"sourceIp":"203.0.113.7","userAgent":"websocat/1.13"},"lastActiveAt":"2026-11-26T10:05:00.000Z"}"#,
        )
            .into_response(),
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}
