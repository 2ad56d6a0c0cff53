//! A connect storm: N clients connect to one room at the same moment, and each `$connect`
//! writes its record and announces `"joined"` (`Presence::entered`) — what a deploy or a network
//! blip does to a busy room. Measured in the same run, for N = 100 and N = 400:
//!
//! - `inline`: presence posts every announcement itself (the baseline: each `$connect` makes
//!   N − 1 posts, so its latency grows with the room);
//! - `queued`: `PresenceConfig::queue_above` = 50 with a `FanoutPlanner` on an `InMemoryQueue`:
//!   each `$connect` reads the room and sends one job (of up to 500 targets). The workers that
//!   deliver the jobs run elsewhere (another Lambda function) and are not part of this bench:
//!   `benches/queue.rs` measures them.
//!
//! Run with: `cargo bench --all-features --bench presence`
//!
//! The store is the in-memory store behind `test_util::InstrumentedStore` with DynamoDB-like
//! latencies ([`JOIN_DELAY`] a write, [`QUERY_DELAY`] a query, [`GET_DELAY`] a read); the sender
//! is an in-process stand-in for the management API that answers each post after
//! [`POST_DELAY`] — with 410 Gone while the target is itself still in `$connect`, as API
//! Gateway does, so the broadcaster's connect grace keeps those records. Each simulated
//! `$connect` runs as its own task; on Lambda each would have its own sandbox, here they share
//! the machine's cores.
//!
//! Criterion times a whole storm (until the last `$connect` returns), and — as `lone_connect` —
//! one `$connect` at a time into a room of N open connections: the work of one invocation
//! without the storm's competition for this machine's two cores (on Lambda, each `$connect` has
//! a sandbox of its own). The closing summary prints, over every run, the median and 99th
//! percentile of one `$connect` (join + `entered`), and the posts made. Target: with the queue,
//! a lone `$connect`'s latency does not grow with N.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use criterion::{BenchmarkId, Criterion, criterion_group};
use stateless_ws::broadcast::{Broadcaster, ConnectionInfo, ConnectionSender, Payload, Target};
use stateless_ws::presence::{Presence, PresenceConfig};
use stateless_ws::queue::{Dispatched, FanoutPlanner, InMemoryQueue};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::test_util::{InstrumentedStore, StoreOp};
use stateless_ws::{ConnectionId, Error, Membership, RoomId, UserId};

const SIZES: [usize; 2] = [100, 400];
const VARIANTS: [&str; 2] = ["inline", "queued"];
const QUEUE_ABOVE: usize = 50;
const JOIN_DELAY: Duration = Duration::from_millis(5);
const QUERY_DELAY: Duration = Duration::from_millis(8);
const GET_DELAY: Duration = Duration::from_millis(3);
const POST_DELAY: Duration = Duration::from_millis(10);

/// The management API stand-in: a post waits [`POST_DELAY`], then answers 410 Gone to a
/// connection whose `$connect` has not returned yet, and is counted otherwise.
#[derive(Debug, Default)]
struct StandIn {
    open: Mutex<HashSet<ConnectionId>>,
    posts: AtomicU64,
    gone: AtomicU64,
}

impl std::fmt::Display for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StandIn")
    }
}

#[async_trait]
impl ConnectionSender for StandIn {
    async fn post(&self, target: &Target, _: &Payload) -> stateless_ws::Result<()> {
        tokio::time::sleep(POST_DELAY).await;
        if self.open.lock().unwrap().contains(&target.connection_id) {
            self.posts.fetch_add(1, Ordering::Relaxed);
            Ok(())
        } else {
            self.gone.fetch_add(1, Ordering::Relaxed);
            Err(Error::Gone {
                connection_id: target.connection_id.clone(),
            })
        }
    }
    async fn get(&self, _: &Target) -> stateless_ws::Result<ConnectionInfo> {
        Ok(ConnectionInfo::default())
    }
    async fn delete(&self, _: &Target) -> stateless_ws::Result<()> {
        Ok(())
    }
}

/// One `variant/N`'s `$connect` latencies and its two post counts.
type Measured = (Vec<Duration>, u64, u64);

/// `$connect` latencies and post counts by `variant/N`, for the summary.
static RESULTS: Mutex<BTreeMap<String, Measured>> = Mutex::new(BTreeMap::new());

/// The parts of one run: a room of `members` connections already open, and presence as
/// `variant` announces.
struct Setup {
    store: Arc<dyn ConnectionStore>,
    sender: Arc<StandIn>,
    presence: Presence,
    queue: Arc<InMemoryQueue>,
    room: RoomId,
    now: u64,
}

