//! The local gateway against hostile clients: forged `Host` headers, clients that stop reading,
//! handshakes abandoned half-way, slow `$disconnect` handlers, and malformed management calls.
//! Real tokio-tungstenite clients and raw TCP on 127.0.0.1:0; small handlers written here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use stateless_ws::broadcast::{ApiGatewaySender, Broadcaster, Payload};
use stateless_ws::local::{Handler, LocalGateway, LocalGatewayConfig, RunningGateway, handler};
use stateless_ws::store::{ConnectionStore, ConnectionStoreExt, InMemoryStore};
use stateless_ws::{Membership, RoomId, RouteResponse, WebSocketEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const WAIT: Duration = Duration::from_secs(10);

fn lobby() -> RoomId {
    RoomId::new("lobby").unwrap()
}

/// `$connect` joins the lobby; `$disconnect` removes the connection.
fn lobby_routes(store: &Arc<InMemoryStore>) -> (Handler, Handler) {
    let s = Arc::clone(store);
    let connect = handler(move |event: WebSocketEvent| {
        let store = Arc::clone(&s);
        async move {
            let WebSocketEvent::Connect(connect) = event else {
                return RouteResponse::error(400, "not a connect");
            };
            let record = Membership::for_connect(&connect, lobby()).unwrap();
            store.join(&record).await.unwrap();
            RouteResponse::ok()
        }
    });
    let s = Arc::clone(store);
    let disconnect = handler(move |event: WebSocketEvent| {
        let store = Arc::clone(&s);
        async move {
            store.disconnect(event.connection_id()).await.unwrap();
            RouteResponse::ok()
        }
    });
    (connect, disconnect)
}

/// Sends `request` (a complete HTTP/1.1 request) and reads the response until the server
/// closes: (status, the head in lowercase, body).
async fn raw_http(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("a response in time")
        .unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&response[..split]).to_lowercase();
    let status = head[9..12].parse().unwrap();
    (status, head, response[split + 4..].to_vec())
}

// 1. The client's Host header must not decide where the server sends signed requests.
#[tokio::test]
async fn forged_host_header_does_not_redirect_management_calls() {
    // Where a hostile client would like the room's traffic to go.
    let forged = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let forged_addr = forged.local_addr().unwrap();
    let knocks = Arc::new(AtomicUsize::new(0));
    let k = Arc::clone(&knocks);
    tokio::spawn(async move {
        while let Ok((_stream, _)) = forged.accept().await {
            k.fetch_add(1, Ordering::SeqCst);
        }
    });

    let store = Arc::new(InMemoryStore::new());
    let (connect, disconnect) = lobby_routes(&store);
    let sender = Arc::new(ApiGatewaySender::new(&common::local_sdk_config().await));
    let broadcaster = Broadcaster::new(store.clone(), sender);
    let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
    let r = Arc::clone(&reports);
    let relay = handler(move |event: WebSocketEvent| {
        let broadcaster = broadcaster.clone();
        let reports = Arc::clone(&r);
        async move {
            let WebSocketEvent::Message(message) = &event else {
                return RouteResponse::ok();
            };
            let payload = Payload::text(message.body_text().unwrap()).unwrap();
            let report = broadcaster
                .broadcast(&lobby(), &payload, Some(event.connection_id()))
                .await
                .unwrap();
            reports.lock().unwrap().push(format!("{report:?}"));
            RouteResponse::ok()
        }
    });
    let gateway = LocalGateway::new(LocalGatewayConfig::default())
        .route("$connect", connect)
        .route("$disconnect", disconnect)
        .route("$default", relay)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();

    let mut request = gateway.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("host", forged_addr.to_string().parse().unwrap());
    let (mut mallory, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let (mut alice, _) = tokio_tungstenite::connect_async(gateway.ws_url())
        .await
        .unwrap();
    let records = store.room_connections(&lobby()).await.unwrap();
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(
            record.endpoint.as_deref(),
            Some(gateway.management_endpoint().as_str()),
            "the stored endpoint comes from the gateway, not from a Host header"
        );
    }

    alice.send(Message::text("hello room")).await.unwrap();
    let got = tokio::time::timeout(WAIT, mallory.next())
        .await
        .expect("the member gets the room's message")
        .unwrap()
        .unwrap();
    assert_eq!(got, Message::text("hello room"));
    assert_eq!(knocks.load(Ordering::SeqCst), 0, "{:?}", reports.lock().unwrap());
    gateway.shutdown().await;
}
