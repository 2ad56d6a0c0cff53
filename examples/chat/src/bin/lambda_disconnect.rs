//! The `$disconnect` route as an AWS Lambda function: removes the connection from every room.
//! Idempotent: clients that vanish make records disappear by TTL or by a broadcaster's stale
//! cleanup first, and that is fine.
//!
//! Build and deploy: `cargo lambda build --release --arm64 -p chat`, then
//! `sam deploy --template-file examples/chat/template.yaml`. Environment: `CONNECTIONS_TABLE`.

use std::sync::Arc;

use chat::Chat;
use chat::lambda as support;
use stateless_ws::lambda::{Context, LambdaError};
use stateless_ws::{DisconnectEvent, Result, RouteResponse};

/// Takes `DisconnectEvent`s only: the adapter answers any other event with 400.
async fn handle(
    chat: Arc<Chat>,
    disconnect: DisconnectEvent,
    _context: Context,
) -> Result<RouteResponse> {
    chat.on_disconnect(&disconnect).await
}

#[tokio::main]
async fn main() -> std::result::Result<(), LambdaError> {
    support::run(handle).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat::ChatConfig;
    use lambda_runtime::LambdaEvent;
    use serde_json::Value;
    use serde_json::json;
    use stateless_ws::broadcast::RecordingSender;
    use stateless_ws::store::{ConnectionStore, InMemoryStore};
    use stateless_ws::{ConnectionId, Membership, RoomId};

    /// One invocation as Lambda makes it: JSON through the library's adapter.
    async fn invoke(chat: Arc<Chat>, event: LambdaEvent<Value>) -> RouteResponse {
        support::adapter(chat, handle)
            .call(event.payload, event.context)
            .await
    }

    fn event() -> LambdaEvent<Value> {
        let payload = json!({
            "headers": {"Host": "abc.execute-api.eu-west-1.amazonaws.com"},
            "requestContext": {
                "routeKey": "$disconnect", "eventType": "DISCONNECT", "connectionId": "Conn1=",
                "disconnectStatusCode": 1001, "disconnectReason": "Going away",
                "domainName": "abc.execute-api.eu-west-1.amazonaws.com", "stage": "prod",
                "connectedAt": 1_700_000_000_000_i64, "requestTimeEpoch": 1_700_000_100_000_i64
            },
            "isBase64Encoded": false
        });
        LambdaEvent::new(payload, Context::default())
    }

    #[tokio::test]
    async fn removes_every_room_and_is_idempotent() {
        let store = Arc::new(InMemoryStore::new());
        let c = ConnectionId::new("Conn1=").unwrap();
        for r in ["a", "b", "c"] {
            store
                .join(&Membership::new(c.clone(), RoomId::new(r).unwrap()))
                .await
                .unwrap();
        }
        let other = ConnectionId::new("Other=").unwrap();
        store
            .join(&Membership::new(other.clone(), RoomId::new("a").unwrap()))
            .await
            .unwrap();
        let chat = Arc::new(Chat::new(
            store.clone(),
            Arc::new(RecordingSender::new()),
            ChatConfig::default(),
        ));

        assert_eq!(invoke(chat.clone(), event()).await.status_code, 200);
        assert!(store.connection_rooms(&c).await.unwrap().is_empty());
        assert_eq!(store.len(), 1, "other connections untouched");
        assert_eq!(
            invoke(chat, event()).await.status_code,
            200,
            "already gone is fine"
        );
    }

    #[tokio::test]
    async fn bad_input_is_a_400() {
        let chat = Arc::new(Chat::new(
            Arc::new(InMemoryStore::new()),
            Arc::new(RecordingSender::new()),
            ChatConfig::default(),
        ));
        let mut e = event();
        e.payload["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("connectionId");
        let resp = invoke(chat, e).await;
        assert_eq!(resp.status_code, 400);
        assert!(resp.body.unwrap().contains("requestContext.connectionId"));
    }
}
