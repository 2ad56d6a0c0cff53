//! Streaming fan-out vs collect-first, on rooms of 1,000, 10,000 and 100,000 members, with the
//! listing alone and the posting alone as baselines.
//!
//! Run with: `cargo bench --all-features --bench streaming`
//!
//! The store is the in-memory store behind `test_util::InstrumentedStore`, which makes every
//! page read take [`PAGE_DELAY`] — about a 1 MB DynamoDB `Query` page ([`PAGE_SIZE`] records of this layout); the
//! sender is an in-process stand-in for the management API that answers each post after
//! [`POST_DELAY`] and keeps nothing but counts (so it adds no memory of its own). Measured in the
//! same run, for each room size:
//!
//! - `list_only`: `room_connections` alone (every page, one after another) — the listing time;
//! - `post_only`: `send_to` alone, the records already in hand — the posting time;
//! - `collect_first`: `room_connections`, then `send_to` — how `broadcast` worked before it
//!   streamed (listing + posting);
//! - `stream`: `broadcast`, reading pages while the workers post (the report lists every
//!   delivered id);
//! - `stream_counts`: the same with `BroadcastConfig::list_delivered = false` (the report keeps
//!   counts and exceptions only);
//! - `plan_only`: the queue planner's `enqueue_targets` alone, the records already in hand, into
//!   an in-memory queue whose `SendMessageBatch` takes [`BATCH_DELAY`] — the enqueueing time;
//! - `plan`: `FanoutPlanner::enqueue_broadcast`, reading pages while it packs and sends jobs.
//!
//! Criterion times the whole fan-out. The closing summary runs each variant once more in a
//! child process of its own and prints the time to the first post, the total time and the peak
//! memory the fan-out added (the process's `VmHWM` minus its `VmRSS` just before, with the room
//! already in the store; Linux), then for each room size the streaming total over
//! max(listing, posting). Targets: the streaming total within 1.1× of max(listing, posting);
//! time to first post ≤ one small read (`BroadcastConfig::first_page`) whatever the room's size;
//! peak memory of `stream_counts` flat (within 2×) from 10,000 to 100,000 members.
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
use stateless_ws::queue::{FanoutPlanner, InMemoryQueue, JobContext, JobQueue};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::test_util::{InstrumentedStore, StoreOp};
use stateless_ws::{ConnectionId, Membership, RoomId, UserId};

/// Room sizes timed by criterion (each sample of 100,000 takes seconds).
const SIZES: [usize; 2] = [10_000, 100_000];
/// Room sizes of the closing summary (one child process per run).
const SUMMARY_SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const PAGE_SIZE: usize = 4_000;
const PAGE_DELAY: Duration = Duration::from_millis(50);
const POST_DELAY: Duration = Duration::from_millis(1);
/// One `SendMessageBatch` of the planner (SQS answers in ~10–20 ms).
const BATCH_DELAY: Duration = Duration::from_millis(10);
const VARIANTS: [&str; 7] = [
    "list_only",
    "post_only",
    "collect_first",
    "stream",
    "stream_counts",
    "plan_only",
    "plan",
];
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

/// An in-memory queue whose batches take `BATCH_DELAY`, like SQS's.
#[derive(Debug, Default)]
struct SlowQueue(InMemoryQueue);

impl std::fmt::Display for SlowQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlowQueue")
    }
}

#[async_trait]
impl JobQueue for SlowQueue {
    fn max_message_bytes(&self) -> usize {
        self.0.max_message_bytes()
    }
    async fn send_batch(
        &self,
        bodies: &[String],
    ) -> stateless_ws::Result<Vec<stateless_ws::Result<()>>> {
        tokio::time::sleep(BATCH_DELAY).await;
        self.0.send_batch(bodies).await
    }
}

