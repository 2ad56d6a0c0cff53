//! The `stateless-ws-local` binary on a template whose table has a `TableName` (itself a
//! `!Sub`) and whose function's environment uses `${Stage}`, run against MiniStack (issue 18,
//! item 2): the CLI resolves the template, prints its notes and the environment, and a function
//! behind the gateway — run with the environment exactly as the CLI wrote it — records its
//! `$connect` in MiniStack's DynamoDB table of that name, created with the command the CLI's
//! note gives.
//!
//! Needs MiniStack (`DYNAMODB_ENDPOINT`, as `scripts/dynamodb-local.sh start` prints it);
//! skipped with a printed reason without it, and failed under
//! `STATELESS_WS_REQUIRE_DYNAMODB=1`. The function is a fake Invoke API in this process,
//! standing in for a runner (cargo lambda watch, sam local): what matters is the environment it
//! gets and the table it writes to.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use stateless_ws::store::{ConnectionStore, DynamoDbStore};
use stateless_ws::{ConnectEvent, Membership, RoomId};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The routing table has the layout `DynamoDbStore` reads (as the chat's template); its name is
/// the stack's name and `-connections`; `STAGE_URL` is built with `${Stage}`.
const TEMPLATE: &str = r#"
Parameters:
  StageName: {Type: String, Default: prod}
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  ConnectIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${ConnectFunction.Arn}/invocations"
  ConnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: $connect, Target: !Sub "integrations/${ConnectIntegration}"}
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties: {ApiId: !Ref Api, StageName: !Ref StageName}
  ConnectionsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-connections"
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: connectionId, AttributeType: S}
        - {AttributeName: roomId, AttributeType: S}
        - {AttributeName: userId, AttributeType: S}
      KeySchema:
        - {AttributeName: connectionId, KeyType: HASH}
        - {AttributeName: roomId, KeyType: RANGE}
      GlobalSecondaryIndexes:
        - IndexName: roomId-index
          KeySchema: [{AttributeName: roomId, KeyType: HASH}, {AttributeName: connectionId, KeyType: RANGE}]
          Projection: {ProjectionType: ALL}
        - IndexName: userId-index
          KeySchema: [{AttributeName: userId, KeyType: HASH}, {AttributeName: connectionId, KeyType: RANGE}]
          Projection: {ProjectionType: ALL}
      TimeToLiveSpecification: {AttributeName: ttl, Enabled: true}
  ConnectFunction:
    Type: AWS::Lambda::Function
    Properties:
      Handler: bootstrap
      Environment:
        Variables:
          CONNECTIONS_TABLE: !Ref ConnectionsTable
          STAGE_URL: !Sub "https://${Api}.execute-api.${AWS::Region}.amazonaws.com/${Stage}"
"#;

/// The environment the function runs with: set once the CLI has written it.
type Env = Arc<Mutex<Option<BTreeMap<String, String>>>>;

/// The `$connect` function: checks that its `STAGE_URL` names the stage its events come from,
/// then records the connection in the table its `CONNECTIONS_TABLE` names, on the endpoint its
/// `AWS_ENDPOINT_URL` names — as a real function reading its environment would.
async fn connect_function(event: Value, env: &BTreeMap<String, String>) -> Result<(), String> {
    let stage = event["requestContext"]["stage"]
        .as_str()
        .unwrap_or_default();
    let stage_url = env.get("STAGE_URL").cloned().unwrap_or_default();
    if !stage_url.ends_with(&format!("/{stage}")) {
        return Err(format!(
            "STAGE_URL {stage_url:?} is not for stage {stage:?}"
        ));
    }
    let config =
        stateless_ws::aws_config::defaults(stateless_ws::aws_config::BehaviorVersion::latest())
            .endpoint_url(env.get("AWS_ENDPOINT_URL").ok_or("no AWS_ENDPOINT_URL")?)
            .region(stateless_ws::aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
                "test", "test", None, None, "static",
            ))
            .load()
            .await;
    let table = env.get("CONNECTIONS_TABLE").ok_or("no CONNECTIONS_TABLE")?;
    let store = DynamoDbStore::new(&config, table).map_err(|e| e.to_string())?;
    let connect =
        ConnectEvent::from_slice(event.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let record = Membership::for_connect(&connect, RoomId::new("lobby").unwrap())
        .map_err(|e| e.to_string())?;
    store
        .join(&record)
        .await
        .map_err(|e| format!("{table}: {}", e.chain()))
}

