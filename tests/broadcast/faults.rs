//! One fault suite for both management API senders — the SDK's `ApiGatewaySender` and the lean
//! `SigV4Sender` — against a raw-TCP stand-in that answers every fault the management API (or a
//! broken network) can give: both must report each one as the same `Error`. Plus signatures
//! checked server-side, and the broadcaster over the lean sender.
#![cfg(all(feature = "apigw", feature = "dynamodb"))]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::config::timeout::TimeoutConfig;
use stateless_ws::broadcast::{
    ApiGatewaySender, BroadcastConfig, Broadcaster, ConnectionSender, Payload, SigV4Sender, Target,
};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::{ConnectionId, Error, Membership, RoomId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CALL_TIMEOUT: Duration = Duration::from_millis(400);
/// 1234567890 s: 2009-02-13T23:31:30Z, the time both senders sign with.
const SIGNING_TIME: u64 = 1_234_567_890;
const HUGE: usize = 8 << 20;

/// A request as the stand-in read it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    raw_path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A raw HTTP/1.1 server posing as the management API under `/prod`; what it answers depends on
/// the connection id (the last path segment). Keep-alive, as API Gateway.
#[derive(Clone)]
struct StandIn {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Per connection id: how many requests so far (for the broadcaster mixture).
    calls: Arc<Mutex<HashMap<String, usize>>>,
}

impl StandIn {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let this = Self {
            addr,
            seen: Arc::default(),
            calls: Arc::default(),
        };
        let server = this.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(server.clone().serve(stream));
            }
        });
        this
    }

    fn endpoint(&self) -> String {
        format!("http://{}/prod", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    async fn serve(self, mut stream: TcpStream) {
        let mut buf = Vec::new();
        loop {
            let Some(request) = read_request(&mut stream, &mut buf).await else {
                return;
            };
            let id = request.raw_path.rsplit('/').next().unwrap_or("").to_owned();
            let n = {
                let mut calls = self.calls.lock().unwrap();
                let n = calls.entry(id.clone()).or_default();
                *n += 1;
                *n
            };
            let method = request.method.clone();
            self.seen.lock().unwrap().push(request);
            let answer: Vec<u8> = match (id.as_str(), n) {
                ("hang", _) => {
                    std::future::pending::<()>().await;
                    return;
                }
                ("close", _) => return,
                ("garbage", _) => {
                    let _ = stream.write_all(b"HELLO THIS IS NOT HTTP\r\n\r\n").await;
                    return;
                }
                ("huge", _) => {
                    let head = format!(
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {HUGE}\r\n\r\n"
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let chunk = vec![b'x'; 64 * 1024];
                    for _ in 0..HUGE / chunk.len() {
                        if stream.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                ("huge-stall", _) => {
                    // A 500 whose 8 MiB body stops after 256 KiB: only a reader that stops
                    // early answers before the call timeout.
                    let head = format!(
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {HUGE}\r\n\r\n"
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&vec![b'x'; 256 * 1024]).await;
                    std::future::pending::<()>().await;
                    return;
                }
                ("get-garbage", _) => answer(200, None, "this is not json"),
                (other, n) => mixture_answer(other, n, &method),
            };
            if stream.write_all(&answer).await.is_err() {
                return;
            }
        }
    }
}

/// The answer for ids of the fault table and of the broadcaster mixture (`m{i}`).
fn mixture_answer(id: &str, n: usize, method: &str) -> Vec<u8> {
    match id {
        "gone-typed" => answer(410, Some("GoneException"), "{\"message\":null}"),
        "gone-bare" => answer(410, None, ""),
        "gone-url" => answer(
            400,
            Some("GoneException:http://internal.amazon.com/coral/com.amazonaws.gatewaymanagement/"),
            "{}",
        ),
        "limit" => answer(
            429,
            Some("LimitExceededException"),
            "{\"message\":\"slow\"}",
        ),
        "limit-body" => answer(
            400,
            None,
            "{\"__type\":\"com.amazonaws.gatewaymanagement#LimitExceededException\"}",
        ),
        "forbidden-code" => answer(400, None, "{\"code\":\"ForbiddenException\"}"),
        "too-large" => answer(413, Some("PayloadTooLargeException"), "{}"),
        "forbidden" => answer(
            403,
            Some("ForbiddenException"),
            "{\"message\":\"Forbidden\"}",
        ),
        "e500" => answer(500, None, "{\"message\":\"Internal server error\"}"),
        "e502" => answer(502, None, ""),
        "e503" => answer(503, None, "Service Unavailable"),
        "e400" => answer(400, Some("BadRequestException"), "{}"),
        _ if id.starts_with('m') => {
            // The broadcaster mixture: by index modulo 10, as tests/broadcast/mocks.rs.
            let i: usize = id[1..].parse().unwrap_or(9);
            match (i % 10, n) {
                (0 | 1, _) => answer(410, Some("GoneException"), "{}"),
                (2, 1) => answer(429, Some("LimitExceededException"), "{}"),
                (3, 1 | 2) => answer(503, None, ""),
                (4, _) => answer(500, None, ""),
                _ => answer(200, None, ""),
            }
        }
        _ if method == "GET" => answer(
            200,
            None,
            r#"{"connectedAt":"2026-11-26T10:00:00.000Z","identity":{"sourceIp":"203.0.113.7","userAgent":"ua"},"lastActiveAt":"2026-11-26T10:05:00.000Z"}"#,
        ),
        _ if method == "DELETE" => answer(204, None, ""),
        _ => answer(200, None, ""),
    }
}

fn answer(status: u16, error_type: Option<&str>, body: &str) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(kind) = error_type {
        head.push_str(&format!("x-amzn-ErrorType: {kind}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(body);
    head.into_bytes()
}

/// Reads one request (head, then `content-length` bytes of body); `None` at end of stream.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Seen> {
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, raw_path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap_or(0));
    buf.drain(..head_end + 4);
    while buf.len() < len {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf.drain(..len).collect();
    Some(Seen {
        method,
        raw_path,
        headers,
        body,
    })
}

/// What a caller can match on: the variant, and for `Delivery` its status and retry flag.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Ok,
    Gone,
    Throttled,
    PayloadTooLarge,
    Forbidden,
    Delivery {
        status: Option<u16>,
        retryable: bool,
    },
    OutcomeUnknown,
    Other(String),
}

fn outcome<T>(result: &Result<T, Error>) -> Kind {
    match result {
        Ok(_) => Kind::Ok,
        Err(Error::Gone { .. }) => Kind::Gone,
        Err(Error::Throttled { .. }) => Kind::Throttled,
        Err(Error::PayloadTooLarge { .. }) => Kind::PayloadTooLarge,
        Err(Error::Forbidden { .. }) => Kind::Forbidden,
        Err(Error::Delivery {
            status, retryable, ..
        }) => Kind::Delivery {
            status: *status,
            retryable: *retryable,
        },
        Err(Error::OutcomeUnknown { .. }) => Kind::OutcomeUnknown,
        Err(other) => Kind::Other(format!("{other:?}")),
    }
}

fn static_time() -> aws_smithy_async::time::StaticTimeSource {
    aws_smithy_async::time::StaticTimeSource::new(UNIX_EPOCH + Duration::from_secs(SIGNING_TIME))
}

async fn sdk_config(session_token: Option<&str>) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
            "test",
            "test",
            session_token.map(str::to_owned),
            None,
            "static",
        ))
        .time_source(static_time())
        .load()
        .await
}

/// Both senders on `endpoint`, with the same short call timeout: (name, sender).
async fn both(
    endpoint: &str,
    session_token: Option<&str>,
) -> Vec<(&'static str, Arc<dyn ConnectionSender>)> {
    let config = sdk_config(session_token).await;
    let sdk = ApiGatewaySender::from_builder(
        aws_sdk_apigatewaymanagement::config::Builder::from(&config)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(CALL_TIMEOUT)
                    .build(),
            ),
    )
    .with_default_endpoint(endpoint)
    .unwrap();
    let lean = SigV4Sender::new(&config)
        .unwrap()
        .with_call_timeout(CALL_TIMEOUT)
        .with_default_endpoint(endpoint)
        .unwrap();
    vec![
        ("ApiGatewaySender", Arc::new(sdk)),
        ("SigV4Sender", Arc::new(lean)),
    ]
}