/// One planner run of `variant` (`plan_only` or `plan`): (targets enqueued, time, start).
async fn plan(s: &Setup, variant: &str) -> (usize, Duration, Instant) {
    let queue = Arc::new(SlowQueue::default());
    let planner = FanoutPlanner::new(s.store.clone(), queue);
    let payload = Payload::text(r#"{"type":"message","message":"hello"}"#).unwrap();
    let in_hand = match variant {
        "plan_only" => s.store.room_connections(&s.room).await.unwrap(),
        _ => Vec::new(),
    };
    let start = Instant::now();
    let enqueued = match variant {
        "plan_only" => {
            let context = JobContext::room(s.room.clone());
            planner.enqueue_targets(in_hand, &payload, context).await
        }
        _ => planner.enqueue_broadcast(&s.room, &payload, None).await,
    }
    .unwrap();
    (enqueued.targets, start.elapsed(), start)
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

/// What one timed run of a variant did.
struct Run {
    sender: Arc<StandIn>,
    /// How long the timed part took (for `post_only`, the posting alone).
    elapsed: Duration,
    /// When the timed part began.
    start: Instant,
}

/// One run of `variant` over the whole room. `post_only` reads the room before its clock
/// starts; `list_only` posts nothing.
async fn fan_out(s: &Setup, variant: &str) -> Run {
    let sender = Arc::new(StandIn::default());
    if variant.starts_with("plan") {
        let (targets, elapsed, start) = plan(s, variant).await;
        // Counted as posts, so that the callers check every target was enqueued.
        sender.posts.store(targets as u64, Ordering::Relaxed);
        return Run {
            sender,
            elapsed,
            start,
        };
    }
    let mut config = BroadcastConfig::default();
    config.list_delivered = variant != "stream_counts";
    let b = Broadcaster::new(s.store.clone(), sender.clone()).with_config(config);
    let payload = Payload::text(r#"{"type":"message","message":"hello"}"#).unwrap();
    let in_hand = match variant {
        "post_only" => Some(s.store.room_connections(&s.room).await.unwrap()),
        _ => None,
    };
    let start = Instant::now();
    let report = match (variant, in_hand) {
        ("list_only", _) => {
            let records = s.store.room_connections(&s.room).await.unwrap();
            assert!(!records.is_empty());
            None
        }
        (_, Some(records)) => Some(b.send_to(records, &payload).await),
        ("collect_first", None) => {
            let records = s.store.room_connections(&s.room).await.unwrap();
            Some(b.send_to(records, &payload).await)
        }
        _ => Some(b.broadcast(&s.room, &payload, None).await.unwrap()),
    };
    let elapsed = start.elapsed();
    if let Some(report) = report {
        assert!(report.is_success(), "{report}");
    }
    Run {
        sender,
        elapsed,
        start,
    }
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
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let run = fan_out(s, variant).await;
                            let expected = if variant == "list_only" { 0 } else { n as u64 };
                            assert_eq!(run.sender.posts.load(Ordering::Relaxed), expected);
                            total += run.elapsed;
                        }
                        total
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
    let run = rt.block_on(fan_out(&s, variant));
    let first = match run.sender.first_post.get() {
        Some(at) => at.duration_since(run.start).as_millis().to_string(),
        None => "-".to_owned(),
    };
    let peak = match (status_kb("VmHWM:"), before) {
        (Some(hwm), Some(before)) => hwm.saturating_sub(before).to_string(),
        _ => "n/a".to_owned(),
    };
    println!("{first} {} {peak}", run.elapsed.as_millis());
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
    let mut totals = std::collections::HashMap::new();
    for variant in VARIANTS {
        for n in SUMMARY_SIZES {
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
            totals.insert((variant, n), total.parse::<f64>().ok());
        }
    }
    for n in SUMMARY_SIZES {
        let get = |v| totals.get(&(v, n)).copied().flatten();
        if let (Some(list), Some(post), Some(stream), Some(counts)) = (
            get("list_only"),
            get("post_only"),
            get("stream"),
            get("stream_counts"),
        ) {
            let bound = list.max(post).max(1.0);
            println!(
                "{n} members: max(listing {list} ms, posting {post} ms) = {bound} ms; \
                 stream {:.2}x, stream_counts {:.2}x of it (target <= 1.10x)",
                stream / bound,
                counts / bound
            );
        }
        if let (Some(list), Some(only), Some(plan)) =
            (get("list_only"), get("plan_only"), get("plan"))
        {
            let bound = list.max(only).max(1.0);
            println!(
                "{n} members: max(listing {list} ms, enqueueing {only} ms) = {bound} ms; \
                 planner {:.2}x of it (target <= 1.10x)",
                plan / bound
            );
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
