//! An OIDC issuer on loopback: the discovery document and the JWKS over plain HTTP/1.1 on
//! `127.0.0.1:0`, counting requests; the key set can be swapped mid-test (rotation).

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Default)]
struct State {
    jwks: Value,
    jwks_hits: usize,
    discovery_hits: usize,
    failing: bool,
}

/// The running issuer; dropped with the test's runtime.
#[derive(Clone)]
pub(crate) struct Issuer {
    /// `http://127.0.0.1:PORT`: the issuer (`iss`) and the base of its URLs.
    pub(crate) url: String,
    state: Arc<Mutex<State>>,
}

impl Issuer {
    /// Serves `keys` (JWKs) at `/keys`, discovery at `/.well-known/openid-configuration`,
    /// 300 KiB of JSON at `/big`, no answer at all at `/hang`, a 404 at any other path.
    pub(crate) async fn start(keys: Vec<Value>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            jwks: json!({ "keys": keys }),
            ..State::default()
        }));
        let issuer = Self { url, state };
        let serving = issuer.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let serving = serving.clone();
                tokio::spawn(async move { serving.answer(stream).await });
            }
        });
        issuer
    }

    async fn answer(&self, mut stream: tokio::net::TcpStream) {
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&request);
        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
        if path == "/hang" {
            // Accepts and never answers (a stuck issuer).
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            return;
        }
        let (status, body) = {
            let mut state = self.state.lock().unwrap();
            match path.as_str() {
                "/.well-known/openid-configuration" => {
                    state.discovery_hits += 1;
                    let doc = json!({"issuer": self.url, "jwks_uri": format!("{}/keys", self.url)});
                    ("200 OK", doc.to_string())
                }
                "/keys" => {
                    state.jwks_hits += 1;
                    if state.failing {
                        ("503 Service Unavailable", "{}".to_owned())
                    } else {
                        ("200 OK", state.jwks.to_string())
                    }
                }
                "/big" => (
                    "200 OK",
                    json!({"keys": [], "pad": "x".repeat(300 * 1024)}).to_string(),
                ),
                _ => ("404 Not Found", "{}".to_owned()),
            }
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    /// Replaces the key set served at `/keys`.
    pub(crate) fn set_keys(&self, keys: Vec<Value>) {
        self.state.lock().unwrap().jwks = json!({ "keys": keys });
    }

    /// Makes `/keys` answer 503 (`true`) or the key set again (`false`).
    pub(crate) fn set_failing(&self, failing: bool) {
        self.state.lock().unwrap().failing = failing;
    }

    /// How many times `/keys` was fetched (answered or not).
    pub(crate) fn jwks_hits(&self) -> usize {
        self.state.lock().unwrap().jwks_hits
    }

    /// How many times the discovery document was fetched.
    pub(crate) fn discovery_hits(&self) -> usize {
        self.state.lock().unwrap().discovery_hits
    }
}
