//! The local API Gateway emulator with real WebSocket clients (tokio-tungstenite) on loopback,
//! the AWS SDK's management client, and the chat handlers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat::{Chat, ChatConfig, IdentitySource};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use stateless_ws::RouteResponse;
use stateless_ws::broadcast::{ApiGatewaySender, ConnectionSender, Payload, Target};
use stateless_ws::lambda::{self, Context};
use stateless_ws::store::InMemoryStore;
use stateless_ws::{ConnectionId, Error, UserId, WebSocketEvent};
use stateless_ws_local::{LocalGateway, LocalGatewayConfig, RunningGateway};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub(crate) type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

/// Every event the gateway produced, as JSON, in order.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Value>>>);

impl Recorder {
    fn events(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }

    fn of_type(&self, t: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["requestContext"]["eventType"] == t)
            .collect()
    }

    /// Records `event`.
    fn record(&self, event: &WebSocketEvent) {
        self.0
            .lock()
            .unwrap()
            .push(serde_json::to_value(event).unwrap());
    }

    async fn wait_for(&self, t: &str, n: usize) -> Vec<Value> {
        tokio::time::timeout(WAIT, async {
            loop {
                let found = self.of_type(t);
                if found.len() >= n {
                    return found;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {n} {t} event(s): {:?}", self.events()))
    }
}

struct Harness {
    gateway: RunningGateway,
    store: Arc<InMemoryStore>,
    chat: Arc<Chat>,
    events: Recorder,
}

async fn start(config: LocalGatewayConfig) -> Harness {
    start_with(config, |_| {}).await
}

async fn start_with(config: LocalGatewayConfig, tune: impl FnOnce(&mut ChatConfig)) -> Harness {
    let store = Arc::new(InMemoryStore::new());
    let sender = ApiGatewaySender::new(&common::local_sdk_config().await);
    let mut chat_config = ChatConfig::default();
    chat_config.identity = IdentitySource::InsecureQueryString {
        param: "userId".into(),
    };
    tune(&mut chat_config);
    let chat = Arc::new(Chat::new(store.clone(), Arc::new(sender), chat_config));
    let events = Recorder::default();
    let (c, recorder) = (chat.clone(), events.clone());
    // The chat behind the adapter a Lambda runs, recording each event it receives first.
    let on_event = lambda::service(move |event: WebSocketEvent, context: Context| {
        recorder.record(&event);
        let chat = c.clone();
        async move { Ok(chat.handle(&event, lambda::deadline(&context)).await) }
    });
    let gateway = LocalGateway::new(config)
        .default_handler(on_event.clone())
        .route("join", on_event.clone())
        .route("send", on_event)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    Harness {
        gateway,
        store,
        chat,
        events,
    }
}

impl Harness {
    async fn client(&self, query: &str) -> Client {
        let (ws, response) = connect_async(format!("{}?{query}", self.gateway.ws_url()))
            .await
            .unwrap();
        assert_eq!(response.status(), 101);
        ws
    }
}

/// The next message that is not a presence event.
async fn next_json(ws: &mut Client) -> Value {
    loop {
        let value = next_any(ws).await;
        if value["type"] != "presence" {
            return value;
        }
    }
}

/// The next presence event.
async fn next_presence(ws: &mut Client) -> Value {
    loop {
        let value = next_any(ws).await;
        if value["type"] == "presence" {
            return value;
        }
    }
}

/// The next text frame, whatever it is (shared with `policy`).
pub(crate) async fn next_any(ws: &mut Client) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = msg {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

async fn say(ws: &mut Client, body: Value) -> Value {
    ws.send(Message::text(body.to_string())).await.unwrap();
    next_json(ws).await
}

async fn close_code(ws: &mut Client) -> (CloseCode, String) {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => return (frame.code, frame.reason.to_string()),
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("error instead of a close frame: {e}"),
        }
    }
}

#[tokio::test]
async fn connect_join_send_leave_across_several_clients() {
    let h = start(LocalGatewayConfig::default()).await;
    let mut alice = h.client("room=general&userId=alice").await;
    let mut bob = h.client("room=general&userId=bob").await;
    let mut carol = h.client("room=other&userId=carol").await;
    h.events.wait_for("CONNECT", 3).await;

    let ack = say(
        &mut alice,
        json!({"action": "send", "room": "general", "message": "hi all"}),
    )
    .await;
    assert_eq!(ack["type"], "sent", "{ack}");
    assert_eq!(ack["delivered"], 1);
    assert_eq!(
        next_json(&mut bob).await,
        json!({"type": "message", "room": "general", "userId": "alice", "message": "hi all"})
    );

    // carol joins general: bob and alice are told; then carol sends and both receive it.
    let joined = say(&mut carol, json!({"action": "join", "room": "general"})).await;
    assert_eq!(joined["type"], "joined");
    for ws in [&mut alice, &mut bob] {
        let event = next_presence(ws).await;
        assert_eq!(
            (&event["event"], &event["room"]),
            (&json!("joined"), &json!("general"))
        );
        if event["members"][0]["userId"] == "carol" {
            continue;
        }
        // alice first heard bob connect
        assert_eq!(next_presence(ws).await["members"][0]["userId"], "carol");
    }
    say(
        &mut carol,
        json!({"action": "send", "room": "general", "message": "hello"}),
    )
    .await;
    assert_eq!(next_json(&mut alice).await["message"], "hello");
    assert_eq!(next_json(&mut bob).await["message"], "hello");

    bob.send(Message::text(
        json!({"action": "members", "room": "general"}).to_string(),
    ))
    .await
    .unwrap();
    let members = next_presence(&mut bob).await;
    assert_eq!(members["event"], "members");
    let mut users: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userId"].as_str().unwrap())
        .collect();
    users.sort_unstable();
    assert_eq!(users, ["alice", "bob", "carol"]);

    let left = say(&mut carol, json!({"action": "leave", "room": "general"})).await;
    assert_eq!(left["type"], "left");
    let event = next_presence(&mut alice).await;
    assert_eq!(
        (&event["event"], &event["members"][0]["memberId"]),
        (&json!("left"), &json!("user:carol"))
    );

    // Route selection: `join` and `send` had their own route keys, the rest went to $default.
    let routes: Vec<String> = h
        .events
        .of_type("MESSAGE")
        .iter()
        .map(|e| e["requestContext"]["routeKey"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(routes, ["send", "join", "send", "$default", "$default"]);

    alice.close(None).await.unwrap();
    bob.close(None).await.unwrap();
    carol.close(None).await.unwrap();
    h.events.wait_for("DISCONNECT", 3).await;
    // The recorder sees each event before the handler runs: wait for the handlers too.
    common::eventually("every $disconnect cleaned its records", async || {
        h.store.is_empty()
    })
    .await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn notify_user_reaches_each_connection_of_the_user() {
    let h = start(LocalGatewayConfig::default()).await;
    let mut tab1 = h.client("room=a&userId=alice").await;
    let mut tab2 = h.client("room=b&userId=alice").await;
    let mut bob = h.client("room=a&userId=bob").await;
    h.events.wait_for("CONNECT", 3).await;
    say(&mut tab1, json!({"action": "join", "room": "b"})).await; // tab1 in two rooms

    let payload = Payload::json(&json!({"type": "invoice.paid", "amount": 42})).unwrap();
    let report = h
        .chat
        .broadcaster()
        .notify_user(&UserId::new("alice").unwrap(), &payload)
        .await
        .unwrap();
    assert_eq!(report.delivered.len(), 2, "{report}");
    assert_eq!(next_json(&mut tab1).await["type"], "invoice.paid");
    assert_eq!(next_json(&mut tab2).await["amount"], 42);
    // tab1 got exactly one copy: the next thing it sees is the pong.
    assert_eq!(
        say(&mut tab1, json!({"action": "ping"})).await["type"],
        "pong"
    );
    assert_eq!(
        say(&mut bob, json!({"action": "ping"})).await["type"],
        "pong",
        "bob got nothing"
    );
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn the_sdk_management_client_posts_gets_and_deletes() {
    let h = start(LocalGatewayConfig::default()).await;
    let mut ws = h.client("room=r&userId=u").await;
    let connect = h.events.wait_for("CONNECT", 1).await;
    let id = connect[0]["requestContext"]["connectionId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 12);
    assert!(id.ends_with('='));

    // The raw AWS SDK client, unchanged, pointed at the local endpoint.
    let sdk = aws_sdk_apigatewaymanagement::Client::from_conf(
        aws_sdk_apigatewaymanagement::config::Builder::from(&common::local_sdk_config().await)
            .endpoint_url(h.gateway.management_endpoint())
            .build(),
    );
    sdk.post_to_connection()
        .connection_id(&id)
        .data(aws_sdk_apigatewaymanagement::primitives::Blob::new(
            "{\"from\":\"sdk\"}",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"from": "sdk"}));
    let info = sdk
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(info.identity().unwrap().source_ip(), Some("127.0.0.1"));
    assert!(info.connected_at().is_some() && info.last_active_at().is_some());

    // The crate's sender, too: oversize payloads, unknown ids.
    let sender = ApiGatewaySender::new(&common::local_sdk_config().await)
        .with_default_endpoint(&h.gateway.management_endpoint())
        .unwrap();
    let unknown = Target::new(ConnectionId::new("Nope0000000=").unwrap());
    assert!(matches!(
        sender.post(&unknown, &Payload::text("x").unwrap()).await,
        Err(Error::Gone { .. })
    ));
    assert!(matches!(
        sender.get(&unknown).await,
        Err(Error::Gone { .. })
    ));
    let err = sdk
        .post_to_connection()
        .connection_id(&id)
        .data(aws_sdk_apigatewaymanagement::primitives::Blob::new(
            vec![b'x'; 131_073],
        ))
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_payload_too_large_exception());

    sdk.delete_connection()
        .connection_id(&id)
        .send()
        .await
        .unwrap();
    let (code, _) = close_code(&mut ws).await;
    assert_eq!(u16::from(code), 1000);
    let disconnect = h.events.wait_for("DISCONNECT", 1).await;
    assert_eq!(disconnect[0]["requestContext"]["connectionId"], id.as_str());
    let gone = sdk
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(gone.into_service_error().is_gone_exception());
    common::eventually("the $disconnect cleaned the records", async || {
        h.store.is_empty()
    })
    .await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn a_client_killed_without_close_frame_gets_its_disconnect() {
    let h = start(LocalGatewayConfig::default()).await;
    let ws = h.client("room=r&userId=u").await;
    h.events.wait_for("CONNECT", 1).await;
    assert_eq!(h.store.len(), 1);
    // Drop the TCP connection under the WebSocket: no close frame.
    let MaybeTlsStream::Plain(tcp) = ws.into_inner() else {
        panic!("plain TCP expected")
    };
    drop(tcp);
    let disconnect = h.events.wait_for("DISCONNECT", 1).await;
    assert_eq!(
        disconnect[0]["requestContext"]["disconnectStatusCode"],
        1006
    );
    common::eventually("the store is clean", async || h.store.is_empty()).await;
    common::eventually("the gateway dropped the connection", async || {
        h.gateway.connection_count() == 0
    })
    .await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn oversize_and_binary_frames_close_the_connection() {
    let h = start(LocalGatewayConfig::default()).await;
    let mut big = h.client("room=r").await;
    big.send(Message::text("x".repeat(131_073))).await.unwrap();
    assert_eq!(u16::from(close_code(&mut big).await.0), 1009);

    let mut binary = h.client("room=r").await;
    binary.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(u16::from(close_code(&mut binary).await.0), 1003);

    // Exactly at the limit is fine: it reaches $default (not JSON) and gets an error reply.
    let mut edge = h.client("room=r").await;
    edge.send(Message::text("y".repeat(131_072))).await.unwrap();
    assert_eq!(next_json(&mut edge).await["type"], "error");

    let codes: Vec<i64> = h
        .events
        .wait_for("DISCONNECT", 2)
        .await
        .iter()
        .map(|e| {
            e["requestContext"]["disconnectStatusCode"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert!(codes.contains(&1009) && codes.contains(&1003), "{codes:?}");
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed_with_a_disconnect() {
    let mut config = LocalGatewayConfig::default();
    config.idle_timeout = Duration::from_millis(300);
    let h = start(config).await;
    let mut ws = h.client("room=r").await;
    let started = std::time::Instant::now();
    let (code, reason) = close_code(&mut ws).await;
    assert_eq!(u16::from(code), 1001);
    assert_eq!(reason, "Going away");
    assert!(started.elapsed() >= Duration::from_millis(250));
    let d = h.events.wait_for("DISCONNECT", 1).await;
    assert_eq!(d[0]["requestContext"]["disconnectStatusCode"], 1001);
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn a_refused_connect_keeps_its_status_without_upgrade() {
    let gateway = LocalGateway::new(LocalGatewayConfig::default())
        .route(
            "$connect",
            lambda::service(|c: stateless_ws::ConnectEvent, _: Context| async move {
                Ok(if c.query("token") == Some("good") {
                    RouteResponse::ok()
                } else {
                    RouteResponse::error(401, "no token")
                })
            }),
        )
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let err = connect_async(format!("{}?token=bad", gateway.ws_url()))
        .await
        .unwrap_err();
    match err {
        // The handler's 401, as API Gateway answers a $connect refused with 401 (issue 18).
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 401),
        other => panic!("expected an HTTP 401, got {other}"),
    }
    assert_eq!(gateway.connection_count(), 0);
    let (ok, _) = connect_async(format!("{}?token=good", gateway.ws_url()))
        .await
        .unwrap();
    drop(ok);
    gateway.shutdown().await;
}

#[tokio::test]
async fn events_parse_with_this_crate_and_aws_lambda_events() {
    let h = start(LocalGatewayConfig::default()).await;
    let mut ws = h.client("room=r&userId=u&x=1").await;
    say(&mut ws, json!({"action": "ping"})).await;
    ws.close(None).await.unwrap();
    h.events.wait_for("DISCONNECT", 1).await;
    let events = h.events.events();
    assert_eq!(events.len(), 3);
    for event in &events {
        let ctx = &event["requestContext"];
        for key in [
            "routeKey",
            "eventType",
            "connectionId",
            "connectedAt",
            "requestTimeEpoch",
            "requestTime",
            "requestId",
            "extendedRequestId",
            "messageDirection",
            "domainName",
            "stage",
            "apiId",
        ] {
            assert!(!ctx[key].is_null(), "{key} missing in {event}");
        }
        assert_eq!(ctx["identity"]["sourceIp"], "127.0.0.1");
        assert!(WebSocketEvent::try_from(event.clone()).is_ok());
        {
            let aws: aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest =
                serde_json::from_value(event.clone()).unwrap_or_else(|e| panic!("{e}: {event}"));
            assert_eq!(
                aws.request_context.connection_id.as_deref(),
                ctx["connectionId"].as_str()
            );
            assert!(WebSocketEvent::try_from(aws).is_ok());
        }
    }
    let connect = &events[0];
    assert_eq!(connect["queryStringParameters"]["x"], "1");
    assert!(
        connect["headers"]["sec-websocket-key"].is_string()
            || connect["headers"]["Sec-WebSocket-Key"].is_string()
    );
    let message = &events[1];
    assert!(message["requestContext"]["messageId"].is_string());
    assert_eq!(message["requestContext"]["routeKey"], "$default");
    let disconnect = &events[2];
    // A close frame without a status code, as API Gateway reports it.
    assert_eq!(disconnect["requestContext"]["disconnectStatusCode"], 1005);
    assert_eq!(
        disconnect["requestContext"]["disconnectReason"],
        "Client-side close frame status not set"
    );
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn shutdown_gives_every_open_connection_its_disconnect() {
    let h = start(LocalGatewayConfig::default()).await;
    let mut clients = Vec::new();
    for i in 0..5 {
        clients.push(h.client(&format!("room=r&userId=u{i}")).await);
    }
    h.events.wait_for("CONNECT", 5).await;
    let events = h.events.clone();
    let store = h.store.clone();
    h.gateway.shutdown().await;
    assert_eq!(events.of_type("DISCONNECT").len(), 5);
    assert!(store.is_empty());
    for ws in &mut clients {
        assert_eq!(u16::from(close_code(ws).await.0), 1001);
    }
}

/// 2,000 concurrent clients in one room; one broadcast reaches every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_2000_concurrent_clients() {
    const N: usize = 2_000;
    // Presence off: 2,000 connects announced to the room would be ~2,000,000 posts (N²).
    let h = start_with(LocalGatewayConfig::default(), |c| {
        c.presence_max_room_size = Some(0);
    })
    .await;
    let url = h.gateway.ws_url();
    let mut clients = Vec::with_capacity(N);
    let mut connecting = futures_util::stream::iter(0..N)
        .map(|i| {
            let url = url.clone();
            async move {
                connect_async(format!("{url}?room=crowd&userId=u{i}"))
                    .await
                    .unwrap()
                    .0
            }
        })
        .buffer_unordered(64);
    while let Some(ws) = connecting.next().await {
        clients.push(ws);
    }
    h.events.wait_for("CONNECT", N).await;
    let room = stateless_ws::RoomId::new("crowd").unwrap();
    let payload = Payload::text("{\"type\":\"announcement\"}").unwrap();
    let report = h
        .chat
        .broadcaster()
        .broadcast(&room, &payload, None)
        .await
        .unwrap();
    assert_eq!(report.delivered.len(), N, "{report}");
    let received = futures_util::future::join_all(clients.iter_mut().map(|ws| async move {
        matches!(
            tokio::time::timeout(WAIT, ws.next()).await,
            Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "{\"type\":\"announcement\"}"
        )
    }))
    .await;
    assert_eq!(received.iter().filter(|ok| **ok).count(), N, "none lost");
    h.gateway.shutdown().await;
}
