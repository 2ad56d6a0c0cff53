//! The gateway's port over TLS: `wss://` clients and the real `aws-sdk-apigatewaymanagement`
//! client at `https://{domainName}/{stage}` trusting the generated CA, plain `ws://`/`http://`
//! beside them on the same port, the CA kept across runs, hostile TLS clients bounded, and what
//! TLS costs (printed with `--nocapture`). Each runtime's trust variable: tests/tls_runtimes.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_apigatewaymanagement::primitives::Blob;
use common::tls::{
    CaDir, WAIT, client_config, connected, gateway, management, next_text, post, tls_connect,
    wss_client,
};
use futures_util::StreamExt;
use stateless_ws_local::{LocalGateway, LocalGatewayConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn wss_https_ws_and_http_share_the_port_and_the_sdk_posts_over_https() {
    let dir = CaDir::new("share");
    let (gateway, connects) = gateway(&dir.0, |_| {}).await;
    let ca = gateway.local_ca().expect("TLS is on by default");
    let ca_pem = ca.cert_pem();
    assert_eq!(ca.cert_path(), dir.0.join("ca.pem"));

    let (mut secure, secure_id) = connected(&connects, wss_client(&gateway, &ca_pem)).await;
    let ((mut plain, _), plain_id) = connected(&connects, async {
        tokio_tungstenite::connect_async(gateway.ws_url())
            .await
            .unwrap()
    })
    .await;

    // The endpoint handlers build from the event, unmodified: https://{domainName}/{stage}.
    let (_, domain, stage) = connects.lock().unwrap()[0].clone();
    assert_eq!(
        domain,
        gateway.local_addr().to_string(),
        "domainName is 127.0.0.1:PORT"
    );
    let https = format!("https://{domain}/{stage}");
    assert_eq!(Some(&https), gateway.https_management_endpoint().as_ref());
    let api = management(&https, Some(&ca_pem)).await;
    post(&api, &secure_id, "over https to wss").await;
    assert_eq!(next_text(&mut secure).await, "over https to wss");
    post(&api, &plain_id, "over https to ws").await;
    assert_eq!(next_text(&mut plain).await, "over https to ws");

    // Plain http:// as before, on the same port.
    let api = management(&gateway.management_endpoint(), None).await;
    assert!(gateway.management_endpoint().starts_with("http://"));
    post(&api, &secure_id, "over http to wss").await;
    assert_eq!(next_text(&mut secure).await, "over http to wss");

    // GetConnection and DeleteConnection over https too.
    let api = management(&https, Some(&ca_pem)).await;
    let info = api
        .get_connection()
        .connection_id(&plain_id)
        .send()
        .await
        .unwrap();
    assert!(info.connected_at().is_some());
    api.delete_connection()
        .connection_id(&plain_id)
        .send()
        .await
        .unwrap();
    let closed = tokio::time::timeout(WAIT, plain.next()).await.unwrap();
    assert!(
        matches!(closed, Some(Ok(Message::Close(_))) | None),
        "{closed:?}"
    );

    // A client that does not trust the CA is refused by its own TLS check.
    let untrusting = client_config("");
    let err = tls_connect(gateway.local_addr(), untrusting)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    let err = management(&https, None)
        .await
        .post_to_connection()
        .connection_id(&secure_id)
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    let text = format!(
        "{}",
        aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&err)
    );
    assert!(
        text.contains("UnknownIssuer") || text.contains("certificate"),
        "{text}"
    );

    // localhost and ::1 are names of the certificate too.
    let tcp = TcpStream::connect(gateway.local_addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(client_config(&ca_pem))
        .connect(name, tcp)
        .await
        .unwrap();

    secure.close(None).await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_ca_is_kept_and_reused_and_the_bundle_carries_the_system_roots() {
    let dir = CaDir::new("reuse");
    let (first, _) = gateway(&dir.0, |_| {}).await;
    let ca_pem = first.local_ca().unwrap().cert_pem();
    let trusted_once = client_config(&ca_pem);
    first.shutdown().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.0.join("ca-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let bundle = std::fs::read_to_string(dir.0.join("ca-bundle.pem")).unwrap();
    assert!(bundle.starts_with(&ca_pem));
    let system = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if system.is_file() && std::env::var_os("SSL_CERT_FILE").is_none() {
        assert!(bundle.ends_with(&std::fs::read_to_string(system).unwrap()));
    }

    // A later run: same CA, a new server certificate the client trusting the CA accepts.
    let (second, _) = gateway(&dir.0, |_| {}).await;
    assert_eq!(second.local_ca().unwrap().cert_pem(), ca_pem);
    tls_connect(second.local_addr(), trusted_once)
        .await
        .unwrap();
    let env = second.local_ca().unwrap().trust_env();
    assert_eq!(
        env["AWS_CA_BUNDLE"],
        dir.0.join("ca-bundle.pem").display().to_string()
    );
    assert_eq!(
        env["NODE_EXTRA_CA_CERTS"],
        dir.0.join("ca.pem").display().to_string()
    );
    second.shutdown().await;

    // TLS off: plain only, no CA.
    let (plain, _) = gateway(&dir.0, |c| c.tls = false).await;
    assert!(plain.local_ca().is_none() && plain.wss_url().is_none());
    assert!(plain.https_management_endpoint().is_none());
    plain.shutdown().await;

    // A CA directory that cannot be made is an error naming it, when set explicitly.
    let file = dir.0.join("ca-bundle.pem");
    let mut config = LocalGatewayConfig::default();
    config.ca_dir = Some(file.join("sub"));
    let err = LocalGateway::new(config)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
}

/// Reads until the server closes; how long it took.
async fn until_closed<S: AsyncRead + Unpin>(stream: &mut S) -> Duration {
    let started = Instant::now();
    let mut buf = vec![0u8; 1 << 16];
    tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server closed the TCP connection");
    started.elapsed()
}

/// A real ClientHello, as the first flight of a rustls client trusting `ca_pem`.
fn client_hello(ca_pem: &str) -> Vec<u8> {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut client = rustls::ClientConnection::new(client_config(ca_pem), name).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    assert_eq!(hello[0], 0x16);
    hello
}

#[tokio::test]
async fn hostile_tls_clients_are_bounded() {
    let dir = CaDir::new("hostile");
    let timeout = Duration::from_millis(500);
    let (gateway, _) = gateway(&dir.0, |c| c.tls_handshake_timeout = timeout).await;
    let addr = gateway.local_addr();
    let ca_pem = gateway.local_ca().unwrap().cert_pem();
    let https = gateway.https_management_endpoint().unwrap();

    // Fifty clients that send a ClientHello and then hang, and fifty that send one byte of a
    // TLS record and hang: they hold no one else up...
    let mut hanging = Vec::new();
    for i in 0..100 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let hello = if i % 2 == 0 {
            client_hello(&ca_pem)
        } else {
            vec![0x16]
        };
        stream.write_all(&hello).await.unwrap();
        hanging.push(stream);
    }
    let started = Instant::now();
    let api = management(&https, Some(&ca_pem)).await;
    let err = api
        .get_connection()
        .connection_id("AAAAAAAAAAA=")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(410));
    let (status, _) = raw_plain_get(addr).await;
    assert_eq!(status, 410, "plain HTTP beside them");
    assert!(
        started.elapsed() < timeout,
        "served while 100 handshakes hang: {:?}",
        started.elapsed()
    );
    // ...and are dropped after the handshake timeout.
    for stream in &mut hanging {
        until_closed(stream).await;
    }
    let waited = started.elapsed();
    assert!(
        waited >= timeout / 2 && waited < timeout * 6,
        "hanging handshakes dropped after {waited:?}"
    );

    // Garbage after a TLS record type, or a record that is no ClientHello: closed at once.
    for garbage in [
        b"\x16\x03\x01\x00\x05hello".to_vec(),
        b"\x16\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
        vec![0x16; 70_000],
    ] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(&garbage).await;
        let took = until_closed(&mut stream).await;
        assert!(took < timeout, "{:?}: closed after {took:?}", &garbage[..9]);
    }
    // Bytes that are neither TLS nor HTTP: hyper's 400, as before.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"\x00\x01\x02 garbage\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    // The gateway still works for everyone.
    tls_connect(addr, client_config(&ca_pem)).await.unwrap();
    assert_eq!(raw_plain_get(addr).await.0, 410);
    let report = gateway.shutdown().await;
    assert_eq!(report.unfinished, 0);
}

