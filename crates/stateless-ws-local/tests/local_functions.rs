//! Routes served by functions over the Lambda Invoke API, against a fake Invoke API (axum on
//! loopback): how answers, function errors, timeouts and the REQUEST authorizer reach the
//! client. Each gateway is built as users build it, from a template through `LocalApi`. The
//! same paths with real runners are in examples/chat/tests/chat/real_functions.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use stateless_ws_local::{LocalApi, Naming, RunningGateway, Settings};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Log = Arc<Mutex<Vec<(String, Value)>>>;

/// A fake Invoke API: each function name (the template's logical id) is a behaviour. Every call
/// is logged.
async fn invoke(
    State(log): State<Log>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    assert_eq!(headers["content-type"], "application/json");
    let event: Value = serde_json::from_str(&body).unwrap();
    log.lock().unwrap().push((name.clone(), event.clone()));
    let context = &event["requestContext"];
    match name.as_str() {
        "Echo" => axum::Json(json!({"statusCode": 200, "body": json!({
            "route": context["routeKey"], "authorizer": context["authorizer"]
        }).to_string()}))
        .into_response(),
        "Refuse" => axum::Json(json!({"statusCode": 401, "body": "no"})).into_response(),
        // `Status400`, `Status503`, ...: that status, with a body the client must not see.
        status if status.starts_with("Status") => axum::Json(json!({
            "statusCode": status["Status".len()..].parse::<u16>().unwrap(),
            "body": "the function's reason (secret)"
        }))
        .into_response(),
        "Fails" => (
            [("x-amz-function-error", "Unhandled")],
            axum::Json(json!({"errorMessage": "boom", "errorType": "Error"})),
        )
            .into_response(),
        "Slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            axum::Json(json!({"statusCode": 200})).into_response()
        }
        "Auth" => {
            let arn = event["methodArn"].as_str().unwrap();
            let answer = match event["queryStringParameters"]["token"].as_str() {
                Some("allow") => json!({
                    "principalId": "alice",
                    "policyDocument": {"Version": "2012-10-17", "Statement": [
                        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": arn.replace("/local/$connect", "/*")}
                    ]},
                    "context": {"tier": 3, "admin": false}
                }),
                Some("deny") => json!({
                    "principalId": "x",
                    "policyDocument": {"Version": "2012-10-17", "Statement": [
                        {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": arn}
                    ]}
                }),
                _ => json!({"principalId": "no policy"}),
            };
            axum::Json(answer).into_response()
        }
        _ => (
            axum::http::StatusCode::NOT_FOUND,
            axum::Json(json!({"__type": "ResourceNotFoundException"})),
        )
            .into_response(),
    }
}

/// The fake runner's Invoke API endpoint, and its call log.
async fn fake_runner() -> (String, Log) {
    let log = Log::default();
    let app = axum::Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, log)
}

/// A template whose WebSocket API (route selection `$request.body.action`) serves `routes` —
/// (route key, function, two-way) — with the REQUEST authorizer function `Auth` in front of
/// `$connect` (identity source: the `token` query parameter) when `authorized`.
fn template(routes: &[(&str, &str, bool)], authorized: bool) -> String {
    let mut yaml = String::from(
        "Resources:\n  Api:\n    Type: AWS::ApiGatewayV2::Api\n    Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}\n",
    );
    let mut functions: BTreeSet<&str> = routes.iter().map(|route| route.1).collect();
    if authorized {
        functions.insert("Auth");
        yaml.push_str("  Authorizer:\n    Type: AWS::ApiGatewayV2::Authorizer\n    Properties: {ApiId: !Ref Api, Name: auth, AuthorizerType: REQUEST, AuthorizerUri: !GetAtt Auth.Arn, IdentitySource: [route.request.querystring.token]}\n");
    }
    for function in functions {
        writeln!(
            yaml,
            "  {function}:\n    Type: AWS::Lambda::Function\n    Properties: {{Handler: bootstrap}}"
        )
        .unwrap();
    }
    for (i, (key, function, two_way)) in routes.iter().enumerate() {
        let auth = if authorized && *key == "$connect" {
            ", AuthorizationType: CUSTOM, AuthorizerId: !Ref Authorizer"
        } else {
            ""
        };
        writeln!(yaml, "  Integration{i}:\n    Type: AWS::ApiGatewayV2::Integration\n    Properties: {{ApiId: !Ref Api, IntegrationType: AWS_PROXY, IntegrationUri: !GetAtt {function}.Arn}}").unwrap();
        writeln!(yaml, "  Route{i}:\n    Type: AWS::ApiGatewayV2::Route\n    Properties: {{ApiId: !Ref Api, RouteKey: \"{key}\", Target: !Join [\"/\", [integrations, !Ref Integration{i}]]{auth}}}").unwrap();
        if *two_way {
            writeln!(yaml, "  Route{i}Response:\n    Type: AWS::ApiGatewayV2::RouteResponse\n    Properties: {{ApiId: !Ref Api, RouteId: !Ref Route{i}, RouteResponseKey: $default}}").unwrap();
        }
    }
    yaml
}

/// Serves `routes` (see [`template`]) with every function on the Invoke API at `endpoint`
/// under its logical id, with a 300 ms integration timeout.
async fn serve(endpoint: &str, routes: &[(&str, &str, bool)], authorized: bool) -> RunningGateway {
    serve_exposing(endpoint, routes, authorized, false).await
}

/// [`serve`], with `LocalGatewayConfig::expose_errors` set to `expose`.
async fn serve_exposing(
    endpoint: &str,
    routes: &[(&str, &str, bool)],
    authorized: bool,
    expose: bool,
) -> RunningGateway {
    let text = template(routes, authorized);
    let api = LocalApi::from_template(&text, Settings::default(), None)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let names = api
        .function_names(Naming::LogicalId, &BTreeMap::new())
        .unwrap();
    api.gateway(endpoint, &names, Some(Duration::from_millis(300)))
        .unwrap()
        .expose_errors(expose)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn reply(ws: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a reply in time")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

async fn status_of_refused(url: &str) -> u16 {
    match connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        other => panic!("expected a refused upgrade, got {:?}", other.map(|r| r.1)),
    }
}

#[tokio::test]
async fn answers_failures_and_timeouts_reach_the_client_as_on_api_gateway() {
    let (endpoint, _) = fake_runner().await;
    let gateway = serve(
        &endpoint,
        &[
            ("two", "Echo", true),
            ("one", "Echo", false),
            ("fails", "Fails", true),
            ("slow", "Slow", true),
            ("missing", "NoSuchFunction", true),
        ],
        false,
    )
    .await;
    let (mut ws, _) = connect_async(gateway.ws_url()).await.unwrap();
    // A one-way route's body is discarded: the first reply is the two-way route's.
    for action in ["one", "two"] {
        ws.send(Message::text(json!({"action": action}).to_string()))
            .await
            .unwrap();
    }
    assert_eq!(reply(&mut ws).await["route"], "two");
    for (action, message) in [
        ("fails", "Internal server error"),
        ("missing", "Internal server error"),
        ("slow", "Endpoint request timed out"),
    ] {
        ws.send(Message::text(json!({"action": action}).to_string()))
            .await
            .unwrap();
        let answer = reply(&mut ws).await;
        assert_eq!(answer["message"], message, "{action}: {answer}");
        assert!(answer["connectionId"].is_string(), "{answer}");
        assert!(answer["requestId"].is_string(), "{answer}");
    }
    ws.close(None).await.unwrap();
    gateway.shutdown().await;
}

// Issue 17, item 15: what failed is the developer's business, told to the client only on
// request.
#[tokio::test]
async fn integration_failures_tell_the_client_nothing_unless_asked() {
    let (endpoint, _) = fake_runner().await;
    let routes = [
        ("fails", "Fails", true),
        ("slow", "Slow", true),
        ("missing", "NoSuchFunction", true),
    ];
    for expose in [false, true] {
        let gateway = serve_exposing(&endpoint, &routes, false, expose).await;
        let (mut ws, _) = connect_async(gateway.ws_url()).await.unwrap();
        for (action, detail) in [
            ("fails", "boom"),
            ("missing", "NoSuchFunction"),
            ("slow", "integration timeout"),
        ] {
            ws.send(Message::text(json!({"action": action}).to_string()))
                .await
                .unwrap();
            let answer = reply(&mut ws).await;
            let text = answer.to_string();
            if expose {
                let got = answer["detail"].as_str().unwrap_or_default();
                assert!(got.contains(detail), "{action}: {answer}");
            } else {
                assert!(answer.get("detail").is_none(), "{action}: {answer}");
                for secret in [detail, "127.0.0.1", "Fails", "Slow"] {
                    assert!(!text.contains(secret), "{action}: {answer}");
                }
            }
        }
        ws.close(None).await.unwrap();
        gateway.shutdown().await;
    }
}

#[tokio::test]
async fn connect_refusals_and_failures() {
    let (endpoint, _) = fake_runner().await;
    for (name, status) in [
        ("Refuse", 401),
        ("Fails", 500),
        ("Slow", 500),
        ("NoSuchFunction", 500),
    ] {
        let gateway = serve(&endpoint, &[("$connect", name, false)], false).await;
        assert_eq!(status_of_refused(&gateway.ws_url()).await, status, "{name}");
        gateway.shutdown().await;
    }
    // Nothing listening: an integration failure too.
    let gateway = serve("http://127.0.0.1:9", &[("$connect", "X", false)], false).await;
    assert_eq!(status_of_refused(&gateway.ws_url()).await, 500);
    gateway.shutdown().await;
}

/// The raw answer to a WebSocket upgrade request for `url` (`ws://host:port/path?query`):
/// status and body, read until the server closes.
async fn raw_upgrade(url: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("ws://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(host).await.unwrap();
    let request = format!(
        "GET /{path} HTTP/1.1\r\nhost: {host}\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            response.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&response).to_lowercase();
            if n == 0 {
                return;
            }
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
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head[9..12].parse().unwrap(), body.to_owned())
}

// Issue 18, item 3: a $connect answering 400 is refused with 400, as on API Gateway (the
// guide's subprotocol example: "the Lambda integration returns a 400 error, and the connection
// is unsuccessful", wscat: "Unexpected server response: 400"), not with 403.
#[tokio::test]
async fn a_connect_refusal_keeps_the_functions_status_and_not_its_body() {
    let (endpoint, _) = fake_runner().await;
    for status in [400, 401, 403, 404, 409, 429, 500, 503] {
        let name = format!("Status{status}");
        let gateway = serve(&endpoint, &[("$connect", &name, false)], false).await;
        // A real WebSocket client sees the function's status on the handshake.
        match connect_async(gateway.ws_url()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), status);
            }
            other => panic!(
                "{name}: expected HTTP {status}, got {:?}",
                other.map(|r| r.1)
            ),
        }
        // The status only: the function's body stays between it and the gateway's log.
        let (got, body) = raw_upgrade(&gateway.ws_url()).await;
        assert_eq!((got, body.as_str()), (status, ""), "{name}");
        assert_eq!(gateway.connection_count(), 0);
        gateway.shutdown().await;
    }
    // A statusCode no refusal can carry (a 1xx would claim the upgrade) is an unusable answer.
    let gateway = serve(&endpoint, &[("$connect", "Status101", false)], false).await;
    let (status, body) = raw_upgrade(&gateway.ws_url()).await;
    assert_eq!(status, 500);
    assert!(body.contains("Internal server error"), "{body}");
    gateway.shutdown().await;
}

// Issue 18, item 6: a repeated query key reaches the function with every value, in order, in
// `multiValueQueryStringParameters`, and its last value in `queryStringParameters` (as API
// Gateway's Lambda proxy events hold them); values are decoded as API Gateway decodes them.
#[tokio::test]
async fn repeated_query_keys_reach_the_function_with_every_value() {
    let (endpoint, log) = fake_runner().await;
    let gateway = serve(&endpoint, &[("$connect", "Echo", false)], false).await;
    let url = format!(
        "{}?room=a&room=b&room=c&x=%41%2Bb+c%20d&flag&empty=&%C3%A9t%C3%A9=%E2%9C%93",
        gateway.ws_url()
    );
    let (ws, _) = connect_async(url).await.unwrap();
    drop(ws);
    let calls = log.lock().unwrap().clone();
    let (_, event) = calls
        .iter()
        .find(|(_, e)| e["requestContext"]["routeKey"] == "$connect")
        .expect("$connect ran");
    assert_eq!(
        event["multiValueQueryStringParameters"],
        json!({
            "room": ["a", "b", "c"],
            "x": ["A+b c d"],
            "flag": [""],
            "empty": [""],
            "été": ["✓"],
        })
    );
    assert_eq!(
        event["queryStringParameters"],
        json!({"room": "c", "x": "A+b c d", "flag": "", "empty": "", "été": "✓"})
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_request_authorizer_guards_connect_and_its_context_reaches_every_route() {
    let (endpoint, log) = fake_runner().await;
    let gateway = serve(
        &endpoint,
        &[("$connect", "Echo", false), ("$default", "Echo", true)],
        true,
    )
    .await;
    let url = gateway.ws_url();
    assert_eq!(status_of_refused(&url).await, 401);
    assert_eq!(status_of_refused(&format!("{url}?token=")).await, 401);
    assert!(
        log.lock().unwrap().is_empty(),
        "401 comes before any invocation"
    );
    assert_eq!(status_of_refused(&format!("{url}?token=deny")).await, 403);
    assert_eq!(status_of_refused(&format!("{url}?token=bad")).await, 500);
    let (mut ws, _) = connect_async(format!("{url}?token=allow")).await.unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    let answer = reply(&mut ws).await;
    assert_eq!(answer["route"], "$default");
    assert_eq!(answer["authorizer"]["principalId"], "alice");
    assert_eq!(answer["authorizer"]["tier"], 3);
    assert_eq!(answer["authorizer"]["admin"], false);
    assert!(answer["authorizer"]["integrationLatency"].is_number());

    let calls = log.lock().unwrap().clone();
    let (name, request) = &calls[0];
    assert_eq!(name, "Auth");
    assert_eq!(request["type"], "REQUEST");
    assert_eq!(
        request["methodArn"], "arn:aws:execute-api:us-east-1:000000000000:Api/local/$connect",
        "the API's id is its logical id; the account MiniStack's"
    );
    assert_eq!(request["requestContext"]["eventType"], "CONNECT");
    assert!(request["headers"].is_object());
    let connect = calls
        .iter()
        .find(|(n, e)| n == "Echo" && e["requestContext"]["routeKey"] == "$connect")
        .expect("$connect ran after the authorizer allowed");
    assert_eq!(
        connect.1["requestContext"]["authorizer"]["principalId"],
        "alice"
    );
    ws.close(None).await.unwrap();
    gateway.shutdown().await;
}