fn target(id: &str) -> Target {
    Target::new(ConnectionId::new(id).unwrap())
}

/// Every fault, every method, both senders: the same outcome, and the one the table says.
#[tokio::test]
async fn both_senders_report_every_fault_alike() {
    use Kind::*;
    let stand_in = StandIn::start().await;
    let senders = both(&stand_in.endpoint(), None).await;
    let retryable = |status| Delivery {
        status: Some(status),
        retryable: true,
    };
    let table: Vec<(&str, Kind)> = vec![
        ("ok", Ok),
        ("gone-typed", Gone),
        ("gone-bare", Gone),
        ("gone-url", Gone),
        ("limit", Throttled),
        ("limit-body", Throttled),
        ("forbidden-code", Forbidden),
        ("too-large", PayloadTooLarge),
        ("forbidden", Forbidden),
        ("e500", retryable(500)),
        ("e502", retryable(502)),
        ("e503", retryable(503)),
        (
            "e400",
            Delivery {
                status: Some(400),
                retryable: false,
            },
        ),
        ("hang", OutcomeUnknown),
        ("close", OutcomeUnknown),
        ("garbage", OutcomeUnknown),
        ("huge", retryable(500)),
    ];
    let payload = Payload::text("{\"hello\":1}").unwrap();
    let mut mismatches = Vec::new();
    for (id, expected) in &table {
        for method in ["POST", "GET", "DELETE"] {
            for (name, sender) in &senders {
                let t = target(id);
                let started = std::time::Instant::now();
                let got = match method {
                    "POST" => outcome(&sender.post(&t, &payload).await),
                    "GET" => outcome(&sender.get(&t).await),
                    _ => outcome(&sender.delete(&t).await),
                };
                assert!(
                    started.elapsed() < CALL_TIMEOUT * 5,
                    "{name} {method} {id}: took {:?}",
                    started.elapsed()
                );
                if &got != expected {
                    mismatches.push(format!(
                        "{name} {method} {id}: {got:?}, expected {expected:?}"
                    ));
                }
            }
        }
    }
    // A malformed GetConnection answer: an answer that cannot be used, not retried.
    for (name, sender) in &senders {
        let got = outcome(&sender.get(&target("get-garbage")).await);
        let expected = Delivery {
            status: Some(200),
            retryable: false,
        };
        if got != expected {
            mismatches.push(format!("{name} GET get-garbage: {got:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// Nothing listens: the request never left, so both say retryable `Delivery` without status.
#[tokio::test]
async fn a_refused_connection_is_a_retryable_delivery_failure_for_both() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}/prod");
    for (name, sender) in both(&endpoint, None).await {
        let result = sender
            .post(&target("abc="), &Payload::text("x").unwrap())
            .await;
        assert_eq!(
            outcome(&result),
            Kind::Delivery {
                status: None,
                retryable: true
            },
            "{name}: {result:?}"
        );
        assert!(result.unwrap_err().is_retryable(), "{name}");
    }
}

/// The signature each sender sends is recomputed by the stand-in with aws-sigv4 from the
/// request as received (its signed headers, raw path and body) and the known secret; ids are
/// percent-encoded once, bodies arrive unchanged, and a session token is sent and signed.
#[tokio::test]
async fn both_senders_sign_what_the_server_can_verify() {
    let stand_in = StandIn::start().await;
    let body = "{\"type\":\"message\",\"message\":\"héllo ✓ \\\"quoted\\\" a+b=c\"}";
    let cases = [
        ("L0SM9cOFvHcCIhw=", "L0SM9cOFvHcCIhw%3D"),
        ("ab+cd==", "ab%2Bcd%3D%3D"),
        ("per%cent=", "per%25cent%3D"),
    ];
    for token in [None, Some("session-token-xyz")] {
        for (name, sender) in both(&stand_in.endpoint(), token).await {
            let before = stand_in.seen().len();
            for (conn, _) in cases {
                sender
                    .post(&target(conn), &Payload::text(body).unwrap())
                    .await
                    .unwrap();
            }
            let seen = stand_in.seen();
            let seen = &seen[before..];
            assert_eq!(seen.len(), 3, "{name}");
            for (request, (_, encoded)) in seen.iter().zip(cases) {
                assert_eq!(request.method, "POST", "{name}");
                assert_eq!(
                    request.raw_path,
                    format!("/prod/@connections/{encoded}"),
                    "{name}"
                );
                assert_eq!(request.body, body.as_bytes(), "{name}: body unchanged");
                assert_eq!(
                    request.header("x-amz-date"),
                    Some("20090213T233130Z"),
                    "{name}"
                );
                assert_eq!(request.header("x-amz-security-token"), token, "{name}");
                let auth = request.header("authorization").unwrap();
                assert!(
                    auth.starts_with(
                        "AWS4-HMAC-SHA256 Credential=test/20090213/us-east-1/execute-api/aws4_request, SignedHeaders="
                    ),
                    "{name}: {auth}"
                );
                if token.is_some() {
                    assert!(
                        auth.contains("x-amz-security-token"),
                        "{name}: token signed: {auth}"
                    );
                }
                assert_eq!(
                    expected_signature(request, "test", token, &stand_in.addr),
                    signature_of(auth),
                    "{name}: signature verifies"
                );
                assert_ne!(
                    expected_signature(request, "wrong-secret", token, &stand_in.addr),
                    signature_of(auth),
                    "{name}: the check can fail"
                );
            }
        }
    }
}

fn signature_of(auth: &str) -> String {
    auth.rsplit("Signature=").next().unwrap().to_owned()
}

/// The signature aws-sigv4 computes for `request` as received, over the headers it names.
fn expected_signature(
    request: &Seen,
    secret: &str,
    token: Option<&str>,
    addr: &SocketAddr,
) -> String {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let auth = request.header("authorization").unwrap();
    let signed: Vec<&str> = auth
        .split("SignedHeaders=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .split(';')
        .collect();
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .filter(|(n, _)| {
            signed.contains(&n.as_str()) && n != "x-amz-date" && n != "x-amz-security-token"
        })
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let identity = aws_sdk_apigatewaymanagement::config::Credentials::new(
        "test",
        secret,
        token.map(str::to_owned),
        None,
        "check",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("execute-api")
        .time(UNIX_EPOCH + Duration::from_secs(SIGNING_TIME))
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let uri = format!("http://{addr}{}", request.raw_path);
    let signable = SignableRequest::new(
        &request.method,
        uri,
        headers.into_iter(),
        SignableBody::Bytes(&request.body),
    )
    .unwrap();
    sign(signable, &params).unwrap().into_parts().1
}

/// The broadcaster over the lean sender: 1,000 connections, gone, throttled then fine, 5xx twice
/// then fine, 5xx forever, and fine; each in exactly one bucket of the report.
#[tokio::test]
async fn a_mixture_across_1000_connections_over_the_lean_sender_is_fully_accounted_for() {
    let stand_in = StandIn::start().await;
    let store = Arc::new(InMemoryStore::new());
    let room = RoomId::new("big").unwrap();
    let ids: Vec<ConnectionId> = (0..1000)
        .map(|i| ConnectionId::new(format!("m{i}")).unwrap())
        .collect();
    for c in &ids {
        store
            .join(&Membership::new(c.clone(), room.clone()))
            .await
            .unwrap();
    }
    let sender = SigV4Sender::new(&crate::common::local_sdk_config().await)
        .unwrap()
        .with_default_endpoint(&stand_in.endpoint())
        .unwrap();
    let mut config: BroadcastConfig = crate::common::without_connect_grace();
    config.initial_backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(5);
    config.retries = 3;
    config.concurrency = 32;
    let b = Broadcaster::new(store.clone(), Arc::new(sender)).with_config(config);
    let started = SystemTime::now();
    let report = b
        .broadcast(&room, &Payload::text("mixed").unwrap(), None)
        .await
        .unwrap();
    let mut all: Vec<&ConnectionId> = report
        .delivered
        .iter()
        .chain(&report.gone)
        .chain(report.failed.iter().map(|f| &f.connection_id))
        .chain(&report.not_attempted)
        .collect();
    assert_eq!(all.len(), 1000, "{report}");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 1000, "no connection is in two buckets");
    assert_eq!(report.gone.len(), 200);
    assert_eq!(report.failed.len(), 100);
    assert!(report.failed.iter().all(|f| f.attempts == 4));
    assert_eq!(report.delivered.len(), 700);
    assert!(report.not_attempted.is_empty());
    assert_eq!(report.retries, 100 + 200 + 300);
    assert_eq!(report.removed.len(), 200, "gone records leave the store");
    assert_eq!(store.room_connections(&room).await.unwrap().len(), 800);
    let requests = stand_in.seen().len();
    assert_eq!(requests, 1000 + 600, "one request per attempt");
    eprintln!(
        "1,000-connection mixture over SigV4Sender: {requests} requests in {:?}",
        started.elapsed().unwrap()
    );
}

/// An error body is read at most 64 KiB: a 500 whose huge body stalls after 256 KiB is
/// classified at once by the lean sender (the SDK sender, reading it all, waits for its timeout).
#[tokio::test]
async fn the_lean_sender_reads_at_most_64_kib_of_an_error_body() {
    let stand_in = StandIn::start().await;
    let sender = SigV4Sender::new(&sdk_config(None).await)
        .unwrap()
        .with_call_timeout(Duration::from_secs(5))
        .with_default_endpoint(&stand_in.endpoint())
        .unwrap();
    let started = std::time::Instant::now();
    let result = sender
        .post(&target("huge-stall"), &Payload::text("x").unwrap())
        .await;
    assert_eq!(
        outcome(&result),
        Kind::Delivery {
            status: Some(500),
            retryable: true
        },
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "classified without reading the whole body: {:?}",
        started.elapsed()
    );
}
