//! A loopback HTTP server posing as the API Gateway Management API
//! (`POST|GET|DELETE /{stage}/@connections/{id}`), recording every request as received.
//!
//! Faults per connection id: 410 Gone, 429 `LimitExceededException` every time, an answer that
//! never comes (hang), or an answer after a delay. Deliveries are counted per id at the moment a
//! POST is accepted — before any delay or hang — so a post whose answer comes late (or never)
//! still counts as delivered, as it would at API Gateway.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: Method,
    /// The path exactly as sent (still percent-encoded).
    pub(crate) raw_path: String,
    /// The connection id decoded once from the path.
    pub(crate) connection_id: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

#[derive(Default)]
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

/// The running fake; dropped servers keep running until the test's runtime ends.
#[derive(Clone)]
pub(crate) struct FakeManagementApi {
    inner: Arc<Inner>,
    pub(crate) addr: SocketAddr,
}

impl FakeManagementApi {
    /// Starts the fake on `127.0.0.1:0` for `stage`.
    pub(crate) async fn start(stage: &str) -> Self {
        let inner = Arc::new(Inner {
            stage: stage.to_owned(),
            ..Inner::default()
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { inner, addr }
    }

    /// The management endpoint: `http://127.0.0.1:PORT/{stage}`.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}/{}", self.addr, self.inner.stage)
    }

    /// Makes `id` answer 410 GoneException.
    pub(crate) fn set_gone(&self, id: &str) {
        self.inner.gone.lock().unwrap().insert(id.to_owned());
    }

    /// Answers every request after `delay`.
    pub(crate) fn set_delay(&self, delay: Duration) {
        *self.inner.delay.lock().unwrap() = delay;
    }

    /// Makes `id` answer every request with 429 `LimitExceededException`.
    pub(crate) fn set_throttled(&self, id: &str) {
        self.inner.throttled.lock().unwrap().insert(id.to_owned());
    }

    /// Makes `id` never answer (the POST is delivered, the response never comes).
    pub(crate) fn set_hung(&self, id: &str) {
        self.inner.hung.lock().unwrap().insert(id.to_owned());
    }

    /// Answers requests for `id` after `delay` (instead of the global delay); a POST is
    /// delivered before the wait.
    pub(crate) fn set_delay_for(&self, id: &str, delay: Duration) {
        self.inner
            .delay_for
            .lock()
            .unwrap()
            .insert(id.to_owned(), delay);
    }

    /// Stops keeping the request log ([`requests`](Self::requests) stays empty); delivery counts
    /// are still kept.
    pub(crate) fn set_quiet(&self) {
        self.inner.quiet.store(true, Ordering::Relaxed);
    }

    /// POSTs to `id` that were accepted for delivery (not gone, not throttled), whatever
    /// happened to their answers.
    pub(crate) fn deliveries(&self, id: &str) -> usize {
        self.inner
            .deliveries
            .lock()
            .unwrap()
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    /// Accepted POSTs over all ids.
    pub(crate) fn total_deliveries(&self) -> usize {
        self.inner.deliveries.lock().unwrap().values().sum()
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    pub(crate) fn posts_to(&self, id: &str) -> Vec<Bytes> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == Method::POST && r.connection_id == id)
            .map(|r| r.body)
            .collect()
    }
}

/// Decodes `%XX` escapes once.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
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
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap();
    let prefix = format!("/{}/@connections/", inner.stage);
    let Some(encoded) = raw_path.strip_prefix(&prefix) else {
        return aws_error(StatusCode::FORBIDDEN, "ForbiddenException");
    };
    let connection_id = percent_decode(encoded);
    if !inner.quiet.load(Ordering::Relaxed) {
        inner.requests.lock().unwrap().push(Recorded {
            method: method.clone(),
            raw_path: raw_path.clone(),
            connection_id: connection_id.clone(),
            headers,
            body,
        });
    }
    let gone = inner.gone.lock().unwrap().contains(&connection_id);
    let throttled = inner.throttled.lock().unwrap().contains(&connection_id);
    if method == Method::POST && !gone && !throttled {
        *inner
            .deliveries
            .lock()
            .unwrap()
            .entry(connection_id.clone())
            .or_default() += 1;
    }
    if inner.hung.lock().unwrap().contains(&connection_id) {
        std::future::pending::<()>().await;
    }
    let delay = inner
        .delay_for
        .lock()
        .unwrap()
        .get(&connection_id)
        .copied()
        .unwrap_or_else(|| *inner.delay.lock().unwrap());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if throttled {
        return aws_error(StatusCode::TOO_MANY_REQUESTS, "LimitExceededException");
    }
    // Checked again after the wait: a DELETE may have closed the connection meanwhile.
    if inner.gone.lock().unwrap().contains(&connection_id) {
        return aws_error(StatusCode::GONE, "GoneException");
    }
    match method {
        Method::POST => StatusCode::OK.into_response(),
        Method::DELETE => {
            inner.gone.lock().unwrap().insert(connection_id);
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
