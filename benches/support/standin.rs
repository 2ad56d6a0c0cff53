//! A management API stand-in for the benches: answers every `POST /{stage}/@connections/{id}`
//! with `200` after a fixed delay, over keep-alive HTTP/1.1.

use std::time::Duration;

/// A management API stand-in: answers every `POST /{stage}/@connections/{id}` with `200` after
/// `delay`, over keep-alive HTTP/1.1. Hand-rolled on raw TCP so that the stand-in (which shares
/// the machine's 2 cores with the code under test) costs as little CPU as possible; a real API
/// Gateway runs elsewhere.
pub(crate) async fn start(delay: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            socket.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                let mut chunk = [0u8; 4096];
                loop {
                    // One request: headers up to the blank line, then Content-Length bytes.
                    let (head_end, body_len) = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = std::str::from_utf8(&buf[..end])
                                .unwrap()
                                .to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                            break (end + 4, len);
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    while buf.len() < head_end + body_len {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..head_end + body_len);
                    if !delay.is_zero() {
                        // tokio's timer has 1 ms granularity (a 2 ms sleep takes ~3 ms); a
                        // blocking-pool thread sleeps to within microseconds.
                        tokio::task::spawn_blocking(move || std::thread::sleep(delay))
                            .await
                            .unwrap();
                    }
                    if socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}/bench")
}
