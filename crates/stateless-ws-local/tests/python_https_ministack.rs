//! Acceptance: a Python function written as AWS's samples write it — boto3's
//! `apigatewaymanagementapi` client at `https://{domainName}/{stage}` from the event, a
//! `post_to_connection` for every member read from DynamoDB — with nothing local in its code,
//! runs on MiniStack's Lambda (`python3.12`) behind the `stateless-ws-local` binary, with the
//! environment the binary writes (`--env-json`: the trust variables for its local CA among
//! them). A room message reaches every member: two `ws://` clients and one `wss://` client.
//!
//! Needs MiniStack (`DYNAMODB_ENDPOINT`, started by scripts/test.sh, which also installs boto3
//! into MiniStack's virtualenv: MiniStack runs Python handlers with that interpreter); skipped
//! with a printed reason otherwise, never under scripts/test.sh. Prints the latencies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// Cold starts (a Python worker importing boto3) on a busy CI machine take a few seconds.
const WAIT: Duration = Duration::from_secs(30);

/// The handler, as AWS's simple-websockets-chat-app sample (and the Python version of this
/// design) writes it. Its only configuration is `TABLE_NAME`; MiniStack's Lambda gives boto3 its
/// region, credentials and `AWS_ENDPOINT_URL` (DynamoDB), and the gateway's trust variables
/// (`AWS_CA_BUNDLE`) make botocore trust the management endpoint's certificate.
const HANDLER: &str = r#"import json
import os

import boto3

table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])


def handle(event, context):
    ctx = event["requestContext"]
    route = ctx["routeKey"]
    connection_id = ctx["connectionId"]
    if route == "$connect":
        table.put_item(Item={"connectionId": connection_id})
    elif route == "$disconnect":
        table.delete_item(Key={"connectionId": connection_id})
    elif route == "sendmessage":
        data = json.loads(event["body"])["data"]
        apigw = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=f"https://{ctx['domainName']}/{ctx['stage']}",
        )
        for item in table.scan(ProjectionExpression="connectionId")["Items"]:
            try:
                apigw.post_to_connection(ConnectionId=item["connectionId"], Data=data.encode())
            except apigw.exceptions.GoneException:
                table.delete_item(Key={"connectionId": item["connectionId"]})
    return {"statusCode": 200}
"#;

const TEMPLATE: &str = r#"
Resources:
  ChatApi:
    Type: AWS::ApiGatewayV2::Api
    Properties: {Name: py-chat, ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  Integration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref ChatApi
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${ChatFunction.Arn}/invocations
  ConnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref ChatApi, RouteKey: $connect, Target: !Sub "integrations/${Integration}"}
  DisconnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref ChatApi, RouteKey: $disconnect, Target: !Sub "integrations/${Integration}"}
  SendRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref ChatApi, RouteKey: sendmessage, Target: !Sub "integrations/${Integration}"}
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties: {ApiId: !Ref ChatApi, StageName: prod}
  ConnectionsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: connectionId, AttributeType: S}]
      KeySchema: [{AttributeName: connectionId, KeyType: HASH}]
      BillingMode: PAY_PER_REQUEST
  ChatFunction:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.12
      Handler: app.handle
      CodeUri: chat/
      Environment:
        Variables:
          TABLE_NAME: !Ref ConnectionsTable
"#;

/// CreateTable (the handler's schema) on MiniStack, which checks no signature but reads the
/// account from the Authorization header. Arguments: endpoint, table.
const CREATE_TABLE: &str = r#"
import json, sys, urllib.request
endpoint, table = sys.argv[1:3]
body = json.dumps({
    "TableName": table, "BillingMode": "PAY_PER_REQUEST",
    "AttributeDefinitions": [{"AttributeName": "connectionId", "AttributeType": "S"}],
    "KeySchema": [{"AttributeName": "connectionId", "KeyType": "HASH"}],
}).encode()
req = urllib.request.Request(endpoint + "/", data=body, method="POST", headers={
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Target": "DynamoDB_20120810.CreateTable",
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64,
    "X-Amz-Date": "20260101T000000Z",
})
try:
    urllib.request.urlopen(req, timeout=30)
except urllib.error.HTTPError as e:
    sys.exit(f"CreateTable {table}: {e.code} {e.read()[:500]!r}")
"#;

/// CreateFunction through MiniStack's Lambda API. Arguments: endpoint, name, runtime, handler,
/// zip, environment as JSON.
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

