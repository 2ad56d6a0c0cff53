//! The Management API: `POST|GET|DELETE /{stage}/@connections/{id}`, answering errors the way
//! AWS does (`x-amzn-ErrorType`), so the AWS SDK's own client works against it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::connection::Command;
use super::{Shared, time};
use crate::ids::ConnectionId;

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
pub(super) async fn management(
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
