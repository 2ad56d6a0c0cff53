//! The gateway's port: TLS and plain HTTP/1 side by side, each connection told apart by its
//! first byte, then served by hyper with upgrades (axum::serve's loop, plus the timeouts).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{LocalGatewayConfig, config_error};
use crate::tls::{CaError, LocalCa};
use stateless_ws::Result;

/// The first byte of a TLS record carrying a handshake message (a ClientHello, here); no HTTP
/// request starts with it.
const TLS_HANDSHAKE: u8 = 0x16;

/// A running gateway's TLS: the CA that issued its certificate, and the acceptor.
pub(crate) struct GatewayTls {
    pub(crate) ca: LocalCa,
    acceptor: tokio_rustls::TlsAcceptor,
    handshake_timeout: Duration,
}

impl GatewayTls {
    /// TLS as `config` asks for it, with a certificate for the loopback names and `hosts`.
    ///
    /// `None` when [`LocalGatewayConfig::tls`] is off — or when the CA would live in the default
    /// directory and that fails (no `HOME`, a read-only home): the gateway then serves plain
    /// HTTP alone, as before TLS existed, and says so in a WARN log. A CA directory given in
    /// [`LocalGatewayConfig::ca_dir`] must work.
    pub(crate) fn new(config: &LocalGatewayConfig, hosts: &[String]) -> Result<Option<Self>> {
        if !config.tls {
            return Ok(None);
        }
        let setup = |dir: &std::path::Path| -> std::result::Result<Self, CaError> {
            let ca = LocalCa::open_or_create(dir)?;
            let (bundle, roots) = ca.write_bundle()?;
            if roots.is_none() {
                tracing::warn!(
                    bundle = %bundle.display(),
                    "no system roots found: the CA bundle holds the local CA alone, so a function given it cannot reach real AWS endpoints over HTTPS"
                );
            }
            let server = ca.server_config(hosts)?;
            Ok(Self {
                ca,
                acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
                handshake_timeout: config.tls_handshake_timeout,
            })
        };
        match &config.ca_dir {
            Some(dir) => setup(dir)
                .map(Some)
                .map_err(|e| config_error(format!("local gateway TLS: {}", chain(&e)))),
            None => {
                let result = LocalCa::default_dir()
                    .ok_or(CaError::NoDirectory)
                    .and_then(|dir| setup(&dir));
                match result {
                    Ok(tls) => Ok(Some(tls)),
                    Err(e) => {
                        tracing::warn!(
                            error = %chain(&e),
                            "local gateway: serving plain HTTP only (no TLS)"
                        );
                        Ok(None)
                    }
                }
            }
        }
    }
}

/// The host part of a `host[:port]` domain name (`[v6]:port` and a bare IPv6 address too).
pub(super) fn host_of(domain_name: &str) -> &str {
    if let Some(rest) = domain_name.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match domain_name.split_once(':') {
        Some((host, port)) if !port.contains(':') => host,
        _ => domain_name,
    }
}

/// An error and its sources, for a message that has no other way to carry them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Serves `app` on `listener` until `stop`, over HTTP/1 with upgrades, plain or — when the
/// first byte is a TLS handshake and `tls` is set — inside TLS.
///
/// A connection must send its first byte within `idle_timeout` and finish a TLS handshake
/// within the TLS handshake timeout, else it is closed. hyper's header read timeout then runs
/// from the moment a connection waits for a request — its first, or the next one on a
/// keep-alive connection — so an idle keep-alive connection is closed after `idle_timeout`
/// rather than held (with its descriptor and buffers) for ever. An upgraded WebSocket
/// connection leaves hyper and is governed by the gateway's own limits.
pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    idle_timeout: Duration,
    tls: Option<Arc<GatewayTls>>,
    mut stop: watch::Receiver<bool>,
) {
    // Dropped when the loop ends: each connection then shuts down gracefully.
    let (closing, _) = watch::channel(());
    let idle_timeout = idle_timeout.max(Duration::from_millis(1));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .keep_alive(true);
    let mut stopped = std::pin::pin!(async move {
        let _ = stop.wait_for(|stop| *stop).await;
    });
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted: go on,
                    // after a pause that lets the former pass.
                    tracing::warn!(error = %e, "local gateway: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stopped => break,
        };
        // Frames are small and written as they come: without TCP_NODELAY, Nagle's algorithm
        // holds a reply until the previous segment is acknowledged (tens of ms per round trip).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "local gateway: TCP_NODELAY not set");
        }
        let connection = Connection {
            app: app.clone(),
            peer,
            builder: builder.clone(),
            closing: closing.subscribe(),
        };
        let tls = tls.clone();
        tokio::spawn(connection.run(stream, idle_timeout, tls));
    }
}

