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
use stateless_ws::lambda::{self, Context, RouteHandler};
use stateless_ws::store::{ConnectionStore, ConnectionStoreExt, InMemoryStore};
use stateless_ws::{Membership, RoomId, RouteResponse, WebSocketEvent};
use stateless_ws_local::{LocalGateway, LocalGatewayConfig, RunningGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const WAIT: Duration = Duration::from_secs(10);

fn lobby() -> RoomId {
    RoomId::new("lobby").unwrap()
}

/// `$connect` joins the lobby; `$disconnect` removes the connection.
fn lobby_routes(store: &Arc<InMemoryStore>) -> (impl RouteHandler, impl RouteHandler) {
    let s = Arc::clone(store);
    let connect = lambda::service(move |event: WebSocketEvent, _: Context| {
        let store = Arc::clone(&s);
        async move {
            let WebSocketEvent::Connect(connect) = event else {
                return Ok(RouteResponse::error(400, "not a connect"));
            };
            let record = Membership::for_connect(&connect, lobby()).unwrap();
            store.join(&record).await.unwrap();
            Ok(RouteResponse::ok())
        }
    });
    let s = Arc::clone(store);
    let disconnect = lambda::service(move |event: WebSocketEvent, _: Context| {
        let store = Arc::clone(&s);
        async move {
            store.disconnect(event.connection_id()).await.unwrap();
            Ok(RouteResponse::ok())
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
    let relay = lambda::service(move |event: WebSocketEvent, _: Context| {
        let broadcaster = broadcaster.clone();
        let reports = Arc::clone(&r);
        async move {
            let WebSocketEvent::Message(message) = &event else {
                return Ok(RouteResponse::ok());
            };
            let payload = Payload::text(message.body_text().unwrap()).unwrap();
            let report = broadcaster
                .broadcast(&lobby(), &payload, Some(event.connection_id()))
                .await
                .unwrap();
            reports.lock().unwrap().push(format!("{report:?}"));
            Ok(RouteResponse::ok())
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
    assert_eq!(
        knocks.load(Ordering::SeqCst),
        0,
        "{:?}",
        reports.lock().unwrap()
    );
    gateway.shutdown().await;
}

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A gateway whose `$connect` joins the lobby and `$disconnect` leaves it, with `config`.
async fn lobby_gateway(config: LocalGatewayConfig) -> (RunningGateway, Arc<InMemoryStore>) {
    let store = Arc::new(InMemoryStore::new());
    let (connect, disconnect) = lobby_routes(&store);
    let gateway = LocalGateway::new(config)
        .route("$connect", connect)
        .route("$disconnect", disconnect)
        .route(
            "$default",
            lambda::service(|_: WebSocketEvent, _: Context| async { Ok(RouteResponse::ok()) }),
        )
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (gateway, store)
}

/// A WebSocket client and its connection id (from the lobby's records).
async fn lobby_client(
    gateway: &RunningGateway,
    store: &InMemoryStore,
) -> (Client, stateless_ws::ConnectionId) {
    let before: Vec<_> = store.room_connections(&lobby()).await.unwrap();
    let (ws, _) = tokio_tungstenite::connect_async(gateway.ws_url())
        .await
        .unwrap();
    let after = store.room_connections(&lobby()).await.unwrap();
    let id = after
        .into_iter()
        .map(|m| m.connection_id)
        .find(|id| !before.iter().any(|m| &m.connection_id == id))
        .unwrap();
    (ws, id)
}

async fn management_client(gateway: &RunningGateway) -> aws_sdk_apigatewaymanagement::Client {
    let sdk = common::local_sdk_config().await;
    let config = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
        .endpoint_url(gateway.management_endpoint())
        .build();
    aws_sdk_apigatewaymanagement::Client::from_conf(config)
}

/// The error code and HTTP status of an SDK error.
fn code_and_status<E>(err: &aws_sdk_apigatewaymanagement::error::SdkError<E>) -> (String, u16)
where
    E: aws_sdk_apigatewaymanagement::error::ProvideErrorMetadata + std::fmt::Debug,
{
    use aws_sdk_apigatewaymanagement::error::ProvideErrorMetadata as _;
    let status = err.raw_response().map_or(0, |r| r.status().as_u16());
    (err.code().unwrap_or("").to_owned(), status)
}

// 5. Malformed ids, large bodies, bytes that are not UTF-8, wrong methods: AWS-style answers.
#[tokio::test]
async fn management_api_answers_like_aws() {
    let (gateway, store) = lobby_gateway(LocalGatewayConfig::default()).await;
    let api = management_client(&gateway).await;
    let (mut ws, id) = lobby_client(&gateway, &store).await;

    // A malformed connection id is the caller's mistake: 400 BadRequestException, not 410.
    let err = api
        .post_to_connection()
        .connection_id("not an id")
        .data(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_status(&err),
        ("BadRequestException".to_owned(), 400)
    );
    let err = api
        .get_connection()
        .connection_id("a b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_status(&err),
        ("BadRequestException".to_owned(), 400)
    );
    // A well-formed id of no open connection is still 410 GoneException.
    let err = api
        .delete_connection()
        .connection_id("AAAAAAAAAAA=")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_gone_exception(),
        "{err:?}"
    );

    // Too large, just over the limit and far over axum's 2 MB default body limit: 413 with the
    // error type the SDK maps.
    for size in [131_073, 3 << 20] {
        let err = api
            .post_to_connection()
            .connection_id(id.as_str())
            .data(vec![b'a'; size].into())
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error()
                .unwrap()
                .is_payload_too_large_exception(),
            "{size}: {err:?}"
        );
    }

    // Bytes that are not UTF-8 arrive unchanged, in a binary frame; text stays text.
    let bytes = vec![0xff, 0xfe, b'h', b'i', 0x80];
    api.post_to_connection()
        .connection_id(id.as_str())
        .data(bytes.clone().into())
        .send()
        .await
        .unwrap();
    api.post_to_connection()
        .connection_id(id.as_str())
        .data(b"caf\xc3\xa9".to_vec().into())
        .send()
        .await
        .unwrap();
    let first = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first, Message::binary(bytes));
    let second = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second, Message::text("café"));

    // Raw HTTP: every error carries x-amzn-ErrorType and a JSON message.
    let addr = gateway.local_addr();
    let cases: [(&str, u16, &str); 5] = [
        (
            "PUT /local/@connections/AAAAAAAAAAA= HTTP/1.1",
            405,
            "methodnotallowedexception",
        ),
        (
            "GET /local/@connections/%FF%FE HTTP/1.1",
            400,
            "badrequestexception",
        ),
        (
            "GET /local/@connections/a%20b HTTP/1.1",
            400,
            "badrequestexception",
        ),
        (
            "GET /local/@connections/ HTTP/1.1",
            403,
            "forbiddenexception",
        ),
        (
            "GET /local/nothing/here HTTP/1.1",
            403,
            "forbiddenexception",
        ),
    ];
    for (line, status, kind) in cases {
        let request =
            format!("{line}\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        let (got, head, body) = raw_http(addr, request.as_bytes()).await;
        assert_eq!(got, status, "{line}: {head}");
        assert!(
            head.contains(&format!("x-amzn-errortype: {kind}")),
            "{line}: {head}"
        );
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(json["message"].is_string(), "{line}: {json}");
    }
    // A large body sent raw, with no content-length checks on the client side.
    let mut request = format!(
        "POST /local/@connections/{id} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        3 << 20
    )
    .into_bytes();
    request.extend(std::iter::repeat_n(b'a', 3 << 20));
    let (got, head, _) = raw_http(addr, &request).await;
    assert_eq!(got, 413, "{head}");
    assert!(
        head.contains("x-amzn-errortype: payloadtoolargeexception"),
        "{head}"
    );
    gateway.shutdown().await;
}

/// A gateway whose `$disconnect` sleeps 0–1.8 s (by arrival order) before leaving the lobby.
async fn slow_disconnect_gateway(
    config: LocalGatewayConfig,
) -> (RunningGateway, Arc<InMemoryStore>) {
    let store = Arc::new(InMemoryStore::new());
    let (connect, _) = lobby_routes(&store);
    let s = Arc::clone(&store);
    let order = Arc::new(AtomicUsize::new(0));
    let disconnect = lambda::service(move |event: WebSocketEvent, _: Context| {
        let store = Arc::clone(&s);
        let n = order.fetch_add(1, Ordering::SeqCst) as u64;
        async move {
            tokio::time::sleep(Duration::from_millis((n * 95) % 1_900)).await;
            store.disconnect(event.connection_id()).await.unwrap();
            Ok(RouteResponse::ok())
        }
    });
    let gateway = LocalGateway::new(config)
        .route("$connect", connect)
        .route("$disconnect", disconnect)
        .route(
            "$default",
            lambda::service(|_: WebSocketEvent, _: Context| async { Ok(RouteResponse::ok()) }),
        )
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (gateway, store)
}

// 3. shutdown() waits for every $disconnect, within its grace period, and says what it left.
#[tokio::test]
async fn shutdown_waits_for_every_disconnect() {
    let (gateway, store) = slow_disconnect_gateway(LocalGatewayConfig::default()).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(
            tokio_tungstenite::connect_async(gateway.ws_url())
                .await
                .unwrap()
                .0,
        );
    }
    assert_eq!(store.room_connections(&lobby()).await.unwrap().len(), 20);
    let report = gateway.shutdown().await;
    assert_eq!(report.open_connections, 20);
    assert_eq!(report.unfinished, 0);
    let left = store.room_connections(&lobby()).await.unwrap();
    assert!(
        left.is_empty(),
        "{} records left after shutdown",
        left.len()
    );
}

#[tokio::test]
async fn shutdown_reports_disconnects_cut_by_the_grace_period() {
    let mut config = LocalGatewayConfig::default();
    config.shutdown_grace = Duration::from_millis(500);
    let (gateway, store) = slow_disconnect_gateway(config).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(
            tokio_tungstenite::connect_async(gateway.ws_url())
                .await
                .unwrap()
                .0,
        );
    }
    let started = std::time::Instant::now();
    let report = gateway.shutdown().await;
    // Generous: the grace is 0.5 s, the slowest handler 1.8 s.
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    let left = store.room_connections(&lobby()).await.unwrap().len();
    assert!(
        report.unfinished >= 1 && report.unfinished >= left,
        "{report:?}, {left} left"
    );
}

// 4. Handshakes abandoned at random moments: every $connect runs to completion, and every
// connection it accepted gets its $disconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_handshakes_leave_no_records() {
    let store = Arc::new(InMemoryStore::new());
    let s = Arc::clone(&store);
    // Writes its record first, then works a little longer (as a Lambda whose PutItem has
    // landed while it prepares its answer).
    let connect = lambda::service(move |event: WebSocketEvent, _: Context| {
        let store = Arc::clone(&s);
        async move {
            let WebSocketEvent::Connect(connect) = event else {
                return Ok(RouteResponse::error(400, "not a connect"));
            };
            store
                .join(&Membership::for_connect(&connect, lobby()).unwrap())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..30))).await;
            Ok(RouteResponse::ok())
        }
    });
    let (_, disconnect) = lobby_routes(&store);
    let gateway = LocalGateway::new(LocalGatewayConfig::default())
        .route("$connect", connect)
        .route("$disconnect", disconnect)
        .route(
            "$default",
            lambda::service(|_: WebSocketEvent, _: Context| async { Ok(RouteResponse::ok()) }),
        )
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = gateway.local_addr();
    let request = format!(
        "GET /local HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    );
    let mut clients = Vec::new();
    for i in 0..100 {
        let request = request.clone();
        clients.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            if i % 2 == 0 {
                // Reset rather than close (a zero linger does not block on drop).
                #[allow(deprecated)]
                stream.set_linger(Some(Duration::ZERO)).unwrap();
            }
            let mut stream = stream;
            stream.write_all(request.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..40))).await;
            drop(stream);
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let report = gateway.shutdown().await;
    assert_eq!(report.unfinished, 0);
    let left = store.room_connections(&lobby()).await.unwrap();
    assert!(left.is_empty(), "{} of 100 records left", left.len());
}