/// Invokes a function through MiniStack's Invoke API and prints `{"error": X-Amz-Function-Error,
/// "body": ...}`. Arguments: endpoint, name, event as JSON.
const INVOKE: &str = r#"
import json, sys, urllib.request
endpoint, name, event = sys.argv[1:4]
req = urllib.request.Request(f"{endpoint}/2015-03-31/functions/{name}/invocations",
                             data=event.encode(), method="POST",
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=120) as r:
    print(json.dumps({"error": r.headers.get("X-Amz-Function-Error"), "body": r.read().decode()}))
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

/// The gateway process; on drop it is stopped, and its log printed if the test failed.
struct Gateway {
    child: Child,
    stdout: std::io::Lines<BufReader<std::process::ChildStdout>>,
    log: PathBuf,
}

impl Gateway {
    /// Stops the gateway as Ctrl-C does (SIGINT, through `kill`); its remaining standard
    /// output. `None` where there is no `kill` program (the process is then killed).
    fn interrupt(mut self) -> Option<String> {
        let pid = self.child.id().to_string();
        match Command::new("kill").args(["-INT", &pid]).status() {
            Ok(status) => assert!(status.success(), "kill -INT {pid}"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("kill: {e}"),
        }
        let rest: Vec<String> = self.stdout.by_ref().map(Result::unwrap).collect();
        assert!(self.child.wait().unwrap().success());
        Some(rest.join("\n"))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- the gateway's log ---\n{log}");
        }
    }
}

/// A `wss://` client trusting `ca_pem` alone.
async fn wss_client(
    url: &str,
    ca_pem: &[u8],
) -> WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let authority = url
        .strip_prefix("wss://")
        .and_then(|rest| rest.split('/').next())
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(authority).await.unwrap();
    let host = authority.rsplit_once(':').unwrap().0.to_owned();
    let name = rustls::pki_types::ServerName::try_from(host).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tokio_tungstenite::client_async(url, tls)
        .await
        .unwrap_or_else(|e| panic!("wss connect: {e}"))
        .0
}