/// One accepted connection, until its first byte says how to serve it.
struct Connection {
    app: Router,
    peer: SocketAddr,
    builder: hyper::server::conn::http1::Builder,
    closing: watch::Receiver<()>,
}

impl Connection {
    async fn run(
        mut self,
        stream: TcpStream,
        idle_timeout: Duration,
        tls: Option<Arc<GatewayTls>>,
    ) {
        let mut first = [0u8; 1];
        let peeked = tokio::select! {
            peeked = tokio::time::timeout(idle_timeout, stream.peek(&mut first)) => peeked,
            _ = self.closing.changed() => return,
        };
        // Silent for too long, closed, or reset: nothing to serve.
        if !matches!(peeked, Ok(Ok(1))) {
            return;
        }
        match tls {
            Some(tls) if first[0] == TLS_HANDSHAKE => {
                let started = std::time::Instant::now();
                let handshake = tokio::select! {
                    handshake = tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(stream)) => handshake,
                    _ = self.closing.changed() => return,
                };
                match handshake {
                    Ok(Ok(stream)) => {
                        tracing::trace!(peer = %self.peer, took = ?started.elapsed(), "TLS handshake");
                        self.http(stream).await;
                    }
                    Ok(Err(e)) => handshake_failed(&tls, self.peer, &e),
                    Err(_) => tracing::debug!(
                        peer = %self.peer,
                        timeout = ?tls.handshake_timeout,
                        "local gateway: TLS handshake timed out"
                    ),
                }
            }
            _ => self.http(stream).await,
        }
    }

    /// HTTP/1 on `io` until it closes, or gracefully when the gateway stops.
    async fn http<S>(mut self, io: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let router = self.app;
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                let mut router = router.clone();
                async move {
                    tower_service::Service::call(&mut router, request.map(axum::body::Body::new))
                        .await
                }
            },
        );
        let connection = self
            .builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = self.closing.changed() => connection.as_mut().graceful_shutdown(),
        }
        let _ = connection.await;
    }
}

/// Logs a failed handshake: at WARN when the client refused the certificate — the usual
/// mistake, a function that does not trust the CA — with what to do; else at DEBUG (scanners,
/// clients that gave up).
fn handshake_failed(tls: &GatewayTls, peer: SocketAddr, error: &std::io::Error) {
    use rustls::AlertDescription as Alert;
    let refused = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .is_some_and(|e| {
            matches!(
                e,
                rustls::Error::AlertReceived(
                    Alert::UnknownCA
                        | Alert::BadCertificate
                        | Alert::CertificateUnknown
                        | Alert::UnsupportedCertificate
                )
            )
        });
    if refused {
        tracing::warn!(
            %peer,
            error = %error,
            ca = %tls.ca.cert_path().display(),
            "local gateway: a client refused the TLS certificate; give it the CA: AWS_CA_BUNDLE / SSL_CERT_FILE / REQUESTS_CA_BUNDLE = {}, NODE_EXTRA_CA_CERTS = {}",
            tls.ca.bundle_path().display(),
            tls.ca.cert_path().display(),
        );
    } else {
        tracing::debug!(%peer, error = %error, "local gateway: TLS handshake failed");
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_certificate_names_the_domain_names_host() {
        for (domain, host) in [
            ("127.0.0.1:3002", "127.0.0.1"),
            ("ws.example.test:8443", "ws.example.test"),
            ("ws.example.test", "ws.example.test"),
            ("[::1]:3002", "::1"),
            ("[fe80::1]", "fe80::1"),
            ("::1", "::1"),
        ] {
            assert_eq!(host_of(domain), host, "{domain}");
        }
    }
}
