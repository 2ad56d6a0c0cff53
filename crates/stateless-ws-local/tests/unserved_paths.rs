//! Requests for a stage the gateway does not serve (issue 18, item 5): a WebSocket client at
//! `/prod` when the gateway serves `/local`, a management call to the wrong stage, a browser at
//! `/`. Each gets an answer naming the stage served and a WARN line — at most once a minute per
//! path — instead of an empty 404 and silence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use stateless_ws::RouteResponse;
use stateless_ws::lambda::{self, Context};
use stateless_ws_local::{LocalGateway, LocalGatewayConfig, RunningGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What `tracing` logs, as text, for assertions on levels and fields.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(self.clone())
            .finish()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The WARN lines logged so far.
    fn warnings(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(" WARN "))
            .map(str::to_owned)
            .collect()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

async fn gateway() -> RunningGateway {
    let ok = lambda::service(|_: stateless_ws::WebSocketEvent, _: Context| async {
        Ok(RouteResponse::ok())
    });
    // A page of the application's own, merged on the same port, with its own 404.
    let page = axum::Router::new().route(
        "/app/item",
        axum::routing::get(|| async { (axum::http::StatusCode::NOT_FOUND, "no such item") }),
    );
    LocalGateway::new(LocalGatewayConfig::default())
        .default_handler(ok)
        .merge(page)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Sends `request` and reads one response (its head, and a `content-length` body):
/// (status, head in lowercase, body).
async fn raw_http(gateway: &RunningGateway, request: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(gateway.local_addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
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
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head[9..12].parse().unwrap(),
        head.to_lowercase(),
        body.to_owned(),
    )
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
}

#[tokio::test(flavor = "current_thread")]
async fn a_client_at_another_stage_is_told_which_stage_is_served() {
    let logs = LogCapture::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let gateway = gateway().await;
    let served = gateway.ws_url();
    let wrong = served.replace("/local", "/prod");

    // A real WebSocket client: 404, with a body naming the stage and the URL served.
    match tokio_tungstenite::connect_async(&wrong).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 404);
        }
        other => panic!("expected a 404, got {:?}", other.map(|r| r.1)),
    }
    let (status, head, body) = raw_http(
        &gateway,
        "GET /prod HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert_eq!(status, 404);
    assert!(head.contains("content-type: text/plain"), "{head}");
    assert!(
        body.contains(r#"no stage "prod" here; this gateway serves stage "local""#),
        "{body}"
    );
    assert!(body.contains(&served), "{body}");

    // Logged at WARN, naming the path.
    let warnings = logs.warnings();
    assert!(
        warnings.iter().any(|l| l.contains("\"/prod\"")
            && l.contains(r#"no stage "prod" here"#)
            && l.contains(&served)),
        "{warnings:#?}"
    );

    // The root: no stage at all.
    let (status, _, body) = raw_http(&gateway, &get("/")).await;
    assert_eq!(status, 404);
    assert!(body.starts_with("no stage in the path; this gateway serves stage \"local\""));

    // What the gateway and the merged router serve is untouched, their own 404s included.
    let (status, _, body) = raw_http(&gateway, &get("/app/item")).await;
    assert_eq!((status, body.as_str()), (404, "no such item"));
    let (status, _, _) = raw_http(&gateway, &get("/local/@connections/AAAAAAAAAAA=")).await;
    assert_eq!(status, 410);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_management_call_to_another_stage_is_forbidden_naming_the_stage() {
    let logs = LogCapture::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let gateway = gateway().await;
    let wrong = gateway.management_endpoint().replace("/local", "/prod");
    let client = aws_sdk_apigatewaymanagement::Client::from_conf(
        aws_sdk_apigatewaymanagement::config::Builder::from(&common::local_sdk_config().await)
            .endpoint_url(&wrong)
            .build(),
    );
    let err = client
        .post_to_connection()
        .connection_id("AAAAAAAAAAA=")
        .data(aws_sdk_apigatewaymanagement::primitives::Blob::new("hi"))
        .send()
        .await
        .unwrap_err();
    // As API Gateway answers a wrong stage: 403 ForbiddenException, here with what is served.
    let service = err.as_service_error().expect("a service error");
    assert!(service.is_forbidden_exception(), "{service:?}");
    let message = aws_sdk_apigatewaymanagement::error::ProvideErrorMetadata::message(service)
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains(r#"no stage "prod" here; this gateway serves stage "local""#)
            && message.contains(&gateway.management_endpoint()),
        "{message}"
    );
    assert!(
        logs.warnings()
            .iter()
            .any(|l| l.contains("/prod/@connections/")),
        "{}",
        logs.text()
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn unserved_paths_are_logged_once_a_minute_each_and_at_most_sixteen() {
    let logs = LogCapture::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let gateway = gateway().await;
    // A client retrying the same wrong URL: one line.
    for _ in 0..50 {
        let (status, _, _) = raw_http(&gateway, &get("/prod")).await;
        assert_eq!(status, 404);
    }
    let about_prod = |logs: &LogCapture| {
        logs.warnings()
            .iter()
            .filter(|l| l.contains("\"/prod\""))
            .count()
    };
    assert_eq!(about_prod(&logs), 1, "{}", logs.text());
    // A client sending random paths: sixteen lines, then one saying the rest are not logged.
    for i in 0..200 {
        let (status, _, body) = raw_http(&gateway, &get(&format!("/random-{i}"))).await;
        assert_eq!(status, 404);
        assert!(body.contains(&format!("no stage \"random-{i}\"")));
    }
    let warnings = logs.warnings();
    assert_eq!(warnings.len(), 16 + 1, "{warnings:#?}");
    assert!(warnings[16].contains("not logged until the window ends"));
    // A long path is cut in the answer and the log.
    let long = format!("/{}", "x".repeat(10_000));
    let (status, _, body) = raw_http(&gateway, &get(&long)).await;
    assert_eq!(status, 404);
    assert!(body.len() < 400, "{} bytes", body.len());
    gateway.shutdown().await;
}
