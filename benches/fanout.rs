//! Fan-out speed of the `Broadcaster` on the real `ApiGatewaySender` (SDK client, SigV4, HTTP/1.1
//! on loopback) against a stand-in management API that answers each POST after a fixed delay.
//!
//! Run with: `cargo bench --all-features --bench fanout`
//!
//! Measured in the same run:
//! - `broadcast/{1000,10000}` with 2 ms per POST, at the default concurrency C = 64;
//! - `sequential/{1000,10000}`: one POST after another, the pattern this crate replaces;
//! - `zero_delay/10000`: deliveries per second when the server answers at once (the CPU cost of
//!   signing + HTTP per delivery).
//!
//! - `fanout_zero_delay/sdk_ceiling/10000`: 64 tasks posting through the same SDK client in a
//!   loop, with no broadcaster at all — the ceiling any fan-out on this client and machine can
//!   reach.
//!
//! At the end it prints both times, their ratio, and the ratio to the bound N·2 ms / C.
//! Targets: ≥ 30× faster than sequential at 10,000; ≤ 1.5× the bound; ≥ 10,000 deliveries/s.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "support/means.rs"]
mod means;
#[path = "support/standin.rs"]
mod standin;

// The tests' helpers (the local SDK configuration), shared rather than copied.
#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use means::{mean, note};
use stateless_ws::broadcast::{ApiGatewaySender, Broadcaster, ConnectionSender, Payload, Target};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::{ConnectionId, Membership, RoomId};

const DELAY: Duration = Duration::from_millis(2);
const SIZES: [usize; 2] = [1_000, 10_000];

struct Setup {
    sender: Arc<ApiGatewaySender>,
    broadcaster: Broadcaster,
    targets: Vec<Target>,
    room: RoomId,
}

async fn setup(delay: Duration, n: usize) -> Setup {
    let endpoint = standin::start(delay).await;
    let config = common::local_sdk_config().await;
    let sender = Arc::new(
        ApiGatewaySender::new(&config)
            .with_default_endpoint(&endpoint)
            .unwrap(),
    );
    let store = Arc::new(InMemoryStore::new());
    let room = RoomId::new(format!("room-{n}")).unwrap();
    let mut targets = Vec::with_capacity(n);
    for i in 0..n {
        let id = ConnectionId::new(format!("conn{i:06}=")).unwrap();
        store
            .join(&Membership::new(id.clone(), room.clone()))
            .await
            .unwrap();
        targets.push(Target::new(id));
    }
    let broadcaster = Broadcaster::new(store, sender.clone());
    Setup {
        sender,
        broadcaster,
        targets,
        room,
    }
}

/// `iters` broadcasts to the whole room, each checked complete; the time is noted for the summary.
async fn time_broadcasts(s: &Setup, payload: &Payload, iters: u64, name: String) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let report = s
            .broadcaster
            .broadcast(&s.room, payload, None)
            .await
            .unwrap();
        assert_eq!(report.delivered.len(), s.targets.len(), "{report}");
    }
    let elapsed = start.elapsed();
    note(&name, elapsed, iters);
    elapsed
}

fn bench_fanout(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let payload =
        Payload::text(r#"{"type":"message","room":"general","message":"hello"}"#).unwrap();
    let mut group = c.benchmark_group("fanout_2ms");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(5));
    for n in SIZES {
        let s = rt.block_on(setup(DELAY, n));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("broadcast", n), &n, |b, _| {
            b.to_async(&rt).iter_custom(|iters| {
                time_broadcasts(&s, &payload, iters, format!("broadcast/{n}"))
            });
        });
        group.bench_with_input(BenchmarkId::new("sequential", n), &n, |b, _| {
            b.to_async(&rt).iter_custom(|iters| {
                let s = &s;
                let payload = payload.clone();
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        for target in &s.targets {
                            s.sender.post(target, &payload).await.unwrap();
                        }
                    }
                    let elapsed = start.elapsed();
                    note(&format!("sequential/{n}"), elapsed, iters);
                    elapsed
                }
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("fanout_zero_delay");
    group.sample_size(10);
    let n = 10_000;
    let s = rt.block_on(setup(Duration::ZERO, n));
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(BenchmarkId::new("broadcast", n), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            time_broadcasts(&s, &payload, iters, "zero_delay/10000".to_owned())
        });
    });
    // The ceiling of the SDK client itself on this machine: 64 tasks posting in a loop, no
    // broadcaster (no store, no report, no retries) — what any fan-out on it can reach at most.
    group.bench_function(BenchmarkId::new("sdk_ceiling", n), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (s, payload) = (&s, &payload);
            async move {
                let concurrency = stateless_ws::broadcast::BroadcastConfig::default().concurrency;
                let start = Instant::now();
                for _ in 0..iters {
                    let mut tasks = tokio::task::JoinSet::new();
                    for chunk in s.targets.chunks(s.targets.len().div_ceil(concurrency)) {
                        let (sender, payload, chunk) =
                            (s.sender.clone(), payload.clone(), chunk.to_vec());
                        tasks.spawn(async move {
                            for target in &chunk {
                                sender.post(target, &payload).await.unwrap();
                            }
                        });
                    }
                    while tasks.join_next().await.is_some() {}
                }
                let elapsed = start.elapsed();
                note("sdk_ceiling/10000", elapsed, iters);
                elapsed
            }
        });
    });
    group.finish();
}

fn summary() {
    let concurrency = stateless_ws::broadcast::BroadcastConfig::default().concurrency;
    println!("\n== fan-out summary (C = {concurrency}, {DELAY:?} per POST) ==");
    for n in SIZES {
        let (Some(fast), Some(seq)) = (
            mean(&format!("broadcast/{n}")),
            mean(&format!("sequential/{n}")),
        ) else {
            continue;
        };
        let bound = DELAY * u32::try_from(n).unwrap() / u32::try_from(concurrency).unwrap();
        println!(
            "N = {n:>6}: broadcast {:>9.1?}  sequential {:>9.1?}  speed-up {:>6.1}x  bound N*2ms/C {:>8.1?}  ratio to bound {:.2}",
            fast,
            seq,
            seq.as_secs_f64() / fast.as_secs_f64(),
            bound,
            fast.as_secs_f64() / bound.as_secs_f64(),
        );
    }
    if let Some(zero) = mean("zero_delay/10000") {
        println!(
            "zero delay: {:.0} deliveries/s (10,000 in {:.1?})",
            10_000.0 / zero.as_secs_f64(),
            zero
        );
    }
    if let Some(ceiling) = mean("sdk_ceiling/10000") {
        println!(
            "SDK ceiling (64 tasks posting directly, zero delay): {:.0} posts/s (10,000 in {:.1?})",
            10_000.0 / ceiling.as_secs_f64(),
            ceiling
        );
    }
}

criterion_group!(benches, bench_fanout);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