/// A client that completes the WebSocket handshake and then never reads (a small receive
/// buffer, so that the server's sends block soon).
async fn stuck_client(gateway: &RunningGateway) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4_096).unwrap();
    let mut stream = socket.connect(gateway.local_addr()).await.unwrap();
    let request = format!(
        "GET /local HTTP/1.1\r\nhost: {}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
        gateway.local_addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

/// Posts 100 KB messages to `id` until one is refused; (accepted, the refusal's code and status).
async fn flood(
    api: &aws_sdk_apigatewaymanagement::Client,
    id: &stateless_ws::ConnectionId,
    max: usize,
) -> (usize, Option<(String, u16)>) {
    let data = vec![b'x'; 100_000];
    for accepted in 0..max {
        let sent = api
            .post_to_connection()
            .connection_id(id.as_str())
            .data(data.clone().into())
            .send()
            .await;
        if let Err(err) = sent {
            return (accepted, Some(code_and_status(&err)));
        }
    }
    (max, None)
}

/// Waits until the lobby is empty (the $disconnect ran); how long that took.
async fn until_disconnected(store: &InMemoryStore) -> Duration {
    let started = std::time::Instant::now();
    tokio::time::timeout(WAIT, async {
        while !store.room_connections(&lobby()).await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("$disconnect ran");
    started.elapsed()
}

/// Reads until the server closes the TCP connection (EOF or reset) after draining what it sent.
async fn until_closed(stream: &mut TcpStream) {
    let mut buf = vec![0u8; 1 << 16];
    tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server closed the TCP connection");
}

// 2. A client that stops reading: bounded buffer (429 LimitExceededException), and DELETE,
// the idle and maximum-duration limits and shutdown still act while a send is stuck.
#[tokio::test]
async fn client_that_stops_reading_is_bounded_and_deletable() {
    let mut config = LocalGatewayConfig::default();
    config.send_timeout = Duration::from_secs(60);
    let (gateway, store) = lobby_gateway(config).await;
    let api = management_client(&gateway).await;
    let mut stuck = stuck_client(&gateway).await;
    let id = store.room_connections(&lobby()).await.unwrap()[0]
        .connection_id
        .clone();

    let (accepted, refused) = flood(&api, &id, 600).await;
    // What the kernel's socket buffers absorb plus 1 MiB of queue, far from all 600 (60 MB).
    assert!(accepted < 100, "{accepted} of 600 posts of 100 KB accepted");
    assert_eq!(refused, Some(("LimitExceededException".to_owned(), 429)));

    api.delete_connection()
        .connection_id(id.as_str())
        .send()
        .await
        .unwrap();
    let took = until_disconnected(&store).await;
    assert!(took < Duration::from_secs(5), "$disconnect after {took:?}");
    until_closed(&mut stuck).await;
    let err = api
        .delete_connection()
        .connection_id(id.as_str())
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_gone_exception(),
        "{err:?}"
    );
    let report = gateway.shutdown().await;
    assert_eq!(report.unfinished, 0);
}

#[tokio::test]
async fn idle_and_maximum_duration_close_a_client_that_stops_reading() {
    for (idle, max) in [(1, 60), (60, 2)] {
        let mut config = LocalGatewayConfig::default();
        config.send_timeout = Duration::from_secs(60);
        config.idle_timeout = Duration::from_secs(idle);
        config.max_connection_duration = Duration::from_secs(max);
        let (gateway, store) = lobby_gateway(config).await;
        let api = management_client(&gateway).await;
        let started = std::time::Instant::now();
        let mut stuck = stuck_client(&gateway).await;
        let id = store.room_connections(&lobby()).await.unwrap()[0]
            .connection_id
            .clone();
        let (_, refused) = flood(&api, &id, 600).await;
        assert!(refused.is_some());
        until_disconnected(&store).await;
        let took = started.elapsed();
        // Generous bounds on a loaded machine: the limit fired, long before the send timeout.
        assert!(
            took < Duration::from_secs(idle.min(max) + 4),
            "idle {idle} s, max {max} s: closed after {took:?}"
        );
        until_closed(&mut stuck).await;
        gateway.shutdown().await;
    }
}

#[tokio::test]
async fn send_timeout_and_shutdown_drop_a_client_that_stops_reading() {
    // The send timeout alone.
    let mut config = LocalGatewayConfig::default();
    config.send_timeout = Duration::from_millis(500);
    let (gateway, store) = lobby_gateway(config).await;
    let api = management_client(&gateway).await;
    let mut stuck = stuck_client(&gateway).await;
    let id = store.room_connections(&lobby()).await.unwrap()[0]
        .connection_id
        .clone();
    flood(&api, &id, 600).await;
    until_disconnected(&store).await;
    until_closed(&mut stuck).await;
    gateway.shutdown().await;

    // Shutdown with a send stuck: returns within its grace period, $disconnect done.
    let mut config = LocalGatewayConfig::default();
    config.send_timeout = Duration::from_secs(60);
    config.shutdown_grace = Duration::from_secs(3);
    let (gateway, store) = lobby_gateway(config).await;
    let api = management_client(&gateway).await;
    let _stuck = stuck_client(&gateway).await;
    let id = store.room_connections(&lobby()).await.unwrap()[0]
        .connection_id
        .clone();
    flood(&api, &id, 600).await;
    let started = std::time::Instant::now();
    let report = gateway.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.unfinished, 0);
    assert!(store.room_connections(&lobby()).await.unwrap().is_empty());
}

// A post to a connection still in its `$connect` is refused with 410 Gone, as on AWS (the
// connection is established only when `$connect` returns), and the connection then opens
// normally: presence relies on it (it never posts to the entering connection, and spares
// young connections answering 410 from its cleanup).
#[tokio::test]
async fn a_post_during_connect_is_gone_as_on_aws() {
    let sender = Arc::new(ApiGatewaySender::new(&common::local_sdk_config().await));
    let during = Arc::new(std::sync::Mutex::new(None));
    let (s, d) = (Arc::clone(&sender), Arc::clone(&during));
    let connect = lambda::service(move |event: WebSocketEvent, _: Context| {
        let (sender, during) = (Arc::clone(&s), Arc::clone(&d));
        async move {
            let WebSocketEvent::Connect(connect) = event else {
                return Ok(RouteResponse::error(400, "not a connect"));
            };
            let record = Membership::for_connect(&connect, lobby()).unwrap();
            let target = stateless_ws::broadcast::Target::from(&record);
            let result = stateless_ws::broadcast::ConnectionSender::post(
                sender.as_ref(),
                &target,
                &Payload::text("too early").unwrap(),
            )
            .await;
            *during.lock().unwrap() = Some((target, result));
            Ok(RouteResponse::ok())
        }
    });
    let gateway = LocalGateway::new(LocalGatewayConfig::default())
        .route("$connect", connect)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (mut ws, response) = tokio_tungstenite::connect_async(gateway.ws_url())
        .await
        .unwrap();
    assert_eq!(response.status(), 101, "the connection opens anyway");
    let (target, result) = during.lock().unwrap().take().unwrap();
    assert!(
        matches!(result, Err(stateless_ws::Error::Gone { .. })),
        "{result:?}"
    );
    // Once `$connect` has returned, the same post is delivered.
    stateless_ws::broadcast::ConnectionSender::post(
        sender.as_ref(),
        &target,
        &Payload::text("now").unwrap(),
    )
    .await
    .unwrap();
    let got = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, Message::text("now"));
    gateway.shutdown().await;
}

