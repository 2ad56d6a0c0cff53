//! The chat's real Lambda binaries behind `stateless-ws-local`: each built binary is zipped as
//! `bootstrap` and created as a `provided.al2023` function in MiniStack, whose Lambda runs it
//! and whose DynamoDB holds the routing table; the gateway reads `template.yaml` and invokes the
//! functions over MiniStack's Invoke API; tokio-tungstenite clients drive it. A Python handler on
//! the same runner shows the gateway does not care about the functions' language.
//!
//! Needs MiniStack started with `AWS_ENDPOINT_URL` pointing at itself (scripts/dynamodb-local.sh
//! does so) and `DYNAMODB_ENDPOINT`; skipped with a printed reason otherwise (never under
//! scripts/test.sh). Prints the invoke latency per route, as the client sees it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use stateless_ws::UserId;
use stateless_ws::broadcast::{ApiGatewaySender, Broadcaster, Payload};
use stateless_ws::history::DynamoDbLog;
use stateless_ws::store::{ConnectionStore, DynamoDbStore};
use stateless_ws_local::{LocalApi, Naming, RunningGateway, Settings};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const TEMPLATE: &str = include_str!("../../template.yaml");
/// Cold starts of a debug bootstrap on a busy CI machine take a few seconds.
const WAIT: Duration = Duration::from_secs(30);

/// The chat's Lambda binaries, as cargo built them for this test.
const BINARIES: [(&str, &str); 4] = [
    ("ConnectFunction", env!("CARGO_BIN_EXE_lambda_connect")),
    (
        "DisconnectFunction",
        env!("CARGO_BIN_EXE_lambda_disconnect"),
    ),
    ("MessageFunction", env!("CARGO_BIN_EXE_lambda_message")),
    (
        "AuthorizerFunction",
        env!("CARGO_BIN_EXE_lambda_authorizer"),
    ),
];

/// Creates Lambda functions through MiniStack's Lambda API (plain HTTP; MiniStack is a Python
/// program, so its interpreter is there). Arguments: endpoint, name, runtime, handler, zip, env
/// JSON.
const CREATE_FUNCTION: &str = r#"
import base64, json, sys, urllib.request
endpoint, name, runtime, handler, zip_path, env = sys.argv[1:7]
body = json.dumps({
    "FunctionName": name, "Runtime": runtime, "Handler": handler,
    "Role": "arn:aws:iam::000000000000:role/local", "Timeout": 29, "MemorySize": 256,
    "Code": {"ZipFile": base64.b64encode(open(zip_path, "rb").read()).decode()},
    "Environment": {"Variables": json.loads(env)},
}).encode()
req = urllib.request.Request(endpoint + "/2015-03-31/functions", data=body, method="POST",
                             headers={"Content-Type": "application/json"})
try:
    urllib.request.urlopen(req, timeout=120)
except urllib.error.HTTPError as e:
    sys.exit(f"CreateFunction {name}: {e.code} {e.read()[:500]!r}")
"#;

