//! A real delivery through MiniStack's WebSocket API with both senders: the test creates a Python
//! function that answers every message with the sender's connection id, a WEBSOCKET API whose
//! `$default` route invokes it, and a stage, all with plain SigV4-signed HTTP; a
//! tokio-tungstenite client connects, learns its id, and receives what the senders post.
#![cfg(all(feature = "apigw", feature = "dynamodb"))]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use stateless_ws::broadcast::{ConnectionSender, Payload, Target};
use stateless_ws::{ConnectionId, Error};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(20);

const HANDLER: &str = "def handler(event, context):\n    return {\"statusCode\": 200, \"body\": event[\"requestContext\"][\"connectionId\"]}\n";

/// A signed JSON request to MiniStack (`service` is the signing name that routes it).
async fn call(base: &str, method: &str, path: &str, service: &str, body: &Value) -> (u16, Value) {
    let uri = format!("{base}{path}");
    let bytes = serde_json::to_vec(body).unwrap();
    let identity = aws_sdk_apigatewaymanagement::config::Credentials::new(
        "test", "test", None, None, "static",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [("content-type", "application/json")];
    let signable = SignableRequest::new(
        method,
        uri.as_str(),
        headers.iter().copied(),
        SignableBody::Bytes(&bytes),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder()
        .method(method)
        .uri(&uri)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap();
    instructions.apply_to_request_http1x(&mut request);
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A zip archive holding one file, stored (not compressed): enough for a Lambda package.
fn zip_one(name: &str, data: &[u8]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let (crc, size, n) = (crc32(data), data.len() as u32, name.len() as u16);
    let mut out = Vec::new();
    let common = |out: &mut Vec<u8>| {
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&0u32.to_le_bytes()); // time, date
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // extra length
    };
    out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    common(&mut out);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(data);
    let central = out.len() as u32;
    out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    out.extend_from_slice(&20u16.to_le_bytes()); // version made by
    common(&mut out);
    out.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
    out.extend_from_slice(&0o100_644u32.wrapping_shl(16).to_le_bytes()); // external attributes
    out.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    out.extend_from_slice(name.as_bytes());
    let central_size = out.len() as u32 - central;
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
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
async fn both_senders_deliver_to_a_client_of_a_ministack_websocket_api() {
    let Some(base) = crate::common::dynamodb_endpoint(
        "both_senders_deliver_to_a_client_of_a_ministack_websocket_api",
    ) else {
        return;
    };
    let base = base.trim_end_matches('/').to_owned();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let function = format!("lean-echo-id-{nanos:x}");
    let zip =
        base64::engine::general_purpose::STANDARD.encode(zip_one("index.py", HANDLER.as_bytes()));
    let (status, out) = call(
        &base,
        "POST",
        "/2015-03-31/functions",
        "lambda",
        &json!({"FunctionName": function, "Runtime": "python3.12", "Handler": "index.handler",
                "Role": "arn:aws:iam::000000000000:role/lambda", "Code": {"ZipFile": zip}}),
    )
    .await;
    assert!(status < 300, "CreateFunction: {status} {out}");
    let function_arn = out["FunctionArn"].as_str().unwrap().to_owned();
    let (status, api) = call(
        &base,
        "POST",
        "/v2/apis",
        "apigateway",
        &json!({"name": function, "protocolType": "WEBSOCKET",
                "routeSelectionExpression": "$request.body.action"}),
    )
    .await;
    assert!(status < 300, "CreateApi: {status} {api}");
    let api_id = api["apiId"].as_str().unwrap().to_owned();
    let (status, integration) = call(
        &base,
        "POST",
        &format!("/v2/apis/{api_id}/integrations"),
        "apigateway",
        &json!({"integrationType": "AWS_PROXY", "integrationUri": format!(
            "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{function_arn}/invocations")}),
    )
    .await;
    assert!(status < 300, "CreateIntegration: {status} {integration}");
    let integration_id = integration["integrationId"].as_str().unwrap();
    let (status, route) = call(
        &base,
        "POST",
        &format!("/v2/apis/{api_id}/routes"),
        "apigateway",
        &json!({"routeKey": "$default", "target": format!("integrations/{integration_id}")}),
    )
    .await;
    assert!(status < 300, "CreateRoute: {status} {route}");
    let (status, stage) = call(
        &base,
        "POST",
        &format!("/v2/apis/{api_id}/stages"),
        "apigateway",
        &json!({"stageName": "prod", "autoDeploy": true}),
    )
    .await;
    assert!(status < 300, "CreateStage: {status} {stage}");

    let ws_url = format!(
        "{}/_aws/execute-api/{api_id}/prod",
        base.replacen("http", "ws", 1)
    );
    let (mut client, _) = connect_async(&ws_url).await.unwrap();
    client.send(Message::text("who am I?")).await.unwrap();
    let id = next_text(&mut client).await;
    assert_eq!(
        id.len(),
        16,
        "MiniStack's connection ids are 16 hex characters: {id}"
    );
    let target = Target::new(ConnectionId::new(&id).unwrap());

    let endpoint = format!("{base}/_aws/execute-api/{api_id}/prod");
    let senders = crate::both_senders(&endpoint).await;
    for (name, sender) in &senders {
        let text = format!("from {name}: héllo ✓");
        sender
            .post(&target, &Payload::text(text.clone()).unwrap())
            .await
            .unwrap();
        // MiniStack may also relay the function's answer to `$connect` (the id again).
        let mut got = next_text(&mut client).await;
        while got == id {
            got = next_text(&mut client).await;
        }
        assert_eq!(got, text, "{name}");
        sender.get(&target).await.unwrap();
    }
    // DELETE through the lean sender closes the client; then both see Gone.
    let lean = &senders[1].1;
    lean.delete(&target).await.unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            match client.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("the client is closed after DELETE");
    for (name, sender) in &senders {
        let err = sender
            .post(&target, &Payload::text("late").unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Gone { .. }), "{name}: {err:?}");
    }
}