/// A gateway whose `$default` sleeps as many milliseconds as the message says, then answers
/// `done {ms}`; a message `big {n}` is answered at once with `n` bytes.
async fn slow_route_gateway(config: LocalGatewayConfig) -> (RunningGateway, Arc<InMemoryStore>) {
    let store = Arc::new(InMemoryStore::new());
    let (connect, disconnect) = lobby_routes(&store);
    let slow = lambda::service(|event: WebSocketEvent, _: Context| async move {
        let WebSocketEvent::Message(message) = &event else {
            return Ok(RouteResponse::ok());
        };
        let text = message.body_text().unwrap().into_owned();
        if let Some(n) = text.strip_prefix("big ") {
            return Ok(RouteResponse::text(200, "x".repeat(n.parse().unwrap())));
        }
        let ms: u64 = text.parse().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(RouteResponse::text(200, format!("done {ms}")))
    });
    let gateway = LocalGateway::new(config)
        .route("$connect", connect)
        .route("$disconnect", disconnect)
        .route("$default", slow)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (gateway, store)
}

/// The next text frame, or `None` when the connection closed first.
async fn next_text(ws: &mut Client) -> Option<String> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Text(text))) => return Some(text.to_string()),
            Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
            Some(Ok(_)) => {}
        }
    }
}

