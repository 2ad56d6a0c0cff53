//! Requests for a path the gateway does not serve — most often a stage other than the one it
//! serves (`/prod` when it serves `/local`): they are answered with what *is* served and
//! logged at WARN, never with a bare 404 nobody hears about.
//!
//! A middleware around the whole router, rather than a fallback, so that a router merged with
//! [`LocalGateway::merge`](super::LocalGateway::merge) may keep a fallback of its own: only a
//! request no route matched (no [`MatchedPath`]) that came back as an empty 404 — axum's own
//! fallback — is rewritten.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::management::aws_error;

/// How often the same unserved path is logged at most: once per window.
const LOG_WINDOW: Duration = Duration::from_secs(60);

/// Distinct unserved paths logged per window; beyond it one line says the rest are not, so a
/// client sending random paths cannot fill the log.
const MAX_LOGGED_PATHS: usize = 16;

/// The longest piece of a request path repeated in an answer or a log line.
const MAX_ECHO: usize = 64;

/// What the gateway serves, for the answers; and the log's rate limit.
pub(super) struct Unserved {
    stage: String,
    ws_url: String,
    management_endpoint: String,
    log: Mutex<LogLimit>,
}

/// Which unserved paths were logged in the current window.
struct LogLimit {
    window_started: Instant,
    logged: HashSet<String>,
    /// Requests not logged in the window (repeats, and paths past the cap).
    suppressed: u64,
    /// Whether the "no more paths this window" line was written.
    capped: bool,
}

impl Unserved {
    /// A gateway serving `stage` at `ws_url`, with its management API at `management_endpoint`.
    pub(super) fn new(stage: &str, ws_url: String, management_endpoint: String) -> Arc<Self> {
        Arc::new(Self {
            stage: stage.to_owned(),
            ws_url,
            management_endpoint,
            log: Mutex::new(LogLimit {
                window_started: Instant::now(),
                logged: HashSet::new(),
                suppressed: 0,
                capped: false,
            }),
        })
    }

    /// The sentence both answers start with: which stage was asked for, which is served.
    fn explanation(&self, asked: &str) -> String {
        let asked = if asked.is_empty() {
            "no stage in the path".to_owned()
        } else {
            format!("no stage {:?} here", echo(asked))
        };
        format!(
            "{asked}; this gateway serves stage {:?}: {} (management API: {}/@connections/{{connectionId}})",
            self.stage, self.ws_url, self.management_endpoint
        )
    }

    /// Logs the request for `path` at WARN unless that path was logged in this window, or
    /// [`MAX_LOGGED_PATHS`] paths were.
    fn warn(&self, method: &str, path: &str, explanation: &str) {
        let mut limit = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if now.duration_since(limit.window_started) >= LOG_WINDOW {
            limit.window_started = now;
            limit.logged.clear();
            limit.capped = false;
        }
        let path = echo(path);
        if limit.logged.contains(&path) {
            limit.suppressed += 1;
            return;
        }
        if limit.logged.len() >= MAX_LOGGED_PATHS {
            limit.suppressed += 1;
            if !limit.capped {
                limit.capped = true;
                tracing::warn!(
                    max = MAX_LOGGED_PATHS,
                    window = ?LOG_WINDOW,
                    "local gateway: more requests for unserved paths; not logged until the window ends"
                );
            }
            return;
        }
        let suppressed = std::mem::take(&mut limit.suppressed);
        limit.logged.insert(path.clone());
        drop(limit);
        tracing::warn!(
            method,
            ?path,
            suppressed,
            "local gateway: {explanation} (logged once a minute per path; `suppressed`: requests not logged since the last line)"
        );
    }
}

/// At most [`MAX_ECHO`] characters of `text`, with `…` when cut: paths are the client's, and
/// neither an answer nor a log line should grow with them.
fn echo(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHO) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Runs the router; a request no route matched that got axum's empty 404 gets an answer
/// naming the stage served instead, and a WARN line. `/{stage}/@connections/...` for another
/// stage is answered as API Gateway answers a management call with a wrong stage — 403
/// `ForbiddenException`, which the AWS SDK maps to its error type — with the same sentence as
/// its message; anything else (a WebSocket client at `/prod`, a browser at `/`) with a 404
/// and the sentence as text.
pub(super) async fn explain(
    State(unserved): State<Arc<Unserved>>,
    request: Request,
    next: Next,
) -> Response {
    if request.extensions().get::<MatchedPath>().is_some() {
        return next.run(request).await;
    }
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if response.status() != StatusCode::NOT_FOUND
        || axum::body::HttpBody::size_hint(response.body()).exact() != Some(0)
    {
        return response;
    }
    let mut segments = path.trim_start_matches('/').split('/');
    let asked = segments.next().unwrap_or_default();
    let explanation = unserved.explanation(asked);
    unserved.warn(&method, &path, &explanation);
    if segments.next() == Some("@connections") {
        return aws_error(StatusCode::FORBIDDEN, "ForbiddenException", &explanation);
    }
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{explanation}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_bounded() {
        assert_eq!(echo("prod"), "prod");
        let long = "é".repeat(100);
        assert_eq!(echo(&long).chars().count(), MAX_ECHO + 1);
    }
}