async fn invoke(
    State(env): State<Env>,
    Path(name): Path<String>,
    body: String,
) -> axum::response::Response {
    let event: Value = serde_json::from_str(&body).unwrap();
    let env = env.lock().unwrap().clone().unwrap_or_default();
    match (name.as_str(), connect_function(event, &env).await) {
        ("ConnectFunction", Ok(())) => axum::Json(json!({"statusCode": 200})).into_response(),
        (_, Err(e)) => {
            eprintln!("ConnectFunction: {e}");
            axum::Json(json!({"statusCode": 500, "body": e})).into_response()
        }
        _ => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

/// Sends `body` to MiniStack's DynamoDB as the `X-Amz-Target` operation `target` (MiniStack
/// reads the account from a signature-shaped `Authorization` header and does not check it).
async fn dynamodb(endpoint: &str, target: &str, body: &str) -> (u16, String) {
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/x-amz-json-1.0\r\n\
         x-amz-target: DynamoDB_20120810.{target}\r\nx-amz-date: 20260101T000000Z\r\n\
         authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        "0".repeat(64),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    (status, response)
}

/// `KEY=VALUE` lines of an env file (values bare or in single quotes, as the CLI writes these).
fn read_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn the_cli_environment_reaches_ministacks_table_of_that_name() {
    let Some(endpoint) =
        common::ministack_endpoint("the_cli_environment_reaches_ministacks_table_of_that_name")
    else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let stack = format!("cli{}-{nanos:x}", std::process::id());
    let dir = std::env::temp_dir().join(&stack);
    std::fs::create_dir_all(&dir).unwrap();
    let template = dir.join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    let env_file = dir.join(".env.local");

    // The runner: a fake Invoke API whose ConnectFunction is `connect_function`.
    let env = Env::default();
    let app = axum::Router::new()
        .route(
            "/2015-03-31/functions/{name}/invocations",
            axum::routing::post(invoke),
        )
        .with_state(env.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let runner = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // The CLI, as a developer runs it.
    let mut cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_stateless-ws-local"))
        .arg("--template")
        .arg(&template)
        .args([
            "--lambda-endpoint",
            &runner,
            "--port",
            "0",
            "--stack-name",
            &stack,
        ])
        .args(["--aws-endpoint", &endpoint, "--env-file"])
        .arg(&env_file)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(cli.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let serving = line.starts_with("Serving;");
            printed.push(line);
            if serving {
                return;
            }
        }
        panic!("the CLI ended early:\n{}", printed.join("\n"));
    })
    .await
    .expect("the CLI serves within 30 s");
    let output = printed.join("\n");
    let ws_url = printed
        .iter()
        .find_map(|l| l.strip_prefix("WebSocket URL"))
        .map(str::trim)
        .expect("a WebSocket URL")
        .to_owned();
    assert!(ws_url.ends_with("/prod"), "{output}");

    // What the CLI printed: the table's name (not its logical id), the stage in ${Stage}, and
    // one note for the table, with the command that creates it.
    let table = format!("{stack}-connections");
    assert!(
        output.contains(&format!("  CONNECTIONS_TABLE={table}\n")),
        "{output}"
    );
    assert!(output.contains("/prod\n"), "{output}");
    let notes: Vec<&String> = printed
        .iter()
        .filter(|l| l.trim_start().starts_with("note:"))
        .collect();
    let table_note = notes
        .iter()
        .find(|n| {
            n.contains(&format!(
                "{table} (in CONNECTIONS_TABLE) is the name of the DynamoDB table ConnectionsTable"
            ))
        })
        .unwrap_or_else(|| panic!("no note for the table:\n{output}"));
    let json = table_note
        .split("--cli-input-json '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the create-table input");
    assert!(
        table_note.contains(&format!("--endpoint-url {endpoint}")),
        "{table_note}"
    );

    // The table, created with the note's input (the body of a CreateTable request).
    let (status, response) = dynamodb(&endpoint, "CreateTable", json).await;
    assert_eq!(status, 200, "{response}");

    // The environment exactly as the CLI wrote it (and printed it).
    let written = read_env_file(&std::fs::read_to_string(&env_file).unwrap());
    assert_eq!(written.get("CONNECTIONS_TABLE"), Some(&table));
    assert_eq!(
        written.get("STAGE_URL").map(String::as_str),
        Some("https://Api.execute-api.us-east-1.amazonaws.com/prod")
    );
    assert_eq!(written.get("AWS_ENDPOINT_URL"), Some(&endpoint));
    for (key, value) in &written {
        assert!(
            output.contains(&format!("  {key}={value}")),
            "{key} printed:\n{output}"
        );
    }
    *env.lock().unwrap() = Some(written);

    // A client connects; the function records it in MiniStack's table of that name.
    let (ws, _) = tokio_tungstenite::connect_async(format!("{ws_url}?room=lobby"))
        .await
        .unwrap_or_else(|e| panic!("$connect refused: {e}"));
    let config = common::local_sdk_config().await;
    let config = config.into_builder().endpoint_url(&endpoint).build();
    let store = DynamoDbStore::new(&config, &table).unwrap();
    let members = store
        .room_connections(&RoomId::new("lobby").unwrap())
        .await
        .unwrap();
    assert_eq!(members.len(), 1, "{members:?}");
    drop(ws);
    cli.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