// Issue 17, item 10: a route that takes 5 s holds up nothing of its connection.
#[tokio::test]
async fn a_running_route_does_not_block_its_connection() {
    let (gateway, store) = slow_route_gateway(LocalGatewayConfig::default()).await;
    let api = management_client(&gateway).await;
    let (mut ws, id) = lobby_client(&gateway, &store).await;
    ws.send(Message::text("5000")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A post while the route runs reaches the client at once.
    let started = std::time::Instant::now();
    api.post_to_connection()
        .connection_id(id.as_str())
        .data(aws_sdk_apigatewaymanagement::primitives::Blob::new(
            "posted",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await.as_deref(), Some("posted"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "post delivered after {:?}",
        started.elapsed()
    );
    // A second message's route runs beside the first, and answers first.
    ws.send(Message::text("10")).await.unwrap();
    assert_eq!(next_text(&mut ws).await.as_deref(), Some("done 10"));
    // DELETE closes the socket and runs $disconnect at once.
    let started = std::time::Instant::now();
    api.delete_connection()
        .connection_id(id.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, None);
    let closed = started.elapsed();
    let disconnected = until_disconnected(&store).await + closed;
    assert!(closed < Duration::from_secs(2), "closed after {closed:?}");
    assert!(
        disconnected < Duration::from_secs(2),
        "$disconnect after {disconnected:?}"
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn idle_timeout_and_shutdown_act_while_a_route_runs() {
    let mut config = LocalGatewayConfig::default();
    config.idle_timeout = Duration::from_secs(1);
    config.shutdown_grace = Duration::from_secs(2);
    let (gateway, store) = slow_route_gateway(config).await;
    let (mut ws, _) = lobby_client(&gateway, &store).await;
    let started = std::time::Instant::now();
    ws.send(Message::text("5000")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, None);
    let closed = started.elapsed();
    assert!(
        closed < Duration::from_secs(3),
        "idle close after {closed:?}"
    );
    until_disconnected(&store).await;

    let (mut ws, _) = lobby_client(&gateway, &store).await;
    ws.send(Message::text("5000")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let shutdown = tokio::spawn(gateway.shutdown());
    assert_eq!(next_text(&mut ws).await, None);
    let closed = started.elapsed();
    assert!(
        closed < Duration::from_millis(1_500),
        "closed after {closed:?}"
    );
    let report = shutdown.await.unwrap();
    assert!(store.room_connections(&lobby()).await.unwrap().is_empty());
    // Shutdown waits for the route within its grace (2 s), and reports it still running.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(report.open_connections, 1);
    // Both 5 s routes (this connection's and the idle one's) still run.
    assert_eq!(report.unfinished, 2, "{report:?}");
}

#[tokio::test]
async fn routes_in_flight_per_connection_are_bounded() {
    let mut config = LocalGatewayConfig::default();
    config.max_routes_in_flight = 2;
    let (gateway, store) = slow_route_gateway(config).await;
    let (mut ws, _) = lobby_client(&gateway, &store).await;
    let started = std::time::Instant::now();
    for ms in ["800", "800", "10"] {
        ws.send(Message::text(ms)).await.unwrap();
    }
    // The third waits for a slot: it cannot answer before one of the 800 ms routes.
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(next_text(&mut ws).await.unwrap());
    }
    assert_ne!(answers[0], "done 10", "{answers:?}");
    assert!(answers.contains(&"done 10".to_owned()));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    gateway.shutdown().await;
}

// Issue 17, item 11: a route response over the message limit is not sent.
#[tokio::test]
async fn route_responses_over_the_message_limit_are_dropped() {
    let (gateway, store) = slow_route_gateway(LocalGatewayConfig::default()).await;
    let (mut ws, _) = lobby_client(&gateway, &store).await;
    for n in [1 << 20, 131_073] {
        ws.send(Message::text(format!("big {n}"))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        ws.send(Message::text("1")).await.unwrap();
        let got = next_text(&mut ws)
            .await
            .map(|t| t.chars().take(20).collect::<String>());
        assert_eq!(got.as_deref(), Some("done 1"), "after {n} bytes");
    }
    // Up to the limit, sent.
    ws.send(Message::text("big 131072")).await.unwrap();
    assert_eq!(next_text(&mut ws).await.map(|t| t.len()), Some(131_072));
    gateway.shutdown().await;
}

/// Reads one HTTP response (head and a `content-length` body) from a keep-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WAIT, async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the response");
            response.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&response).to_lowercase();
            if let Some(split) = text.find("\r\n\r\n") {
                let length: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if response.len() >= split + 4 + length {
                    return;
                }
            }
        }
    })
    .await
    .expect("a response in time");
    String::from_utf8_lossy(&response).into_owned()
}

// Issue 17, item 12: idle keep-alive connections to the management API are closed.
#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let mut config = LocalGatewayConfig::default();
    config.http_idle_timeout = Duration::from_millis(500);
    let (gateway, store) = lobby_gateway(config).await;
    let addr = gateway.local_addr();
    let request = b"GET /local/@connections/AAAAAAAAAAA= HTTP/1.1\r\nhost: x\r\n\r\n";

    let mut kept = TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    for _ in 0..2 {
        kept.write_all(request).await.unwrap();
        let response = read_response(&mut kept).await;
        assert!(response.starts_with("HTTP/1.1 410"), "{response}");
    }
    until_closed(&mut kept).await;
    let closed = started.elapsed();
    assert!(
        closed >= Duration::from_millis(400) && closed < Duration::from_secs(3),
        "idle keep-alive connection closed after {closed:?}"
    );
    // A connection that never sends a request, likewise.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    until_closed(&mut silent).await;

    // A WebSocket connection is not an idle HTTP connection.
    let (mut ws, _) = lobby_client(&gateway, &store).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    ws.send(Message::text("still here")).await.unwrap();
    ws.send(Message::Ping(vec![1].into())).await.unwrap();
    let pong = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert!(matches!(pong, Some(Ok(Message::Pong(_)))), "{pong:?}");
    gateway.shutdown().await;
}
