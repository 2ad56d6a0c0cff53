//! Several messages of one connection while its routes are slow or hang (issue 18, item 7).
//!
//! API Gateway invokes each message's integration on its own: "Responses are asynchronous and
//! are not necessarily received by the client in the same order as the client's messages were
//! sent" (developer guide, "Invoking your backend integration"); it waits for an integration
//! 29 s at most. So a hung route holds up neither the connection's next message nor, past the
//! integration timeout, anything at all.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use stateless_ws::lambda::{self, Context};
use stateless_ws::{RouteResponse, WebSocketEvent};
use stateless_ws_local::{LocalGateway, LocalGatewayConfig, RunningGateway};
use tokio_tungstenite::tungstenite::Message;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `$default` answers `done {ms}` after the message's milliseconds; `hang` never answers.
async fn gateway(config: LocalGatewayConfig) -> RunningGateway {
    let route = lambda::service(|event: WebSocketEvent, _: Context| async move {
        let WebSocketEvent::Message(message) = &event else {
            return Ok(RouteResponse::ok());
        };
        let text = message.body_text().unwrap().into_owned();
        if text == "hang" {
            std::future::pending::<()>().await;
        }
        let ms: u64 = text.parse().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(RouteResponse::text(200, format!("done {ms}")))
    });
    LocalGateway::new(config)
        .default_handler(route)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn next_text(ws: &mut Client) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_hung_route_does_not_block_the_next_message() {
    let mut config = LocalGatewayConfig::default();
    config.shutdown_grace = Duration::from_millis(200);
    let gateway = gateway(config).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(gateway.ws_url())
        .await
        .unwrap();
    ws.send(Message::text("hang")).await.unwrap();
    let started = Instant::now();
    ws.send(Message::text("10")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "done 10");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(ws);
    let report = gateway.shutdown().await;
    assert_eq!(report.unfinished, 1, "the hung handler is still running");
}

#[tokio::test]
async fn a_hung_route_times_out_as_on_api_gateway_and_frees_its_slot() {
    let mut config = LocalGatewayConfig::default();
    // One route at a time: without the integration timeout the hung route would hold the
    // connection's only slot for ever, and the next message would never be read.
    config.max_routes_in_flight = 1;
    config.integration_timeout = Duration::from_millis(500);
    config.shutdown_grace = Duration::from_millis(200);
    let gateway = gateway(config).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(gateway.ws_url())
        .await
        .unwrap();
    let started = Instant::now();
    ws.send(Message::text("hang")).await.unwrap();
    ws.send(Message::text("10")).await.unwrap();
    let timed_out: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(timed_out["message"], "Endpoint request timed out");
    assert!(timed_out["requestId"].is_string(), "{timed_out}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(next_text(&mut ws).await, "done 10");
    drop(ws);
    // The handler was not cancelled: Lambda goes on when API Gateway stops waiting.
    let report = gateway.shutdown().await;
    assert_eq!(report.unfinished, 1, "{report:?}");
}