async fn next_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> String {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("the connection is open")
            .unwrap();
        if let Message::Text(text) = message {
            return text.as_str().to_owned();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boto3_handler_posting_to_https_domain_name_reaches_every_member() {
    let Some(endpoint) = common::ministack_endpoint(
        "a_boto3_handler_posting_to_https_domain_name_reaches_every_member",
    ) else {
        return;
    };
    let nonce = format!(
        "{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let dir = std::env::temp_dir().join(format!("sws-py-https-{nonce}"));
    std::fs::create_dir_all(dir.join("chat")).unwrap();
    std::fs::write(dir.join("template.yaml"), TEMPLATE).unwrap();
    std::fs::write(dir.join("chat/app.py"), HANDLER).unwrap();
    let zip = dir.join("chat.zip");
    run(Command::new(python())
        .current_dir(dir.join("chat"))
        .args(["-m", "zipfile", "-c"])
        .arg(&zip)
        .arg("app.py"));
    let table = format!("py-https-{nonce}");
    run(Command::new(python()).args(["-c", CREATE_TABLE, &endpoint, &table]));

    // The gateway, as a user runs it; the functions' environment from its --env-json.
    let function = format!("py-https-{nonce}-chat");
    let log = dir.join("gateway.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stateless-ws-local"))
        .arg("--template")
        .arg(dir.join("template.yaml"))
        .args([
            "--lambda-endpoint",
            &endpoint,
            "--port",
            "0",
            "--expose-errors",
        ])
        .args(["--function-name-map", &format!("ChatFunction={function}")])
        .args(["--env", &format!("TABLE_NAME={table}")])
        .arg("--ca-dir")
        .arg(dir.join("ca"))
        .arg("--env-json")
        .arg(dir.join("env.json"))
        .env("RUST_LOG", "info,hyper_util=warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut gateway = Gateway { child, stdout, log };
    let mut printed = Vec::new();
    for line in gateway.stdout.by_ref() {
        let line = line.unwrap();
        let serving = line.starts_with("Serving;");
        printed.push(line);
        if serving {
            break;
        }
    }
    let printed = printed.join("\n");
    let url_after = |label: &str, scheme: &str| -> String {
        printed
            .lines()
            .filter(|l| l.contains(label))
            .find_map(|l| l.split_whitespace().find(|w| w.starts_with(scheme)))
            .unwrap_or_else(|| panic!("no {scheme} URL in:\n{printed}"))
            .to_owned()
    };
    let ws_url = url_after("WebSocket URL", "ws://");
    let wss_url = url_after("over TLS", "wss://");
    let env_json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("env.json")).unwrap()).unwrap();
    let env: BTreeMap<String, String> =
        serde_json::from_value(env_json["ChatFunction"].clone()).unwrap();
    let bundle = dir.join("ca/ca-bundle.pem").display().to_string();
    for variable in ["AWS_CA_BUNDLE", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"] {
        assert_eq!(env[variable], bundle, "{variable}");
        assert!(
            printed.contains(&format!("{variable}={bundle}")),
            "printed:\n{printed}"
        );
    }
    assert_eq!(
        env["NODE_EXTRA_CA_CERTS"],
        dir.join("ca/ca.pem").display().to_string()
    );
    assert_eq!(env["TABLE_NAME"], table);
    run(Command::new(python())
        .args(["-c", CREATE_FUNCTION, &endpoint, &function])
        .args(["python3.12", "app.handle"])
        .arg(&zip)
        .arg(serde_json::to_string(&env).unwrap()));

    // Three members: two over ws://, one over wss:// (trusting the gateway's CA).
    let mut latencies = Vec::new();
    let started = Instant::now();
    let (mut alice, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .unwrap_or_else(|e| {
            panic!("$connect (is boto3 in MiniStack's venv? scripts/dynamodb-local.sh installs it): {e}")
        });
    latencies.push(("$connect (cold: Python + boto3)", started.elapsed()));
    let started = Instant::now();
    let (mut bob, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    latencies.push(("$connect (warm)", started.elapsed()));
    let ca_pem = std::fs::read(dir.join("ca/ca.pem")).unwrap();
    let started = Instant::now();
    let mut carol = wss_client(&wss_url, &ca_pem).await;
    latencies.push(("$connect over wss", started.elapsed()));

    for (round, text) in ["hello from alice", "again from alice"]
        .into_iter()
        .enumerate()
    {
        // Each message once the previous invocation has returned: one sent while it still
        // finishes (its posts arrive before it returns) makes MiniStack start a second, cold,
        // worker (≈ 300 ms), which is not what is measured here.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        alice
            .send(Message::text(
                json!({"action": "sendmessage", "data": text}).to_string(),
            ))
            .await
            .unwrap();
        assert_eq!(next_text(&mut alice).await, text, "alice (ws)");
        assert_eq!(next_text(&mut bob).await, text, "bob (ws)");
        assert_eq!(next_text(&mut carol).await, text, "carol (wss)");
        latencies.push((
            if round == 0 {
                "sendmessage to 3 (first https posts)"
            } else {
                "sendmessage to 3 (warm)"
            },
            started.elapsed(),
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    carol
        .send(Message::text(
            json!({"action": "sendmessage", "data": "hi from carol"}).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(next_text(&mut alice).await, "hi from carol");
    assert_eq!(next_text(&mut bob).await, "hi from carol");
    assert_eq!(next_text(&mut carol).await, "hi from carol");
    latencies.push(("sendmessage over wss to 3", started.elapsed()));

    // The control: the same code without the trust variables fails as in the issue (invoked
    // directly, with a sendmessage event for this gateway, while the members are connected).
    let untrusting = format!("{function}-untrusting");
    let mut bare = env.clone();
    for variable in stateless_ws_local::trust_env(Path::new("/")).keys() {
        bare.remove(variable);
    }
    run(Command::new(python())
        .args(["-c", CREATE_FUNCTION, &endpoint, &untrusting])
        .args(["python3.12", "app.handle"])
        .arg(&zip)
        .arg(serde_json::to_string(&bare).unwrap()));
    let domain = ws_url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .unwrap();
    let event = json!({
        "requestContext": {"routeKey": "sendmessage", "eventType": "MESSAGE",
            "connectionId": "AAAAAAAAAAA=", "domainName": domain, "stage": "prod"},
        "body": json!({"action": "sendmessage", "data": "never"}).to_string(),
    });
    let output = Command::new(python())
        .args(["-c", INVOKE, &endpoint, &untrusting, &event.to_string()])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(
        answer.contains("SSL validation failed") && answer.contains("CERTIFICATE_VERIFY_FAILED"),
        "without the trust variables: {answer} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("without the trust variables, boto3 says: {}", answer.trim());

    eprintln!("boto3 handler on MiniStack (python3.12) behind the gateway, as the client sees it:");
    for (label, took) in latencies {
        eprintln!("  {label:<38} {:>7.1} ms", took.as_secs_f64() * 1e3);
    }
    for ws in [&mut alice, &mut bob] {
        ws.close(None).await.unwrap();
    }
    carol.close(None).await.unwrap();
    if let Some(rest) = gateway.interrupt() {
        assert!(rest.contains("stopped:"), "{rest}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