async fn setup(variant: &str, members: usize) -> Setup {
    let room = RoomId::new("storm").unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sender = Arc::new(StandIn::default());
    let inner = InMemoryStore::new();
    for i in 0..members {
        let record = record(&room, &format!("member-{i:05}="), now);
        inner.join(&record).await.unwrap();
        sender.open.lock().unwrap().insert(record.connection_id);
    }
    let store = InstrumentedStore::new(Arc::new(inner));
    store.set_delay(StoreOp::Join, JOIN_DELAY);
    store.set_delay(StoreOp::RoomPage, QUERY_DELAY);
    store.set_delay(StoreOp::UserConnections, QUERY_DELAY);
    store.set_delay(StoreOp::Membership, GET_DELAY);
    let store: Arc<dyn ConnectionStore> = Arc::new(store);
    let mut presence = Presence::new(Broadcaster::new(store.clone(), sender.clone()));
    let queue = Arc::new(InMemoryQueue::new());
    if variant == "queued" {
        let mut config = PresenceConfig::default();
        config.queue_above = Some(QUEUE_ABOVE);
        presence = presence
            .with_config(config)
            .with_queue(FanoutPlanner::new(store.clone(), queue.clone()));
    }
    Setup {
        store,
        sender,
        presence,
        queue,
        room,
        now,
    }
}

fn record(room: &RoomId, id: &str, now: u64) -> Membership {
    Membership::new(ConnectionId::new(id).unwrap(), room.clone())
        .with_user(UserId::new(format!("user-{id}")).unwrap())
        .with_connected_at(now)
}

/// One `$connect`: writes `record`, announces it; returns how long that took.
async fn connect(s: &Setup, variant: &str, record: &Membership) -> Duration {
    let begun = Instant::now();
    s.store.join(record).await.unwrap();
    let report = s.presence.entered(record).await.unwrap();
    assert_eq!(report.announcements.len(), 1);
    let queued = matches!(report.announcements[0].delivery, Dispatched::Queued(_));
    assert!(variant == "queued" || !queued, "in-line presence queued");
    begun.elapsed()
}

/// One storm of `n` connections into a fresh room; returns its wall time.
async fn storm(variant: &'static str, n: usize) -> Duration {
    let s = Arc::new(setup(variant, 0).await);
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let record = record(&s.room, &format!("conn-{i:05}="), s.now);
                let took = connect(&s, variant, &record).await;
                // $connect returned: API Gateway opens the socket.
                s.sender.open.lock().unwrap().insert(record.connection_id);
                took
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(n);
    for task in tasks {
        latencies.push(task.await.unwrap());
    }
    let wall = start.elapsed();
    if variant == "queued" {
        // Every $connect that saw more than QUEUE_ABOVE others sent one job.
        let jobs = s.queue.len();
        assert!(jobs >= n - QUEUE_ABOVE - 1 && jobs <= n, "{jobs} jobs");
    }
    let mut results = RESULTS.lock().unwrap();
    let entry = results.entry(format!("storm {variant}/{n}")).or_default();
    entry.0.extend(latencies);
    entry.1 += s.sender.posts.load(Ordering::Relaxed);
    entry.2 += s.sender.gone.load(Ordering::Relaxed);
    wall
}

fn bench_storm(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("connect_storm");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(100));
    group.measurement_time(Duration::from_secs(5));
    for n in SIZES {
        for variant in VARIANTS {
            group.bench_with_input(BenchmarkId::new(variant, n), &n, |b, &n| {
                b.to_async(&rt).iter_custom(|iters| async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += storm(variant, n).await;
                    }
                    total
                });
            });
        }
    }
    group.finish();

    // One $connect at a time into a room of N open connections: the work of one invocation,
    // without the storm's competition for this machine's cores.
    let mut group = c.benchmark_group("lone_connect");
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(100));
    group.measurement_time(Duration::from_secs(3));
    for n in SIZES {
        for variant in VARIANTS {
            let s = rt.block_on(setup(variant, n));
            group.bench_with_input(BenchmarkId::new(variant, n), &n, |b, &n| {
                b.to_async(&rt).iter_custom(|iters| {
                    let s = &s;
                    async move {
                        let mut total = Duration::ZERO;
                        let mut latencies = Vec::new();
                        for i in 0..iters {
                            let record = record(&s.room, &format!("lone-{i:07}="), s.now);
                            let took = connect(s, variant, &record).await;
                            s.store.leave(&record.connection_id, &s.room).await.unwrap();
                            total += took;
                            latencies.push(took);
                        }
                        let mut results = RESULTS.lock().unwrap();
                        let entry = results.entry(format!("lone {variant}/{n}")).or_default();
                        entry.0.extend(latencies);
                        entry.1 = s.sender.posts.load(Ordering::Relaxed);
                        total
                    }
                });
            });
        }
    }
    group.finish();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary() {
    println!(
        "\n== connect storm: one $connect (join + entered); posts {POST_DELAY:?}, queries {QUERY_DELAY:?}, reads {GET_DELAY:?}, queue above {QUEUE_ABOVE} =="
    );
    let results = RESULTS.lock().unwrap();
    for (name, (latencies, posts, gone)) in results.iter() {
        let mut sorted = latencies.clone();
        sorted.sort();
        if sorted.is_empty() {
            continue;
        }
        println!(
            "{name:>17}: median {:>9.1?}  p99 {:>9.1?}  ({} $connects; posts delivered {posts}, 410 while connecting {gone})",
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.99),
            sorted.len()
        );
    }
}

criterion_group!(benches, bench_storm);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
