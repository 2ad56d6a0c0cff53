//! Queued fan-out against in-line: a room of 10,000 connections delivered by W in-process
//! workers draining an `InMemoryQueue` (jobs of 500), against one `Broadcaster::broadcast`, both
//! on the real `ApiGatewaySender` (SDK client, SigV4, HTTP/1.1 on loopback) and the tests'
//! stand-in management API answering each POST after 5 ms.
//!
//! Run with: `cargo bench --all-features --bench queue`
//!
//! Measured in the same run:
//! - `queued_fanout/inline/10000`: one broadcast, concurrency 64 (the baseline);
//! - `queued_fanout/queued_w{1,4}/10000`: `FanoutPlanner::enqueue_broadcast` then until the queue
//!   is empty, W workers of concurrency 64 each;
//! - `queued_fanout/enqueue_only/10000`: what the caller waits for — planning and enqueueing the
//!   20 jobs, without delivering them.
//!
//! It prints deliveries per second for each and the time the caller waits. On one machine the
//! workers share its cores with the stand-in, so the queued rate is bounded by CPU (signing and
//! HTTP), not by the 5 ms per POST; on Lambda each worker has its own.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "support/means.rs"]
mod means;

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use means::{mean, note};
use stateless_ws::broadcast::{ApiGatewaySender, Broadcaster, Payload};
use stateless_ws::queue::{FanoutPlanner, FanoutWorker, InMemoryQueue};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::{ConnectionId, Membership, RoomId};
use stateless_ws_local::test_util::FakeManagementApi;

const MEMBERS: usize = 10_000;
const DELAY: Duration = Duration::from_millis(5);
const WORKERS: [usize; 2] = [1, 4];

struct Setup {
    fake: FakeManagementApi,
    store: Arc<InMemoryStore>,
    broadcaster: Broadcaster,
    room: RoomId,
}

async fn setup() -> Setup {
    let fake = FakeManagementApi::start("bench").await;
    fake.set_quiet();
    fake.set_delay(DELAY);
    let sender = ApiGatewaySender::new(&common::local_sdk_config().await)
        .with_default_endpoint(&fake.endpoint())
        .unwrap();
    // DynamoDB's 1 MB pages hold about this many records.
    let store = Arc::new(InMemoryStore::new().with_page_size(3_000));
    let room = RoomId::new("big").unwrap();
    for i in 0..MEMBERS {
        let id = ConnectionId::new(format!("conn{i:06}=")).unwrap();
        store
            .join(&Membership::new(id, room.clone()))
            .await
            .unwrap();
    }
    let broadcaster = Broadcaster::new(store.clone(), Arc::new(sender));
    Setup {
        fake,
        store,
        broadcaster,
        room,
    }
}

fn bench_queue(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup());
    let payload = Payload::text(r#"{"type":"message","room":"big","message":"hello"}"#).unwrap();
    let mut group = c.benchmark_group("queued_fanout");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(MEMBERS as u64));

    group.bench_with_input(BenchmarkId::new("inline", MEMBERS), &MEMBERS, |b, _| {
        b.to_async(&rt).iter_custom(|iters| {
            let (s, payload) = (&s, payload.clone());
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let report = s
                        .broadcaster
                        .broadcast(&s.room, &payload, None)
                        .await
                        .unwrap();
                    assert_eq!(report.delivered.len(), MEMBERS, "{report}");
                }
                let elapsed = start.elapsed();
                note("inline", elapsed, iters);
                elapsed
            }
        });
    });

    for w in WORKERS {
        let name = format!("queued_w{w}");
        group.bench_with_input(BenchmarkId::new(&name, MEMBERS), &w, |b, &w| {
            b.to_async(&rt).iter_custom(|iters| {
                let (s, payload, name) = (&s, payload.clone(), name.clone());
                async move {
                    let queue = Arc::new(InMemoryQueue::new());
                    let planner = FanoutPlanner::new(s.store.clone(), queue.clone());
                    let worker = FanoutWorker::new(s.broadcaster.clone(), queue.clone());
                    let pool = queue.spawn_workers(&worker, w);
                    let before = s.fake.total_deliveries();
                    let start = Instant::now();
                    for _ in 0..iters {
                        planner
                            .enqueue_broadcast(&s.room, &payload, None)
                            .await
                            .unwrap();
                        queue.wait_until_empty().await;
                    }
                    let elapsed = start.elapsed();
                    pool.shutdown().await;
                    let delivered = s.fake.total_deliveries() - before;
                    assert_eq!(delivered, MEMBERS * usize::try_from(iters).unwrap());
                    assert!(queue.dead_letters().is_empty());
                    note(&name, elapsed, iters);
                    elapsed
                }
            });
        });
    }

    group.bench_with_input(
        BenchmarkId::new("enqueue_only", MEMBERS),
        &MEMBERS,
        |b, _| {
            b.to_async(&rt).iter_custom(|iters| {
                let (s, payload) = (&s, payload.clone());
                async move {
                    let queue = Arc::new(InMemoryQueue::new());
                    let planner = FanoutPlanner::new(s.store.clone(), queue.clone());
                    let start = Instant::now();
                    for _ in 0..iters {
                        let enqueued = planner
                            .enqueue_broadcast(&s.room, &payload, None)
                            .await
                            .unwrap();
                        assert_eq!((enqueued.jobs, enqueued.targets), (20, MEMBERS));
                    }
                    let elapsed = start.elapsed();
                    note("enqueue_only", elapsed, iters);
                    elapsed
                }
            });
        },
    );
    group.finish();
}

fn summary() {
    println!(
        "\n== queued fan-out summary ({MEMBERS} connections, {DELAY:?} per POST, jobs of 500) =="
    );
    let rate = |d: Duration| MEMBERS as f64 / d.as_secs_f64();
    let Some(inline) = mean("inline") else {
        return;
    };
    println!(
        "in-line broadcast:         {inline:>10.3?}  {:>8.0} deliveries/s  (the caller waits all of it)",
        rate(inline)
    );
    for w in WORKERS {
        if let Some(d) = mean(&format!("queued_w{w}")) {
            println!(
                "queued, {w} worker(s):       {d:>10.3?}  {:>8.0} deliveries/s  ({:.2}x in-line)",
                rate(d),
                inline.as_secs_f64() / d.as_secs_f64()
            );
        }
    }
    if let Some(d) = mean("enqueue_only") {
        println!("queued: the caller waits   {d:>10.3?}  (plan + enqueue 20 jobs)");
    }
}

criterion_group!(benches, bench_queue);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
