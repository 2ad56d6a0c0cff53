//! The crate's one HTTP client stack: hyper-util's pooled HTTP/1.1 client on rustls with the AWS
//! SDK's crypto provider (aws-lc-rs) and the system's root certificates. Used by the JWKS fetch
//! (feature `jwt`) and the lean management API sender (feature `apigw`).

use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::{Error, Result};

/// A pooled HTTP/1.1 client for `http://` and `https://` URLs.
pub(crate) type HttpsClient<B> = Client<HttpsConnector<HttpConnector>, B>;

/// A client for `what` (named in the warning logged when the system has no root certificates
/// and in set-up errors). `connect_timeout` bounds the TCP connect; with none, the OS decides.
/// Keep-alive is on (hyper-util's pool), Nagle is off: requests are small and latency-bound.
pub(crate) fn client<B>(what: &str, connect_timeout: Option<Duration>) -> Result<HttpsClient<B>>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
{
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider.clone())
    {
        Ok(builder) => builder,
        Err(error) => {
            // Loopback http:// still works; every https:// request fails on the certificate
            // (and says so) rather than the verifier failing to build.
            tracing::warn!(%error, "{what}: no system root certificates; https requests will fail");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::config(format!("{what}: TLS set-up failed: {e}")))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(connect_timeout);
    let connector = builder.https_or_http().enable_http1().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}