fn python() -> String {
    match std::env::var("MINISTACK_VENV") {
        Ok(venv) if Path::new(&venv).join("bin/python").exists() => format!("{venv}/bin/python"),
        _ => "python3".to_owned(),
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `binary` zipped as `bootstrap` (debug info stripped when objcopy is there: 200 MB → 40 MB).
fn bootstrap_zip(dir: &Path, logical: &str, binary: &str) -> PathBuf {
    let work = dir.join(logical);
    std::fs::create_dir_all(&work).unwrap();
    let bootstrap = work.join("bootstrap");
    let stripped = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(binary)
        .arg(&bootstrap)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(binary, &bootstrap).unwrap();
    }
    let zip = dir.join(format!("{logical}.zip"));
    run(Command::new(python())
        .current_dir(&work)
        .args(["-m", "zipfile", "-c"])
        .arg(&zip)
        .arg("bootstrap"));
    zip
}

fn create_function(
    endpoint: &str,
    name: &str,
    (runtime, handler): (&str, &str),
    zip: &Path,
    env: &BTreeMap<String, String>,
) {
    run(Command::new(python())
        .args(["-c", CREATE_FUNCTION, endpoint, name, runtime, handler])
        .arg(zip)
        .arg(serde_json::to_string(env).unwrap()));
}

/// A unique prefix for this run's function names (MiniStack outlives test runs).
fn unique(tag: &str) -> String {
    common::unique_table(tag).replace("ws-", "")
}

struct Stack {
    gateway: RunningGateway,
    store: Arc<DynamoDbStore>,
    latencies: Vec<(String, Duration)>,
}

/// The chat's API from its template against MiniStack: table, functions, gateway.
async fn chat_stack(endpoint: &str, tag: &str, parameters: &[(&str, &str)]) -> Stack {
    let table = common::unique_table(tag);
    let store = DynamoDbStore::builder()
        .client(common::dynamodb_client(endpoint).await)
        .table_name(table.clone())
        .build()
        .unwrap();
    store.ensure_table().await.unwrap();
    // The template's MessagesTable, made as DynamoDbLog lays it out.
    let messages = format!("{table}-messages");
    DynamoDbLog::builder()
        .client(common::dynamodb_client(endpoint).await)
        .table_name(messages.clone())
        .build()
        .unwrap()
        .ensure_table()
        .await
        .unwrap();
    let settings = Settings {
        parameter_overrides: parameters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Settings::default()
    };
    let api = LocalApi::from_template(TEMPLATE, settings, None).unwrap();
    let prefix = unique(tag);
    let overrides = api
        .api()
        .functions
        .keys()
        .map(|logical| (logical.clone(), format!("{prefix}-{logical}")))
        .collect();
    let names = api.function_names(Naming::LogicalId, &overrides).unwrap();
    let gateway = api
        .gateway(endpoint, &names, None)
        .unwrap()
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut extra = BTreeMap::new();
    extra.insert("CONNECTIONS_TABLE".to_owned(), table);
    extra.insert("MESSAGES_TABLE".to_owned(), messages);
    extra.insert("RUST_LOG".to_owned(), "warn".to_owned());
    // Insecure demo identity (?userId=) only matters without the authorizer.
    extra.insert(
        chat::env::INSECURE_QUERY_STRING_IDENTITY.to_owned(),
        "true".to_owned(),
    );
    let dir = std::env::temp_dir().join(&prefix);
    for (logical, binary) in BINARIES {
        let Some(name) = names.get(logical) else {
            continue; // the authorizer, when the template's condition leaves it out
        };
        let zip = bootstrap_zip(&dir, logical, binary);
        let env = api.environment(logical, &gateway.management_endpoint(), &extra);
        create_function(endpoint, name, ("provided.al2023", "bootstrap"), &zip, &env);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Stack {
        gateway,
        store: Arc::new(store),
        latencies: Vec::new(),
    }
}

impl Stack {
    /// Connects with `query`; the status of a refused upgrade as `Err`.
    async fn connect(&mut self, query: &str, label: &str) -> Result<Client, u16> {
        let started = Instant::now();
        let result = connect_async(format!("{}?{query}", self.gateway.ws_url())).await;
        self.latencies.push((label.to_owned(), started.elapsed()));
        match result {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("connect: {e}"),
        }
    }

    /// Sends `message` and returns the first reply of `reply_type`, timing the round trip.
    async fn ask(
        &mut self,
        ws: &mut Client,
        message: Value,
        reply_type: &str,
        label: &str,
    ) -> Value {
        let started = Instant::now();
        ws.send(Message::text(message.to_string())).await.unwrap();
        let reply = next_of_type(ws, reply_type).await;
        self.latencies.push((label.to_owned(), started.elapsed()));
        reply
    }

    fn report(&self, title: &str) {
        eprintln!("invoke latency through the gateway ({title}), as the client sees it:");
        for (label, took) in &self.latencies {
            eprintln!("  {label:<28} {:>7.1} ms", took.as_secs_f64() * 1e3);
        }
    }
}

async fn next_json(ws: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("the connection is open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap_or(json!({"text": text.as_str()}));
        }
    }
}

async fn next_of_type(ws: &mut Client, reply_type: &str) -> Value {
    loop {
        let value = next_json(ws).await;
        if value["type"] == reply_type || value.get("message").is_some() && reply_type == "*" {
            return value;
        }
    }
}

/// Waits until `user` has `n` connections in the table.
async fn wait_for_connections(store: &DynamoDbStore, user: &str, n: usize) {
    let user = UserId::new(user).unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            if store.user_connections(&user).await.unwrap().len() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{user} never had {n} connection(s)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_template_with_real_functions_on_ministack() {
    let Some(endpoint) =
        common::dynamodb_endpoint("chat_template_with_real_functions_on_ministack")
    else {
        return;
    };
    let mut stack = chat_stack(&endpoint, "real", &[]).await;

    let mut alice = stack
        .connect("room=lobby&userId=alice", "$connect (cold)")
        .await
        .unwrap();
    let mut bob = stack
        .connect("room=lobby&userId=bob", "$connect (warm)")
        .await
        .unwrap();
    wait_for_connections(&stack.store, "bob", 1).await;

    let pong = stack
        .ask(&mut alice, json!({"action": "ping"}), "pong", "ping (cold)")
        .await;
    assert_eq!(pong, json!({"type": "pong"}));
    stack
        .ask(&mut alice, json!({"action": "ping"}), "pong", "ping (warm)")
        .await;

    let joined = stack
        .ask(
            &mut bob,
            json!({"action": "join", "room": "dev"}),
            "joined",
            "join",
        )
        .await;
    assert_eq!(joined["room"], "dev");
    stack
        .ask(
            &mut alice,
            json!({"action": "join", "room": "dev"}),
            "joined",
            "join (warm)",
        )
        .await;
    // bob hears alice joining (lambda_message announces through the library's presence)
    let presence = next_of_type(&mut bob, "presence").await;
    assert_eq!(
        (
            &presence["event"],
            &presence["room"],
            &presence["members"][0]["userId"]
        ),
        (&json!("joined"), &json!("dev"), &json!("alice"))
    );

    let sent = stack
        .ask(
            &mut alice,
            json!({"action": "send", "room": "dev", "message": "hi bob"}),
            "sent",
            "send (fan-out to 1)",
        )
        .await;
    assert_eq!(
        (&sent["delivered"], &sent["offset"]),
        (&json!(1), &json!(1)),
        "{sent}"
    );
    // The template's MessagesTable: the message is logged, and arrives in its envelope.
    let heard = next_of_type(&mut bob, "room.message").await;
    assert_eq!(
        (
            &heard["offset"],
            &heard["data"]["userId"],
            &heard["data"]["message"]
        ),
        (&json!(1), &json!("alice"), &json!("hi bob"))
    );
    // bob resumes from the start: the real function reads the log back.
    bob.send(Message::text(
        json!({"action": "resume", "room": "dev", "epoch": heard["epoch"], "offset": 0})
            .to_string(),
    ))
    .await
    .unwrap();
    let page = next_of_type(&mut bob, "room.history").await;
    assert_eq!(
        (&page["recovered"], &page["messages"][0]["data"]["message"]),
        (&json!(true), &json!("hi bob")),
        "{page}"
    );
    assert_eq!(next_of_type(&mut bob, "resumed").await["messages"], 1);

    let members = stack
        .ask(
            &mut bob,
            json!({"action": "members", "room": "dev"}),
            "presence",
            "members",
        )
        .await;
    assert_eq!(members["event"], "members", "{members}");
    let mut users: Vec<String> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userId"].as_str().unwrap().to_owned())
        .collect();
    users.sort();
    assert_eq!(users, ["alice", "bob"]);

    // $default: unknown actions and non-JSON reach lambda_message through $default.
    let error = stack
        .ask(&mut alice, json!({"action": "dance"}), "error", "$default")
        .await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("unknown action"),
        "{error}"
    );
    alice.send(Message::text("not json")).await.unwrap();
    assert_eq!(next_of_type(&mut alice, "error").await["type"], "error");

    // A service outside the gateway reaches a user through the management endpoint recorded by
    // the real $connect function.
    let sender = ApiGatewaySender::new(&common::local_sdk_config().await);
    let broadcaster = Broadcaster::new(stack.store.clone(), Arc::new(sender));
    let payload = Payload::json(&json!({"type": "notice", "message": "invoice paid"})).unwrap();
    let report = broadcaster
        .notify_user(&UserId::new("bob").unwrap(), &payload)
        .await
        .unwrap();
    assert_eq!(report.delivered.len(), 1, "{report:?}");
    assert_eq!(
        next_of_type(&mut bob, "notice").await["message"],
        "invoice paid"
    );

    // $disconnect cleans alice's records up.
    let started = Instant::now();
    alice.close(None).await.unwrap();
    wait_for_connections(&stack.store, "alice", 0).await;
    stack
        .latencies
        .push(("$disconnect (until cleaned)".to_owned(), started.elapsed()));
    bob.close(None).await.unwrap();
    wait_for_connections(&stack.store, "bob", 0).await;

    stack.report("authorizer off");
    let report = stack.gateway.shutdown().await;
    assert_eq!(report.unfinished, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_authorizer_with_real_functions_on_ministack() {
    let Some(endpoint) =
        common::dynamodb_endpoint("chat_authorizer_with_real_functions_on_ministack")
    else {
        return;
    };
    let mut stack = chat_stack(
        &endpoint,
        "auth",
        &[
            ("EnableAuthorizer", "true"),
            ("AuthorizerTokens", "tok-a:alice,tok-b:bob"),
        ],
    )
    .await;
    // No ?token: 401 before any function runs.
    assert_eq!(
        stack
            .connect("room=lobby", "401 (no identity source)")
            .await
            .err(),
        Some(401)
    );
    // A wrong token: the authorizer denies, 403.
    assert_eq!(
        stack
            .connect("room=lobby&token=nope", "authorizer deny (cold)")
            .await
            .err(),
        Some(403)
    );
    // A valid token: the user id comes from the authorizer's principalId, not the query string.
    let mut alice = stack
        .connect(
            "room=lobby&token=tok-a&userId=mallory",
            "authorizer + $connect",
        )
        .await
        .unwrap();
    wait_for_connections(&stack.store, "alice", 1).await;
    let mut bob = stack
        .connect("room=lobby&token=tok-b", "authorizer + $connect (warm)")
        .await
        .unwrap();
    wait_for_connections(&stack.store, "bob", 1).await;
    let sent = stack
        .ask(
            &mut bob,
            json!({"action": "send", "room": "lobby", "message": "hello"}),
            "sent",
            "send",
        )
        .await;
    assert_eq!(sent["delivered"], 1, "{sent}");
    assert_eq!(
        next_of_type(&mut alice, "room.message").await["data"]["userId"],
        "bob"
    );
    alice.close(None).await.unwrap();
    bob.close(None).await.unwrap();
    wait_for_connections(&stack.store, "alice", 0).await;
    stack.report("authorizer on");
    stack.gateway.shutdown().await;
}

/// Python on the same runner: the gateway only speaks the Invoke API. Also the integration
/// failure API Gateway reports when a function raises.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_function_behind_the_gateway() {
    let Some(endpoint) = common::dynamodb_endpoint("a_python_function_behind_the_gateway") else {
        return;
    };
    const HANDLER: &str = "import json\n\
        def handle(event, context):\n\
        \x20   ctx = event['requestContext']\n\
        \x20   if event.get('body') == 'boom':\n\
        \x20       raise ValueError('boom')\n\
        \x20   return {'statusCode': 200, 'body': json.dumps({'type': 'echo', 'route': ctx['routeKey'], 'body': event.get('body')})}\n";
    const TEMPLATE: &str = r#"
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action, Name: py}
  Integration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Echo.Arn}/invocations
  Default:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: $default, Target: !Sub "integrations/${Integration}"}
  DefaultResponse:
    Type: AWS::ApiGatewayV2::RouteResponse
    Properties: {ApiId: !Ref Api, RouteId: !Ref Default, RouteResponseKey: $default}
  Echo:
    Type: AWS::Serverless::Function
    Properties: {Runtime: python3.12, Handler: handler.handle, CodeUri: src/}
