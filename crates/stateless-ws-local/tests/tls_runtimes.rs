//! Each runtime's trust variable tried for real against the gateway's HTTPS: the Rust SDK's
//! default HTTPS client with `SSL_CERT_FILE` (in a child process, since it reads its roots once
//! per process), Python's `ssl` with `SSL_CERT_FILE`, Node with `NODE_EXTRA_CA_CERTS` — each
//! with and without its variable. boto3 with `AWS_CA_BUNDLE`: tests/python_https_ministack.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aws_sdk_apigatewaymanagement::primitives::Blob;
use common::tls::{CaDir, WAIT, connected, gateway, next_text};

/// Set in the child process of `the_rust_sdks_default_client_trusts_ssl_cert_file`.
const CHILD_ENDPOINT: &str = "STATELESS_WS_TLS_TEST_ENDPOINT";
const CHILD_CONNECTION: &str = "STATELESS_WS_TLS_TEST_CONNECTION";

/// Runs this test binary's `child_posts_with_the_sdks_default_https_client` with `env`.
async fn child(env: &[(&str, &str)], remove: &[&str]) -> String {
    let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child_posts_with_the_sdks_default_https_client",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CA_BUNDLE");
    for key in remove {
        command.env_remove(key);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("CHILD-RESULT ").map(|(_, result)| result))
        .unwrap_or_else(|| panic!("no result from the child: {stdout}"))
        .to_owned()
}

/// Acts only in the child process `the_rust_sdks_default_client_trusts_ssl_cert_file` starts:
/// posts with the SDK's default HTTPS client (no trust store given) and prints the outcome.
#[tokio::test]
async fn child_posts_with_the_sdks_default_https_client() {
    let (Ok(endpoint), Ok(connection)) = (
        std::env::var(CHILD_ENDPOINT),
        std::env::var(CHILD_CONNECTION),
    ) else {
        return;
    };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .load()
        .await;
    let api = aws_sdk_apigatewaymanagement::Client::new(&sdk);
    let sent = api
        .post_to_connection()
        .connection_id(connection)
        .data(Blob::new("via SSL_CERT_FILE"))
        .send()
        .await;
    match sent {
        Ok(_) => println!("CHILD-RESULT ok"),
        Err(e) => println!(
            "CHILD-RESULT error {}",
            aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&e)
        ),
    }
}

// The Rust SDK's default HTTPS client (aws-smithy-http-client, rustls + aws-lc) loads its roots
// with rustls-native-certs, which reads SSL_CERT_FILE when it is set: the bundle makes the
// unmodified default client trust the gateway.
#[tokio::test]
async fn the_rust_sdks_default_client_trusts_ssl_cert_file() {
    let dir = CaDir::new("rust-sdk");
    let (gateway, connects) = gateway(&dir.0, |_| {}).await;
    let ca = gateway.local_ca().unwrap();
    let bundle = ca.trust_env()["SSL_CERT_FILE"].clone();
    let ((mut ws, _), id) = connected(&connects, async {
        tokio_tungstenite::connect_async(gateway.ws_url())
            .await
            .unwrap()
    })
    .await;
    let https = gateway.https_management_endpoint().unwrap();
    let env = [
        (CHILD_ENDPOINT, https.as_str()),
        (CHILD_CONNECTION, id.as_str()),
    ];

    let with = child(
        &[&env[..], &[("SSL_CERT_FILE", bundle.as_str())]].concat(),
        &[],
    )
    .await;
    assert_eq!(with, "ok");
    assert_eq!(next_text(&mut ws).await, "via SSL_CERT_FILE");
    let without = child(&env, &["SSL_CERT_FILE", "SSL_CERT_DIR"]).await;
    assert!(
        without.starts_with("error") && without.contains("UnknownIssuer"),
        "{without}"
    );
    gateway.shutdown().await;
}

/// Runs `program` with `args` and `env`; its stdout and stderr, `None` when it is not installed.
async fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Option<String> {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_remove("SSL_CERT_FILE")
        .env_remove("NODE_EXTRA_CA_CERTS");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = match tokio::time::timeout(WAIT, command.output()).await.unwrap() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("{program}: {e}"),
    };
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

// Python's ssl (OpenSSL) reads SSL_CERT_FILE; Node adds NODE_EXTRA_CA_CERTS to its roots. Each
// is tried with and without its variable against https://127.0.0.1:PORT/local/@connections/…
// (an unknown id: 410 means TLS was accepted).
#[tokio::test]
async fn python_and_node_trust_the_ca_through_their_variables() {
    let dir = CaDir::new("runtimes");
    let (gateway, _) = gateway(&dir.0, |_| {}).await;
    let ca = gateway.local_ca().unwrap();
    let env = ca.trust_env();
    let url = format!(
        "{}/@connections/AAAAAAAAAAA=",
        gateway.https_management_endpoint().unwrap()
    );
    const PYTHON: &str = "import sys, urllib.request, urllib.error\n\
        try:\n    urllib.request.urlopen(sys.argv[1], timeout=5)\n\
        except urllib.error.HTTPError as e:\n    print('status', e.code)\n\
        except Exception as e:\n    print('failed', e)\n";
    // Exits at once: a response left unread would keep Node's socket, and Node, alive.
    const NODE: &str = "require('https').get(process.argv[1], r => { console.log('status', r.statusCode); process.exit(0) })\
        .on('error', e => { console.log('failed', e.code); process.exit(0) })";
    let cases = [
        (
            "python3",
            vec!["-c", PYTHON, &url],
            "SSL_CERT_FILE",
            "CERTIFICATE_VERIFY_FAILED",
        ),
        (
            "node",
            vec!["-e", NODE, &url],
            "NODE_EXTRA_CA_CERTS",
            "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
        ),
    ];
    for (program, args, variable, refusal) in cases {
        let Some(with) = run(program, &args, &[(variable, &env[variable])]).await else {
            eprintln!(
                "SKIPPED {program}: not installed (its trust variable {variable} is not tried)"
            );
            continue;
        };
        assert_eq!(with.trim(), "status 410", "{program} with {variable}");
        let without = run(program, &args, &[]).await.unwrap();
        assert!(
            without.contains(refusal),
            "{program} without {variable}: {without}"
        );
        eprintln!("{program}: {variable} makes it trust the gateway");
    }
    gateway.shutdown().await;
}
