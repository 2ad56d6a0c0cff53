//! The message routes as an AWS Lambda function: `join`, `leave`, `send`, `members`, `ping`,
//! `resume` and `$default`, selected by the body's `action` (the API's `RouteSelectionExpression`
//! is `$request.body.action`; `resume` has no route of its own in `template.yaml` yet and reaches
//! this function through `$default`). Each answers the caller through the route response, and `send`
//! fans out to the room through the API Gateway Management API, cleaning up gone connections.
//!
//! Build and deploy: `cargo lambda build --release --arm64 -p chat`, then
//! `sam deploy --template-file examples/chat/template.yaml`. Environment: `CONNECTIONS_TABLE`, and
//! optionally `APIGW_MANAGEMENT_URL` and the `CHAT_*` variables of `chat::env`.

use std::sync::Arc;

use chat::Chat;
use chat::lambda as support;
use stateless_ws::lambda::{self, Context, LambdaError};
use stateless_ws::{MessageEvent, Result, RouteResponse};

/// Takes `MessageEvent`s only: the adapter answers any other event with 400.
async fn handle(chat: Arc<Chat>, message: MessageEvent, context: Context) -> Result<RouteResponse> {
    chat.on_message(&message, lambda::deadline(&context)).await
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
    use stateless_ws::{ConnectionId, Membership, RoomId, UserId};

    /// One invocation as Lambda makes it: JSON through the library's adapter.
    async fn invoke(chat: Arc<Chat>, event: LambdaEvent<Value>) -> RouteResponse {
        support::adapter(chat, handle)
            .call(event.payload, event.context)
            .await
    }

    fn event(from: &str, body: &str) -> LambdaEvent<Value> {
        let payload = json!({
            "requestContext": {
                "routeKey": "$default", "eventType": "MESSAGE", "connectionId": from,
                "messageId": "abc", "domainName": "abc.execute-api.eu-west-1.amazonaws.com",
                "stage": "prod", "connectedAt": 1_700_000_000_000_i64,
                "requestTimeEpoch": 1_700_000_000_000_i64, "messageDirection": "IN"
            },
            "body": body,
            "isBase64Encoded": false
        });
        LambdaEvent::new(payload, Context::default())
    }

    #[tokio::test]
    async fn join_send_ping_through_the_lambda_entry_point() {
        let store = Arc::new(InMemoryStore::new());
        let sender = RecordingSender::new();
        let chat = Arc::new(Chat::new(
            store.clone(),
            Arc::new(sender.clone()),
            ChatConfig::default(),
        ));
        let lobby = RoomId::new("lobby").unwrap();
        for (c, u) in [("A=", "alice"), ("B=", "bob")] {
            store
                .join(
                    &Membership::new(ConnectionId::new(c).unwrap(), lobby.clone())
                        .with_user(UserId::new(u).unwrap()),
                )
                .await
                .unwrap();
        }
        let resp = invoke(
            chat.clone(),
            event("A=", r#"{"action":"send","room":"lobby","message":"hi"}"#),
        )
        .await;
        assert_eq!(resp.body_json()["delivered"], 1);
        let got: Value =
            serde_json::from_str(&sender.messages(&ConnectionId::new("B=").unwrap())[0]).unwrap();
        assert_eq!(
            got,
            json!({"type": "message", "room": "lobby", "userId": "alice", "message": "hi"})
        );
        let resp = invoke(chat.clone(), event("A=", r#"{"action":"ping"}"#)).await;
        assert_eq!(resp.body_json(), json!({"type": "pong"}));
        let resp = invoke(chat, event("A=", "not json")).await;
        assert_eq!(resp.status_code, 400);
    }
}