/// `GET /local/@connections/AAAAAAAAAAA=` over plain HTTP: (status, how long).
async fn raw_plain_get(addr: SocketAddr) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /local/@connections/AAAAAAAAAAA= HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let status = String::from_utf8_lossy(&response[9..12]).parse().unwrap();
    (status, started.elapsed())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

// What TLS costs on this machine: a new connection's handshake, and a post over a kept-alive
// connection, https against http (printed; bounded loosely so a regression shows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_tls_costs() {
    let dir = CaDir::new("cost");
    // Starting a gateway: a new CA, then a kept one (a fresh server key and certificate, the
    // bundle compared), then no TLS.
    let mut starts = Vec::new();
    for (label, tls) in [("new CA", true), ("kept CA", true), ("no TLS", false)] {
        let started = Instant::now();
        let (gateway, _) = gateway(&dir.0, |c| c.tls = tls).await;
        starts.push((label, started.elapsed()));
        gateway.shutdown().await;
    }
    let (gateway, connects) = gateway(&dir.0, |_| {}).await;
    let addr = gateway.local_addr();
    let ca_pem = gateway.local_ca().unwrap().cert_pem();
    let config = client_config(&ca_pem);
    let (mut tcp, mut tls) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let started = Instant::now();
        drop(TcpStream::connect(addr).await.unwrap());
        tcp.push(started.elapsed());
        let started = Instant::now();
        drop(tls_connect(addr, Arc::clone(&config)).await.unwrap());
        tls.push(started.elapsed());
    }
    let ((mut ws, _), id) = connected(&connects, async {
        tokio_tungstenite::connect_async(gateway.ws_url())
            .await
            .unwrap()
    })
    .await;
    let mut posts = Vec::new();
    for (label, endpoint, pem) in [
        ("http", gateway.management_endpoint(), None),
        (
            "https",
            gateway.https_management_endpoint().unwrap(),
            Some(ca_pem.as_str()),
        ),
    ] {
        let api = management(&endpoint, pem).await;
        let mut samples = Vec::new();
        for i in 0..200 {
            let started = Instant::now();
            post(&api, &id, "x").await;
            if i >= 20 {
                samples.push(started.elapsed()); // warm: the connection is kept alive
            }
            next_text(&mut ws).await;
        }
        posts.push((label, median(samples)));
    }
    let (tcp, tls) = (median(tcp), median(tls));
    eprintln!(
        "TCP connect               {:>8.3} ms (median of 50)",
        tcp.as_secs_f64() * 1e3
    );
    eprintln!(
        "TCP connect + TLS 1.3     {:>8.3} ms (median of 50)",
        tls.as_secs_f64() * 1e3
    );
    for (label, took) in &starts {
        eprintln!(
            "bind, {label:<8}          {:>8.3} ms",
            took.as_secs_f64() * 1e3
        );
    }
    for (label, took) in &posts {
        eprintln!(
            "PostToConnection {label:<6}   {:>8.3} ms (median of 180 warm)",
            took.as_secs_f64() * 1e3
        );
    }
    assert!(
        tls < Duration::from_millis(250),
        "a local TLS handshake took {tls:?}"
    );
    gateway.shutdown().await;
}
