//! The Management API: `POST|GET|DELETE /{stage}/@connections/{id}`, answering errors the way
//! AWS does (`x-amzn-ErrorType` and a JSON `{"message": ...}` body), so the AWS SDK's own client
//! maps every one of them to its error type.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::ws::Message;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::connection::Posted;
use super::{Shared, time};
use stateless_ws::ids::ConnectionId;

/// An error as the management API sends it: the SDK reads the type from `x-amzn-ErrorType`,
/// not from the status (a bare 410 would be `Unhandled`).
pub(super) fn aws_error(status: StatusCode, kind: &'static str, message: &str) -> Response {
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

fn gone() -> Response {
    aws_error(StatusCode::GONE, "GoneException", "")
}

/// Any other path under the stage: API Gateway answers a request for a resource that does not
/// exist with 403 `ForbiddenException` "Missing Authentication Token" (as for a missing stage).
pub(super) async fn unknown_path() -> Response {
    aws_error(
        StatusCode::FORBIDDEN,
        "ForbiddenException",
        "Missing Authentication Token",
    )
}

/// The frame a posted body becomes. The API model types `PostToConnection`'s `Data` as a blob
/// ("The data to be sent to the client specified by its connection id") and AWS does not
/// document a conversion, so the bytes reach the client unchanged: a text frame when they are
/// UTF-8 (what every SDK sends for a string), a binary frame otherwise — never a lossy
/// U+FFFD rewrite.
fn frame_of(body: axum::body::Bytes) -> Message {
    match String::from_utf8(body.to_vec()) {
        Ok(text) => Message::text(text),
        Err(_) => Message::Binary(body),
    }
}

/// `POST|GET|DELETE /{stage}/@connections/{id}`.
pub(super) async fn management(
    State(shared): State<Arc<Shared>>,
    id: std::result::Result<Path<String>, PathRejection>,
    method: Method,
    body: Body,
) -> Response {
    // A path that does not decode, or an id no API Gateway connection can have, is the
    // caller's mistake (400), not a connection that went away (410).
    let Ok(Ok(id)) = id.map(|Path(id)| ConnectionId::new(id)) else {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "Invalid connectionId",
        );
    };
    match method {
        Method::POST => {
            let limit = shared.config.max_message_size;
            // Read at most one byte past the limit; a larger body is never buffered. A body that
            // cannot be read is answered the same way (nobody is left to read the answer).
            let Ok(body) = axum::body::to_bytes(body, limit.saturating_add(1)).await else {
                return too_large(limit);
            };
            if body.len() > limit {
                return too_large(limit);
            }
            let posted = match shared.live().get(&id) {
                Some(live) => live.post(frame_of(body), shared.config.max_queued_bytes),
                None => Posted::Gone,
            };
            match posted {
                Posted::Queued => StatusCode::OK.into_response(),
                // The management API's model: LimitExceededException, "The client is sending
                // more than the allowed number of requests per unit of time or the WebSocket
                // client side buffer is full." Never a 200 for a message that would be
                // buffered without bound.
                Posted::Full => aws_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "LimitExceededException",
                    "The WebSocket client side buffer is full",
                ),
                Posted::Gone => gone(),
            }
        }
        Method::GET => {
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
        Method::DELETE => {
            // Removed at once: from now on the connection is gone for POST, GET and DELETE,
            // while its loop closes the socket (or drops it, if the client does not read).
            match shared.live().remove(&id) {
                Some(live) if live.close(1000, "Connection closed by the management API") => {
                    StatusCode::NO_CONTENT.into_response()
                }
                _ => gone(),
            }
        }
        _ => {
            let mut response = aws_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowedException",
                "Method not allowed; @connections accepts GET, POST and DELETE",
            );
            response.headers_mut().insert(
                header::ALLOW,
                header::HeaderValue::from_static("GET, POST, DELETE"),
            );
            response
        }
    }
}

fn too_large(limit: usize) -> Response {
    aws_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLargeException",
        &format!("Message too long; the limit is {limit} bytes"),
    )
}
