//! The `$connect` route as an AWS Lambda function: records the connection in its first room
//! (query string `room`, default `general`) with a TTL; refuses (non-2xx) an invalid room name,
//! or — with `CHAT_REQUIRE_AUTH=true` — a connection without an authorized principal.
//!
//! Build and deploy: `cargo lambda build --release --arm64 -p chat`, then
//! `sam deploy --template-file examples/chat/template.yaml` (see `examples/chat/README.md`, "Deploy to AWS").
//! Locally, the same logic runs behind the local gateway. Environment: `CONNECTIONS_TABLE`
//! (required) and the optional `CHAT_*` variables of `chat::env`.

use std::sync::Arc;

use chat::Chat;
use chat::lambda as support;
use stateless_ws::lambda::{Context, LambdaError};
use stateless_ws::{ConnectEvent, Result, RouteResponse};

/// The handler: plain async code over its dependencies, tested without Lambda below. It takes
/// `ConnectEvent`s only: the adapter answers any other event with 400.
async fn handle(
    chat: Arc<Chat>,
    connect: ConnectEvent,
    _context: Context,
) -> Result<RouteResponse> {
    chat.on_connect(&connect).await
}

#[tokio::main]
async fn main() -> std::result::Result<(), LambdaError> {
    support::run(handle).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat::{ChatConfig, IdentitySource};
    use lambda_runtime::LambdaEvent;
    use serde_json::Value;
    use serde_json::json;
    use stateless_ws::broadcast::RecordingSender;
    use stateless_ws::store::{ConnectionStore, InMemoryStore};
    use stateless_ws::{ConnectionId, RoomId, UserId};

    /// One invocation as Lambda makes it: JSON through the library's adapter.
    async fn invoke(chat: Arc<Chat>, event: LambdaEvent<Value>) -> RouteResponse {
        support::adapter(chat, handle)
            .call(event.payload, event.context)
            .await
    }

    fn event(query: Value, authorizer: Value) -> LambdaEvent<Value> {
        let payload = json!({
            "headers": {"Host": "abc.execute-api.eu-west-1.amazonaws.com"},
            "queryStringParameters": query,
            "requestContext": {
                "routeKey": "$connect", "eventType": "CONNECT", "connectionId": "Conn1=",
                "domainName": "abc.execute-api.eu-west-1.amazonaws.com", "stage": "prod",
                "connectedAt": 1_700_000_000_000_i64, "requestTimeEpoch": 1_700_000_000_000_i64,
                "authorizer": authorizer,
            },
            "isBase64Encoded": false
        });
        LambdaEvent::new(payload, Context::default())
    }

    fn new_chat(config: ChatConfig) -> (Arc<InMemoryStore>, Arc<Chat>) {
        let store = Arc::new(InMemoryStore::new());
        let chat = Chat::new(store.clone(), Arc::new(RecordingSender::new()), config);
        (store, Arc::new(chat))
    }

    #[tokio::test]
    async fn registers_the_connection_with_the_authorized_user() {
        let (store, chat) = new_chat(ChatConfig::default());
        let resp = invoke(
            chat,
            event(json!({"room": "lobby"}), json!({"principalId": "alice"})),
        )
        .await;
        assert_eq!(resp.status_code, 200);
        let members = store
            .room_connections(&RoomId::new("lobby").unwrap())
            .await
            .unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].user_id.as_ref().unwrap(), "alice");
        assert_eq!(members[0].connected_at, Some(1_700_000_000));
        assert!(members[0].expires_at.is_some(), "a TTL is set");
        assert_eq!(
            members[0].endpoint.as_deref(),
            Some("https://abc.execute-api.eu-west-1.amazonaws.com/prod")
        );
    }

    #[tokio::test]
    async fn defaults_to_general_and_refuses_bad_rooms() {
        let (store, chat) = new_chat(ChatConfig::default());
        let ok = invoke(chat.clone(), event(Value::Null, Value::Null)).await;
        assert_eq!(ok.status_code, 200);
        assert_eq!(
            store
                .room_connections(&RoomId::new("general").unwrap())
                .await
                .unwrap()
                .len(),
            1
        );
        for bad in ["a#b", "", &"x".repeat(200)] {
            let resp = invoke(chat.clone(), event(json!({"room": bad}), Value::Null)).await;
            assert_eq!(resp.status_code, 400, "room {bad:?}");
            assert!(resp.body.unwrap().contains("room"));
        }
    }

    #[tokio::test]
    async fn refuses_unauthenticated_connections_when_required() {
        let mut config = ChatConfig::default();
        config.require_auth = true;
        let (store, chat) = new_chat(config);
        let resp = invoke(
            chat.clone(),
            event(json!({"userId": "mallory"}), Value::Null),
        )
        .await;
        assert_eq!(resp.status_code, 401, "the query string is no identity");
        assert!(store.is_empty());
        let resp = invoke(chat, event(Value::Null, json!({"principalId": "alice"}))).await;
        assert_eq!(resp.status_code, 200);
    }

    #[tokio::test]
    async fn query_string_identity_only_in_explicit_demo_mode() {
        let (store, chat) = new_chat(ChatConfig::default());
        invoke(chat, event(json!({"userId": "mallory"}), Value::Null)).await;
        let c = ConnectionId::new("Conn1=").unwrap();
        assert_eq!(
            store.connection_rooms(&c).await.unwrap()[0].user_id,
            None,
            "ignored by default"
        );

        let mut config = ChatConfig::default();
        config.identity = IdentitySource::InsecureQueryString {
            param: "userId".into(),
        };
        let (store, chat) = new_chat(config);
        invoke(chat, event(json!({"userId": "demo-user"}), Value::Null)).await;
        let alice = UserId::new("demo-user").unwrap();
        assert_eq!(store.user_connections(&alice).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_non_connect_event_is_a_400_naming_the_field() {
        let (_, chat) = new_chat(ChatConfig::default());
        let mut e = event(Value::Null, Value::Null);
        e.payload["requestContext"]["eventType"] = json!("MESSAGE");
        let resp = invoke(chat, e).await;
        assert_eq!(resp.status_code, 400);
        assert!(resp.body.unwrap().contains("requestContext.eventType"));
    }
}
