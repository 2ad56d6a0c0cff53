//! Queued fan-out on an endpoint slower than the queue's visibility timeout: how many copies
//! each target receives. One job of [`TARGETS`] targets, posts one at a time taking
//! [`POST_DELAY`] each (the job needs 2.5× the visibility timeout), [`VISIBILITY`] visibility,
//! at most 5 receives before the dead-letter list, two workers. Measured in the same run:
//!
//! - `no_deadline`: the baseline — workers that receive a job, run it to the end and delete
//!   it, as `WorkerPool` did before jobs got a deadline (every receipt goes stale while the job
//!   runs, so the job comes back, is run again, and ends dead-lettered);
//! - `pool`: `InMemoryQueue::spawn_workers`, which gives each job a deadline inside its
//!   visibility timeout (`visibility_deadline`) and re-enqueues what is left as a remainder job.
//!
//! Run with: `cargo bench --all-features --bench slow_endpoint`
//!
//! Criterion times one fan-out until the queue is empty (jobs done or dead-lettered). The
//! closing summary prints the copies per target (most and total), the targets reached, the
//! targets reported failed and the dead letters. Target: at most one copy per target, no dead
//! letter; every target delivered or reported.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group};
use stateless_ws::broadcast::{BroadcastConfig, Broadcaster, Payload, RecordingSender};
use stateless_ws::queue::{FanoutPlanner, FanoutWorker, InMemoryQueue, QueueConfig};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::{ConnectionId, Membership, RoomId};

const TARGETS: usize = 10;
const POST_DELAY: Duration = Duration::from_millis(100);
const VISIBILITY: Duration = Duration::from_millis(400);
const MAX_RECEIVES: u32 = 5;
const WORKERS: usize = 2;
const VARIANTS: [&str; 2] = ["no_deadline", "pool"];

#[derive(Default, Clone, Copy)]
struct Tally {
    runs: u64,
    most_copies: usize,
    copies: usize,
    reached: usize,
    reported_failed: u64,
    dead_letters: usize,
}

static TALLIES: Mutex<BTreeMap<&'static str, Tally>> = Mutex::new(BTreeMap::new());

fn member(i: usize) -> ConnectionId {
    ConnectionId::new(format!("member-{i:03}=")).unwrap()
}

/// One fan-out of `variant` until the queue is empty; returns its time.
async fn run(variant: &'static str) -> Duration {
    let store: Arc<dyn ConnectionStore> = Arc::new(InMemoryStore::new());
    let room = RoomId::new("slow").unwrap();
    for i in 0..TARGETS {
        store
            .join(&Membership::new(member(i), room.clone()))
            .await
            .unwrap();
    }
    let queue = Arc::new(
        InMemoryQueue::new()
            .with_visibility_timeout(VISIBILITY)
            .with_max_receive_count(MAX_RECEIVES),
    );
    let sender = RecordingSender::new();
    sender.set_latency(POST_DELAY);
    let mut config = BroadcastConfig::default();
    config.concurrency = 1;
    let broadcaster = Broadcaster::new(store.clone(), Arc::new(sender.clone())).with_config(config);
    let mut tuning = QueueConfig::default();
    tuning.max_generations = 50;
    let worker = FanoutWorker::new(broadcaster, queue.clone()).with_config(tuning);
    let start = Instant::now();
    FanoutPlanner::new(store, queue.clone())
        .enqueue_broadcast(&room, &Payload::text("hi").unwrap(), None)
        .await
        .unwrap();
    let mut reported_failed = 0;
    if variant == "pool" {
        let pool = queue.spawn_workers(&worker, WORKERS);
        queue.wait_until_empty().await;
        let report = pool.shutdown().await;
        reported_failed = report.failed_targets;
    } else {
        let tasks: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (queue, worker) = (queue.clone(), worker.clone());
                tokio::spawn(async move {
                    loop {
                        let batch = queue.receive(1, Duration::from_millis(50)).await;
                        if batch.is_empty() && queue.is_empty() && queue.in_flight() == 0 {
                            break;
                        }
                        for message in batch {
                            if worker.process(&message.body).await.is_ack() {
                                queue.delete(&message.receipt);
                            }
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }
    let took = start.elapsed();
    let copies: Vec<usize> = (0..TARGETS)
        .map(|i| sender.messages(&member(i)).len())
        .collect();
    let mut tallies = TALLIES.lock().unwrap();
    let tally = tallies.entry(variant).or_default();
    tally.runs += 1;
    tally.most_copies = tally
        .most_copies
        .max(copies.iter().copied().max().unwrap_or(0));
    tally.copies += copies.iter().sum::<usize>();
    tally.reached += copies.iter().filter(|&&c| c > 0).count();
    tally.reported_failed += reported_failed;
    tally.dead_letters += queue.dead_letters().len();
    took
}

fn bench_slow(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("slow_endpoint");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(100));
    group.measurement_time(Duration::from_secs(10));
    for variant in VARIANTS {
        group.bench_with_input(BenchmarkId::new(variant, TARGETS), &variant, |b, &v| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += run(v).await;
                }
                total
            });
        });
    }
    group.finish();
}

fn summary() {
    println!(
        "\n== slow endpoint: {TARGETS} targets, {POST_DELAY:?} a post one at a time, visibility {VISIBILITY:?}, {WORKERS} workers, {MAX_RECEIVES} receives =="
    );
    for (variant, t) in TALLIES.lock().unwrap().iter() {
        let runs = t.runs.max(1) as f64;
        println!(
            "{variant:>11}: most copies to one target {}, copies per target {:.2}, targets reached {:.1}/{TARGETS}, reported failed {:.1}, dead letters {:.1} (mean of {} runs)",
            t.most_copies,
            t.copies as f64 / runs / TARGETS as f64,
            t.reached as f64 / runs,
            t.reported_failed as f64 / runs,
            t.dead_letters as f64 / runs,
            t.runs
        );
    }
}

criterion_group!(benches, bench_slow);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
