//! The local gateway under load.
//!
//! Run with: `cargo bench --all-features --bench local_gateway`
//!
//! - `broadcast_received/{1,1000}`: from `Broadcaster::broadcast` (through the SDK's management
//!   client, signed, over HTTP) until every connected tokio-tungstenite client has received the
//!   message. One client is the baseline, measured in the same run. Target: < 1 s for 1,000.
//! - Memory per idle connection: the gateway's resident memory (VmRSS) before and after 10,000
//!   idle WebSocket connections, opened by a child process so that only the server side is
//!   counted. Target: 10,000 idle connections ≤ 100 MB.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The tests' helpers (the local SDK configuration), shared rather than copied.
#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use futures_util::StreamExt;
use stateless_ws::broadcast::{ApiGatewaySender, Broadcaster, Payload};
use stateless_ws::lambda::{self, Context};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::{Membership, RoomId, RouteResponse, WebSocketEvent};
use stateless_ws_local::{LocalGateway, LocalGatewayConfig, RunningGateway};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

const CHILD_ENV: &str = "LOCAL_GATEWAY_BENCH_CLIENTS";
const IDLE_CONNECTIONS: usize = 10_000;

/// A gateway whose `$connect` joins the room named in the query string (`?room=`), on an
/// in-memory store, and a broadcaster on that store.
async fn start() -> (RunningGateway, Broadcaster) {
    let store = Arc::new(InMemoryStore::new());
    let sender = Arc::new(ApiGatewaySender::new(&common::local_sdk_config().await));
    let on_connect = Arc::clone(&store);
    let gateway = LocalGateway::new(LocalGatewayConfig::default())
        .route(
            "$connect",
            lambda::service(move |event: WebSocketEvent, _: Context| {
                let store = Arc::clone(&on_connect);
                async move {
                    let WebSocketEvent::Connect(connect) = event else {
                        return Ok(RouteResponse::ok());
                    };
                    let room = RoomId::new(connect.query("room").unwrap_or("general")).unwrap();
                    let endpoint = connect.context.management_endpoint().unwrap();
                    let record = Membership::new(connect.context.connection_id, room)
                        .with_endpoint(endpoint);
                    store.join(&record).await.unwrap();
                    Ok(RouteResponse::ok())
                }
            }),
        )
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (gateway, Broadcaster::new(store, sender))
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

fn bench_broadcast(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (gateway, broadcaster) = rt.block_on(start());
    let mut group = c.benchmark_group("broadcast_received");
    group.sample_size(20);
    for n in [1usize, 1_000] {
        let room = RoomId::new(format!("bench-{n}")).unwrap();
        let clients = rt.block_on(async {
            futures_util::stream::iter(0..n)
                .map(|_| {
                    let url = format!("{}?room={room}", gateway.ws_url());
                    async move { connect_async(url).await.unwrap().0 }
                })
                .buffer_unordered(64)
                .collect::<Vec<_>>()
                .await
        });
        // One lock per iteration (not per socket): `iter_custom`'s closure cannot hold `&mut`.
        let clients = tokio::sync::Mutex::new(clients);
        let payload =
            Payload::text(r#"{"type":"message","room":"bench","message":"hello"}"#).unwrap();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.to_async(&rt).iter_custom(|iters| {
                let (clients, broadcaster, payload, room) =
                    (&clients, &broadcaster, &payload, &room);
                async move {
                    let mut clients = clients.lock().await;
                    let start = Instant::now();
                    for _ in 0..iters {
                        let report = broadcaster.broadcast(room, payload, None).await.unwrap();
                        assert_eq!(report.delivered.len(), n, "{report}");
                        futures_util::future::join_all(clients.iter_mut().map(|ws| async move {
                            match ws.next().await {
                                Some(Ok(Message::Text(_))) => {}
                                other => panic!("client lost the broadcast: {other:?}"),
                            }
                        }))
                        .await;
                    }
                    start.elapsed()
                }
            });
        });
    }
    group.finish();
    rt.block_on(gateway.shutdown());
}

criterion_group!(benches, bench_broadcast);

/// Child process: open `n` idle connections to `url`, print `ready`, hold them until stdin
/// closes.
fn run_clients(spec: &str) {
    let (url, n) = spec.rsplit_once(' ').unwrap();
    let n: usize = n.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let clients: Vec<_> = futures_util::stream::iter(0..n)
            .map(|_| async { connect_async(url).await.unwrap().0 })
            .buffer_unordered(128)
            .collect()
            .await;
        println!("ready {}", clients.len());
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        drop(clients);
    });
}

fn idle_memory() {
    use std::io::{BufRead, BufReader, Write};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (gateway, _broadcaster) = rt.block_on(start());
    let before = rss_bytes();
    let started = Instant::now();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(
            CHILD_ENV,
            format!("{}?room=idle {IDLE_CONNECTIONS}", gateway.ws_url()),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    assert_eq!(ready, format!("ready {IDLE_CONNECTIONS}"));
    rt.block_on(async {
        while gateway.connection_count() < IDLE_CONNECTIONS {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    let after = rss_bytes();
    let opened_in = started.elapsed();
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    child.wait().unwrap();
    let grown = after.saturating_sub(before);
    println!(
        "\n== idle connections ==\n{IDLE_CONNECTIONS} idle connections (opened in {opened_in:.1?}): gateway RSS {:.1} MB -> {:.1} MB, +{:.1} MB, {:.1} KB per connection (target: 10,000 <= 100 MB)",
        before as f64 / 1e6,
        after as f64 / 1e6,
        grown as f64 / 1e6,
        grown as f64 / 1024.0 / IDLE_CONNECTIONS as f64
    );
    rt.block_on(gateway.shutdown());
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        run_clients(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Only when benchmarking for real (`cargo bench`), not in `cargo test --benches`.
    if std::env::args().any(|a| a == "--bench") {
        idle_memory();
    }
}
