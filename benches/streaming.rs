//! Streaming fan-out vs collect-first, on rooms of 10,000 and 100,000 members.
//!
//! Run with: `cargo bench --all-features --bench streaming`
//!
//! The store is the in-memory store behind `test_util::InstrumentedStore`, which makes every
//! page read take [`PAGE_DELAY`] — about a 1 MB DynamoDB `Query` page ([`PAGE_SIZE`] records of this layout); the
//! sender is an in-process stand-in for the management API that answers each post after
//! [`POST_DELAY`] and keeps nothing but counts (so it adds no memory of its own). Measured in the
//! same run, for each room size:
//!
//! - `collect_first`: `room_connections` (every page, one after another), then `send_to` — how
//!   `broadcast` worked before it streamed;
//! - `stream`: `broadcast`, reading pages while the workers post (the report lists every
//!   delivered id);
//! - `stream_counts`: the same with `BroadcastConfig::list_delivered = false` (the report keeps
//!   counts and exceptions only).
//!
//! Criterion times the whole fan-out. The closing summary runs each variant once more in a
//! child process of its own and prints the time to the first post, the total time and the peak
//! memory the fan-out added (the process's `VmHWM` minus its `VmRSS` just before, with the room
//! already in the store; Linux). Targets: time to first post ≤ one page read; peak memory of
//! `stream_counts` flat (within 2×) from 10,000 to 100,000 members.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use stateless_ws::broadcast::{
    BroadcastConfig, Broadcaster, ConnectionInfo, ConnectionSender, Payload, Target,
};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::test_util::{InstrumentedStore, StoreOp};
use stateless_ws::{ConnectionId, Membership, RoomId, UserId};

const SIZES: [usize; 2] = [10_000, 100_000];
const PAGE_SIZE: usize = 4_000;
const PAGE_DELAY: Duration = Duration::from_millis(50);
const POST_DELAY: Duration = Duration::from_millis(1);
const VARIANTS: [&str; 3] = ["collect_first", "stream", "stream_counts"];
const CHILD: &str = "STATELESS_WS_STREAMING_BENCH_CHILD";

/// Answers every post after `POST_DELAY`; counts posts and notes when the first one left.
#[derive(Debug, Default)]
struct StandIn {
    posts: AtomicU64,
    first_post: OnceLock<Instant>,
}

impl std::fmt::Display for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StandIn")
    }
}

#[async_trait]
impl ConnectionSender for StandIn {
    async fn post(&self, _: &Target, _: &Payload) -> stateless_ws::Result<()> {
        let _ = self.first_post.set(Instant::now());
        tokio::time::sleep(POST_DELAY).await;
        self.posts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    async fn get(&self, _: &Target) -> stateless_ws::Result<ConnectionInfo> {
        Ok(ConnectionInfo::default())
    }
    async fn delete(&self, _: &Target) -> stateless_ws::Result<()> {
        Ok(())
    }
}

struct Setup {
    room: RoomId,
    store: Arc<InstrumentedStore>,
}

async fn setup(n: usize) -> Setup {
    let room = RoomId::new("big").unwrap();
    let store = InMemoryStore::new().with_page_size(PAGE_SIZE);
    for i in 0..n {
        let conn = ConnectionId::new(format!("conn-{i:07}=")).unwrap();
        store
            .join(
                &Membership::new(conn, room.clone())
                    .with_user(UserId::new(format!("user-{i}")).unwrap())
                    .with_endpoint("https://abc123.execute-api.us-east-1.amazonaws.com/prod"),
            )
            .await
            .unwrap();
    }
    let store = InstrumentedStore::new(Arc::new(store));
    store.set_delay(StoreOp::RoomPage, PAGE_DELAY);
    Setup {
        room,
        store: Arc::new(store),
    }
}

/// One fan-out of `variant` to the whole room; returns the sender (for its counts).
async fn fan_out(s: &Setup, variant: &str) -> Arc<StandIn> {
    let sender = Arc::new(StandIn::default());
    let mut config = BroadcastConfig::default();
    config.list_delivered = variant != "stream_counts";
    let b = Broadcaster::new(s.store.clone(), sender.clone()).with_config(config);
    let payload = Payload::text(r#"{"type":"message","message":"hello"}"#).unwrap();
    let report = match variant {
        "collect_first" => {
            let records = s.store.room_connections(&s.room).await.unwrap();
            b.send_to(records, &payload).await
        }
        _ => b.broadcast(&s.room, &payload, None).await.unwrap(),
    };
    assert!(report.is_success(), "{report}");
    sender
}

fn bench_streaming(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("streaming");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(100));
    group.measurement_time(Duration::from_secs(5));
    for n in SIZES {
        let s = rt.block_on(setup(n));
        group.throughput(Throughput::Elements(n as u64));
        for variant in VARIANTS {
            group.bench_with_input(BenchmarkId::new(variant, n), &n, |b, _| {
                b.to_async(&rt).iter_custom(|iters| {
                    let s = &s;
                    async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let sender = fan_out(s, variant).await;
                            assert_eq!(sender.posts.load(Ordering::Relaxed), n as u64);
                        }
                        start.elapsed()
                    }
                });
            });
        }
    }
    group.finish();
}

/// A `kB` figure from `/proc/self/status`.
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// In a child process: one fan-out, then `first_post_ms total_ms peak_kb` on stdout.
fn child(spec: &str) {
    let (variant, n) = spec.split_once(':').unwrap();
    let n: usize = n.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup(n));
    let before = status_kb("VmRSS:");
    let start = Instant::now();
    let sender = rt.block_on(fan_out(&s, variant));
    let total = start.elapsed();
    let first = sender.first_post.get().unwrap().duration_since(start);
    let peak = match (status_kb("VmHWM:"), before) {
        (Some(hwm), Some(before)) => hwm.saturating_sub(before).to_string(),
        _ => "n/a".to_owned(),
    };
    println!("{} {} {peak}", first.as_millis(), total.as_millis());
}

fn summary() {
    println!(
        "\n== streaming summary (pages of {PAGE_SIZE} records, {PAGE_DELAY:?} per page read, {POST_DELAY:?} per post, one child process per run) =="
    );
    println!(
        "{:<14} {:>8} {:>14} {:>10} {:>16}",
        "variant", "members", "first post", "total", "peak added"
    );
    let exe = std::env::current_exe().unwrap();
    let mut peaks = std::collections::HashMap::new();
    for variant in VARIANTS {
        for n in SIZES {
            let out = Command::new(&exe)
                .env(CHILD, format!("{variant}:{n}"))
                .output()
                .unwrap();
            let line = String::from_utf8_lossy(&out.stdout);
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [first, total, peak] = fields[..] else {
                println!(
                    "{variant:<14} {n:>8}  (child failed: {})",
                    String::from_utf8_lossy(&out.stderr)
                );
                continue;
            };
            println!(
                "{variant:<14} {n:>8} {:>11} ms {:>7} ms {:>13} kB",
                first, total, peak
            );
            peaks.insert((variant, n), peak.parse::<f64>().ok());
        }
    }
    for variant in VARIANTS {
        if let (Some(Some(small)), Some(Some(large))) = (
            peaks.get(&(variant, SIZES[0])),
            peaks.get(&(variant, SIZES[1])),
        ) {
            println!(
                "{variant}: peak memory at {} / at {} members = {:.2}x",
                SIZES[1],
                SIZES[0],
                large / small.max(1.0)
            );
        }
    }
}

criterion_group!(benches, bench_streaming);

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        child(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