"#;
    let prefix = unique("py");
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("handler.py"), HANDLER).unwrap();
    let zip = dir.join("fn.zip");
    run(Command::new(python())
        .current_dir(&dir)
        .args(["-m", "zipfile", "-c"])
        .arg(&zip)
        .arg("handler.py"));
    let name = format!("{prefix}-echo");
    create_function(
        &endpoint,
        &name,
        ("python3.12", "handler.handle"),
        &zip,
        &BTreeMap::new(),
    );
    let _ = std::fs::remove_dir_all(&dir);

    let api = LocalApi::from_template(TEMPLATE, Settings::default(), None).unwrap();
    let names = api
        .function_names(Naming::LogicalId, &[("Echo".to_owned(), name)].into())
        .unwrap();
    let gateway = api
        .gateway(&endpoint, &names, None)
        .unwrap()
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (mut ws, _) = connect_async(gateway.ws_url()).await.unwrap();
    let mut latencies = Vec::new();
    for label in ["$default (cold)", "$default (warm)"] {
        let started = Instant::now();
        ws.send(Message::text("hello")).await.unwrap();
        let reply = next_json(&mut ws).await;
        latencies.push((label, started.elapsed()));
        assert_eq!(
            reply,
            json!({"type": "echo", "route": "$default", "body": "hello"})
        );
    }
    ws.send(Message::text("boom")).await.unwrap();
    let failure = next_json(&mut ws).await;
    assert_eq!(failure["message"], "Internal server error", "{failure}");
    assert!(
        failure["connectionId"].is_string() && failure["requestId"].is_string(),
        "{failure}"
    );
    eprintln!("invoke latency through the gateway (python3.12 on MiniStack):");
    for (label, took) in latencies {
        eprintln!("  {label:<28} {:>7.1} ms", took.as_secs_f64() * 1e3);
    }
    ws.close(None).await.unwrap();
    gateway.shutdown().await;
}
