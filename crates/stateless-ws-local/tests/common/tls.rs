//! Helpers of the TLS tests (tests/tls.rs, tests/tls_runtimes.rs): a gateway with its CA in a
//! fresh directory, clients that trust it, and the management API client over HTTPS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_apigatewaymanagement::primitives::Blob;
use futures_util::StreamExt;
use stateless_ws::lambda::{self, Context};
use stateless_ws::{RouteResponse, WebSocketEvent};
use stateless_ws_local::{LocalGateway, LocalGatewayConfig, RunningGateway};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A fresh CA directory, removed on drop.
pub(crate) struct CaDir(pub(crate) PathBuf);

impl CaDir {
    pub(crate) fn new(tag: &str) -> Self {
        use std::hash::{BuildHasher as _, RandomState};
        let nonce = RandomState::new().hash_one(Instant::now());
        Self(std::env::temp_dir().join(format!(
            "sws-tls-it-{tag}-{}-{nonce:016x}",
            std::process::id()
        )))
    }
}

impl Drop for CaDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Connections as `$connect` saw them: (connection id, `domainName`, `stage`).
pub(crate) type Connects = Arc<Mutex<Vec<(String, String, String)>>>;

/// A gateway with its CA in `ca_dir`, recording each `$connect`.
pub(crate) async fn gateway(
    ca_dir: &Path,
    tweak: impl FnOnce(&mut LocalGatewayConfig),
) -> (RunningGateway, Connects) {
    let connects = Connects::default();
    let seen = Arc::clone(&connects);
    let mut config = LocalGatewayConfig::default();
    config.ca_dir = Some(ca_dir.to_owned());
    tweak(&mut config);
    let gateway = LocalGateway::new(config)
        .route(
            "$connect",
            lambda::service(move |event: WebSocketEvent, _: Context| {
                let seen = Arc::clone(&seen);
                async move {
                    let context = event.context();
                    seen.lock().unwrap().push((
                        context.connection_id.to_string(),
                        context.domain_name.clone().unwrap_or_default(),
                        context.stage.clone().unwrap_or_default(),
                    ));
                    Ok(RouteResponse::ok())
                }
            }),
        )
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (gateway, connects)
}

/// The connection id of the connection made by `connect`.
pub(crate) async fn connected<T>(
    connects: &Connects,
    connect: impl Future<Output = T>,
) -> (T, String) {
    let before = connects.lock().unwrap().len();
    let client = connect.await;
    let id = connects.lock().unwrap()[before].0.clone();
    (client, id)
}

/// A rustls client configuration trusting `ca_pem` alone.
pub(crate) fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

pub(crate) type TlsClient = tokio_rustls::client::TlsStream<TcpStream>;

pub(crate) async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsClient> {
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// A `wss://` client trusting `ca_pem`.
pub(crate) async fn wss_client(
    gateway: &RunningGateway,
    ca_pem: &str,
) -> WebSocketStream<TlsClient> {
    let tls = tls_connect(gateway.local_addr(), client_config(ca_pem))
        .await
        .unwrap();
    let url = gateway.wss_url().unwrap();
    tokio_tungstenite::client_async(url, tls).await.unwrap().0
}

/// The management API client, its HTTPS trusting `ca_pem` alone (`None`: the SDK's defaults).
pub(crate) async fn management(
    endpoint: &str,
    ca_pem: Option<&str>,
) -> aws_sdk_apigatewaymanagement::Client {
    use aws_smithy_http_client::tls;
    let sdk = super::local_sdk_config().await;
    let mut config =
        aws_sdk_apigatewaymanagement::config::Builder::from(&sdk).endpoint_url(endpoint);
    if let Some(pem) = ca_pem {
        let context = tls::TlsContext::builder()
            .with_trust_store(tls::TrustStore::empty().with_pem_certificate(pem.as_bytes()))
            .build()
            .unwrap();
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(context)
            .build_https();
        config = config.http_client(http);
    }
    aws_sdk_apigatewaymanagement::Client::from_conf(config.build())
}

pub(crate) async fn post(api: &aws_sdk_apigatewaymanagement::Client, id: &str, text: &str) {
    api.post_to_connection()
        .connection_id(id)
        .data(Blob::new(text))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "post to {id}: {}",
                aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&e)
            )
        });
}

pub(crate) async fn next_text<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
) -> String {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .unwrap();
        if let Message::Text(text) = message {
            return text.as_str().to_owned();
        }
    }
}
