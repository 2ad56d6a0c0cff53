//! The README's "Your own Lambda" handler: the code printed there is `examples/lambda_handler.rs`
//! (checked here, character for character), and that handler works — in a unit-style test with
//! `Context::default()`, and through the local gateway with real WebSocket clients, behind the
//! `lambda::service` adapter as in Lambda.
#![cfg(all(feature = "lambda", feature = "dynamodb", feature = "apigw"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/lambda_handler.rs"]
mod lambda_handler;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lambda_handler::App;
use serde_json::Value;
use stateless_ws::broadcast::{ApiGatewaySender, Broadcaster, RecordingSender};
use stateless_ws::lambda::{self, Context};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::{Authorizer, ConnectEvent, ConnectionId, MessageEvent, RoomId};
use stateless_ws_local::{LocalGateway, LocalGatewayConfig};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

/// The first ```rust block under "## Your own Lambda".
fn readme_handler() -> String {
    let readme = include_str!("../README.md");
    let section = readme
        .find("## Your own Lambda")
        .expect("README has a \"Your own Lambda\" section");
    let start = readme[section..].find("```rust").expect("a rust block") + section;
    let code = readme[start..].find('\n').unwrap() + start + 1;
    let end = readme[code..].find("```\n").unwrap() + code;
    readme[code..end].to_owned()
}

#[test]
fn the_readme_prints_the_example_exactly() {
    let example = include_str!("../examples/lambda_handler.rs");
    let block = readme_handler();
    let body = example
        .split_once("\n\n")
        .map(|(header, body)| {
            assert!(header.lines().all(|l| l.starts_with("//!")), "{header}");
            body
        })
        .unwrap();
    assert_eq!(
        body, block,
        "README.md's handler and examples/lambda_handler.rs differ"
    );
    assert!(
        !block.lines().any(|l| l.starts_with("# ")),
        "no hidden lines"
    );
    let lines = block.lines().count();
    assert!(lines <= 80, "the README's handler grew to {lines} lines");
}

#[tokio::test]
async fn a_handler_test_with_the_default_context_delivers() {
    let store = Arc::new(InMemoryStore::new());
    let sender = RecordingSender::new();
    let app = App {
        store: store.clone(),
        broadcaster: Broadcaster::new(store.clone(), Arc::new(sender.clone())),
    };
    for (id, user) in [("alice=", "alice"), ("bob=", "bob")] {
        let mut connect = ConnectEvent::new(ConnectionId::new(id).unwrap());
        connect
            .query_string_parameters
            .insert("room".into(), "lobby".into());
        connect.context.authorizer = Some(Authorizer::new().with_principal_id(user));
        let reply = app
            .handle(connect.into(), Context::default())
            .await
            .unwrap();
        assert_eq!(reply.status_code, 200);
    }
    let alice = ConnectionId::new("alice=").unwrap();
    let reply = app
        .handle(
            MessageEvent::new(alice.clone(), "hi").into(),
            Context::default(),
        )
        .await
        .unwrap();
    assert_eq!(reply.body_json()["delivered"], 1, "{reply:?}");
    let to_bob = sender.outbox(&ConnectionId::new("bob=").unwrap());
    assert_eq!(to_bob.len(), 1);
    assert_eq!(to_bob[0].as_str(), "hi");
    assert!(sender.outbox(&alice).is_empty(), "the sender is excluded");

    // A bad room on $connect is a 400 through the adapter, not a Lambda error.
    let adapter = lambda::service(move |event, context| {
        let app = app.clone();
        async move { app.handle(event, context).await }
    });
    let mut connect = ConnectEvent::new(ConnectionId::new("carol=").unwrap());
    connect
        .query_string_parameters
        .insert("room".into(), "a#b".into());
    let reply = adapter
        .call(serde_json::to_value(&connect).unwrap(), Context::default())
        .await;
    assert_eq!(reply.status_code, 400);
    assert!(
        store
            .connection_rooms(&ConnectionId::new("carol=").unwrap())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn next_text(
    ws: &mut (impl StreamExt<Item = tokio_tungstenite::tungstenite::Result<Message>> + Unpin),
) -> String {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
        {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_readme_handler_behind_the_local_gateway() {
    let store = Arc::new(InMemoryStore::new());
    let sender = ApiGatewaySender::new(&common::local_sdk_config().await);
    let app = App {
        store: store.clone(),
        broadcaster: Broadcaster::new(store.clone(), Arc::new(sender)),
    };
    // As in Lambda: the gateway sends the event through JSON and the adapter.
    let gateway = LocalGateway::new(LocalGatewayConfig::default())
        .default_handler(lambda::service(move |event, context| {
            let app = app.clone();
            async move { app.handle(event, context).await }
        }))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();

    let (mut alice, _) = connect_async(format!("{}?room=lobby", gateway.ws_url()))
        .await
        .unwrap();
    let (mut bob, _) = connect_async(format!("{}?room=lobby", gateway.ws_url()))
        .await
        .unwrap();
    let lobby = RoomId::new("lobby").unwrap();
    assert_eq!(store.room_connections(&lobby).await.unwrap().len(), 2);

    alice.send(Message::text("hello, bob")).await.unwrap();
    assert_eq!(next_text(&mut bob).await, "hello, bob");
    let ack: Value = serde_json::from_str(&next_text(&mut alice).await).unwrap();
    assert_eq!(ack["delivered"], 1);

    // A refused $connect: no upgrade, nothing stored.
    assert!(
        connect_async(format!("{}?room=a%23b", gateway.ws_url()))
            .await
            .is_err()
    );

    bob.close(None).await.unwrap();
    tokio::time::timeout(WAIT, async {
        while store.room_connections(&lobby).await.unwrap().len() != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("bob's $disconnect removed his record");
    gateway.shutdown().await;
    assert!(store.room_connections(&lobby).await.unwrap().is_empty());
}
