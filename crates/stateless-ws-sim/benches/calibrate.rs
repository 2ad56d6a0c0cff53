//! Calibration (issue 22, item 4): the simulator's predictions against measured runs at 1,000
//! and 10,000 members.
//!
//! Run with: `cargo bench -p stateless-ws-sim --bench calibrate` (sizes: env
//! `CALIBRATE_SIZES`, default `1000,10000`; the DynamoDB part needs `DYNAMODB_ENDPOINT`, e.g.
//! from `scripts/dynamodb-local.sh start`, and is skipped with its reason when it is unset).
//!
//! A bench rather than a subcommand: it needs the AWS SDK (`SigV4Sender`'s credentials,
//! `DynamoDbStore`), the local gateway and WebSocket clients, which stay dev-dependencies so the
//! simulator's binary builds without them; and it measures wall time on a shared machine, which
//! is no test for CI (the error computation, `plan_report::error_percent`, has a unit test).
//!
//! 1. **The local gateway**: `LocalGateway` on loopback, N real tokio-tungstenite clients whose
//!    `$connect` joins one room of an `InMemoryStore`; a `Broadcaster` on `SigV4Sender` to the
//!    gateway's management endpoint, on a thread of its own (one "Lambda core"). Two probes:
//!    200 single posts (the idle latency), and 1,000 posts by 64 tasks in turn, as the
//!    broadcaster's workers post, after a round that warms the pool (the latency under the
//!    broadcaster's own load; the local gateway shares the two cores) with the thread's CPU over
//!    it (`/proc/thread-self/schedstat`). The loaded
//!    latency holds the sender's CPU and its wait for the thread, which the simulator charges on
//!    its core apart, so the latency fed to it is fitted: the one for which the simulator's own
//!    run of the probe gives the measured p50/p99. Those feed scenario (b)'s in-line run (no
//!    throttle, no gone connections, a store with no latency, as the `InMemoryStore` is); its
//!    simulated time is compared with the measured broadcast (median of 9).
//! 2. **MiniStack's DynamoDB**: N records in a room of a `DynamoDbStore` with pages of 500
//!    items; probes of a full page (500) and a small one (50), taken before each of the 3
//!    listings, give the page's fixed and per-row latency, which feed `SimStore`; its listing
//!    time (as DynamoDB pages: an exactly full last page costs one more, empty request) is
//!    compared with the measured one (median of 3).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use stateless_ws::broadcast::{
    BroadcastConfig, Broadcaster, ConnectionSender, Payload, SigV4Sender, Target,
};
use stateless_ws::lambda::{self, Context};
use stateless_ws::store::{ConnectionStore, DynamoDbStore, InMemoryStore};
use stateless_ws::{ConnectionId, Membership, RoomId, RouteResponse, WebSocketEvent};
use stateless_ws_local::{LocalGateway, LocalGatewayConfig};
use stateless_ws_sim::clock::run_paused;
use stateless_ws_sim::core::SimCore;
use stateless_ws_sim::plan_report::error_percent;
use stateless_ws_sim::scenario::{BroadcastScenario, Mode};
use stateless_ws_sim::sender::{ApiParams, SimApi, SimSender};
use stateless_ws_sim::store::{PAGE_BYTES, SimStore, StoreParams};

const RUNS: usize = 3;
/// Broadcasts measured on the gateway (the median): a 1,000-member broadcast takes ~65 ms,
/// where one run's noise on a shared machine is ±15 %.
const GATEWAY_RUNS: usize = 9;
const PROBE: usize = 200;
/// The loaded probe: posts at the broadcaster's 64 in flight, after as many again to warm the
/// connection pool to 64 connections.
const LOADED_PROBE: usize = 1_000;
const IN_FLIGHT: usize = 64;
const DDB_PAGE: usize = 500;

fn room() -> RoomId {
    RoomId::new("calibrate").unwrap()
}

/// This thread's CPU time so far (`/proc/thread-self/schedstat`, nanoseconds on the CPU).
fn thread_cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    Duration::from_nanos(s.split_whitespace().next().unwrap().parse().unwrap())
}

/// The soft limit on open files (`/proc/self/limits`).
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_024)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

async fn sdk_config(endpoint: Option<&str>) -> stateless_ws::aws_config::SdkConfig {
    use stateless_ws::aws_config::{self, BehaviorVersion, Region};
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "static",
        ));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

struct Measured {
    p50: Duration,
    p99: Duration,
    loaded_p50: Duration,
    loaded_p99: Duration,
    cpu_per_post: Duration,
    /// The sender thread's CPU per post over the loaded probe.
    probe_cpu_per_post: Duration,
    broadcast: Duration,
    delivered: usize,
}

/// The broadcaster's side, on its own thread and current-thread runtime.
fn broadcast_side(
    endpoint: String,
    store: Arc<InMemoryStore>,
    members: Vec<ConnectionId>,
) -> Measured {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let config = sdk_config(None).await;
        let sender: Arc<dyn ConnectionSender> = Arc::new(
            SigV4Sender::new(&config)
                .unwrap()
                .with_default_endpoint(&endpoint)
                .unwrap(),
        );
        let payload = Payload::text(r#"{"type":"message","text":"hello, everyone"}"#).unwrap();
        // Warm-up (connection pool, credentials), then the probe of single posts.
        for id in members.iter().take(50) {
            sender
                .post(&Target::new(id.clone()), &payload)
                .await
                .unwrap();
        }
        let mut probe = Vec::with_capacity(PROBE);
        for i in 0..PROBE {
            let target = Target::new(members[i % members.len()].clone());
            let t = Instant::now();
            sender.post(&target, &payload).await.unwrap();
            probe.push(t.elapsed());
        }
        probe.sort();
        // Posts with the broadcaster's 64 in flight: the latency the sender sees under its own
        // load (the local gateway shares this machine's two cores). A first round warms the
        // pool to 64 connections; the second is measured, with this thread's CPU over it.
        // 64 tasks posting in turn, as the broadcaster's worker pool does.
        let shared_members = Arc::new(members.clone());
        let in_flight = |start: usize| {
            let next = Arc::new(AtomicUsize::new(start));
            let end = start + LOADED_PROBE;
            let workers: Vec<_> = (0..IN_FLIGHT)
                .map(|_| {
                    let (sender, payload) = (Arc::clone(&sender), payload.clone());
                    let (members, next) = (Arc::clone(&shared_members), Arc::clone(&next));
                    tokio::spawn(async move {
                        let mut times = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= end {
                                return times;
                            }
                            let target = Target::new(members[i % members.len()].clone());
                            let t = Instant::now();
                            sender.post(&target, &payload).await.unwrap();
                            times.push(t.elapsed());
                        }
                    })
                })
                .collect();
            async move {
                let mut all = Vec::with_capacity(LOADED_PROBE);
                for worker in workers {
                    all.extend(worker.await.unwrap());
                }
                all
            }
        };
        in_flight(0).await;
        let cpu0 = thread_cpu();
        let mut loaded = in_flight(LOADED_PROBE).await;
        let probe_cpu = (thread_cpu() - cpu0) / LOADED_PROBE as u32;
        loaded.sort();
        let mut config = BroadcastConfig::default();
        config.list_delivered = false;
        let broadcaster = Broadcaster::new(store, sender).with_config(config);
        let (mut walls, mut cpus, mut delivered) = (Vec::new(), Vec::new(), 0);
        for _ in 0..GATEWAY_RUNS {
            let (cpu0, t) = (thread_cpu(), Instant::now());
            let report = broadcaster
                .broadcast(&room(), &payload, None)
                .await
                .unwrap();
            walls.push(t.elapsed());
            cpus.push(thread_cpu() - cpu0);
            delivered = report.delivered_count;
        }
        let cpu = median(cpus);
        Measured {
            p50: quantile(&probe, 0.5),
            p99: quantile(&probe, 0.99),
            loaded_p50: quantile(&loaded, 0.5),
            loaded_p99: quantile(&loaded, 0.99),
            cpu_per_post: cpu / members.len().max(1) as u32,
            probe_cpu_per_post: probe_cpu,
            broadcast: median(walls),
            delivered,
        }
    })
}

fn gateway_calibration(n: usize) {
    let needed = 2 * n as u64 + 200;
    let limit = open_files_limit();
    if needed > limit {
        println!(
            "| gateway | {n} | skipped: {needed} file descriptors needed, `ulimit -n` is {limit} |"
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(InMemoryStore::new());
    let received = Arc::new(AtomicU64::new(0));
    let (gateway, members) = rt.block_on(async {
        let s = Arc::clone(&store);
        let connect = lambda::service(move |event: WebSocketEvent, _: Context| {
            let store = Arc::clone(&s);
            async move {
                let WebSocketEvent::Connect(connect) = event else {
                    return Ok(RouteResponse::error(400, "not a connect"));
                };
                store
                    .join(&Membership::for_connect(&connect, room()).unwrap())
                    .await
                    .unwrap();
                Ok(RouteResponse::ok())
            }
        });
        let gateway = LocalGateway::new(LocalGatewayConfig::default())
            .route("$connect", connect)
            .bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let url = gateway.ws_url();
        let clients = futures_util::stream::iter(0..n)
            .map(|_| tokio_tungstenite::connect_async(url.clone()))
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        for client in clients {
            let (ws, _) = client.unwrap();
            let received = Arc::clone(&received);
            tokio::spawn(async move {
                let (_write, mut read) = ws.split();
                while let Some(Ok(message)) = read.next().await {
                    if message.is_text() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let members: Vec<ConnectionId> = store
            .room_connections(&room())
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.connection_id)
            .collect();
        (gateway, members)
    });
    assert_eq!(members.len(), n);
    let endpoint = gateway.management_endpoint();
    let (st, ids) = (Arc::clone(&store), members.clone());
    let measured = std::thread::spawn(move || broadcast_side(endpoint, st, ids))
        .join()
        .unwrap();
    assert_eq!(measured.delivered, n);
    let expected = (GATEWAY_RUNS * n + 50 + PROBE + 2 * LOADED_PROBE) as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.block_on(gateway.shutdown());

    // The loaded probe's latency holds the sender's own CPU and its wait for the thread; the
    // simulator charges those on its core apart from the latency, so the latency it is given
    // is the one that makes its own run of the probe match the measured one.
    let (fit50, fit99) = fit_latency(
        measured.loaded_p50,
        measured.loaded_p99,
        measured.probe_cpu_per_post,
    );
    for (probe, p50, p99, cpu) in [
        (
            format!(
                "{PROBE} single posts: p50 {} / p99 {}",
                ms(measured.p50),
                ms(measured.p99)
            ),
            measured.p50,
            measured.p99,
            measured.cpu_per_post,
        ),
        (
            format!(
                "{LOADED_PROBE} posts, {IN_FLIGHT} in flight: p50 {} / p99 {}, CPU {:.1} µs a post → fitted latency {} / {}",
                ms(measured.loaded_p50),
                ms(measured.loaded_p99),
                measured.probe_cpu_per_post.as_secs_f64() * 1e6,
                ms(fit50),
                ms(fit99)
            ),
            fit50,
            fit99,
            measured.probe_cpu_per_post,
        ),
    ] {
        let mut s = BroadcastScenario::default();
        s.members = n;
        s.api.rate = 1_000_000_000;
        s.api.burst = 1_000_000_000;
        s.api.gone_fraction = 0.0;
        s.api.latency_p50 = p50;
        s.api.latency_p99 = p99;
        s.api.post_cpu = cpu;
        s.store.page_latency = Duration::ZERO;
        s.store.page_latency_per_mb = Duration::ZERO;
        s.store.op_latency = Duration::ZERO;
        let predicted = s.run(Mode::InLine).unwrap().simulated;
        println!(
            "| gateway | {n} | {probe}; CPU {:.1} µs a post | {} | {} | {:+.1} % | clients received {} of {expected} |",
            cpu.as_secs_f64() * 1e6,
            ms(predicted),
            ms(measured.broadcast),
            error_percent(predicted.as_secs_f64(), measured.broadcast.as_secs_f64()),
            received.load(Ordering::Relaxed),
        );
    }
}

/// The simulator's own run of the loaded probe: `LOADED_PROBE` posts, `IN_FLIGHT` at a time, on
/// one core at `cpu` a post, with latency p50/p99 `l50`/`l99`; returns the posts' p50 and p99.
fn simulated_probe(l50: Duration, l99: Duration, cpu: Duration) -> (Duration, Duration) {
    run_paused(1, async {
        let mut params = ApiParams::default();
        (params.rate, params.burst) = (1_000_000_000, 1_000_000_000);
        (params.latency_p50, params.latency_p99) = (l50, l99);
        (params.gone_fraction, params.post_cpu) = (0.0, cpu);
        let api = SimApi::new(params);
        let sender = SimSender::on_core(api, SimCore::new());
        let payload = Payload::text("{}").unwrap();
        let (sender, payload) = (&sender, &payload);
        let mut v: Vec<Duration> = futures_util::stream::iter(0..LOADED_PROBE)
            .map(|i| async move {
                let target = Target::new(ConnectionId::new(format!("P{i:06}=")).unwrap());
                let t = tokio::time::Instant::now();
                sender.post(&target, payload).await.unwrap();
                t.elapsed()
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        v.sort();
        Ok((quantile(&v, 0.5), quantile(&v, 0.99)))
    })
    .unwrap()
    .0
}

/// The latency p50/p99 for which [`simulated_probe`] matches the measured probe (fixed-point
/// iteration: each step moves the inputs by the remaining difference).
fn fit_latency(m50: Duration, m99: Duration, cpu: Duration) -> (Duration, Duration) {
    let floor = Duration::from_micros(1);
    let (mut l50, mut l99) = (m50.saturating_sub(cpu).max(floor), m99.saturating_sub(cpu));
    for _ in 0..30 {
        l99 = l99.max(l50.mul_f64(1.01));
        let (s50, s99) = simulated_probe(l50, l99, cpu);
        let step = |l: Duration, m: Duration, s: Duration| {
            Duration::from_secs_f64((l.as_secs_f64() + m.as_secs_f64() - s.as_secs_f64()).max(1e-6))
        };
        (l50, l99) = (step(l50, m50, s50), step(l99, m99, s99));
    }
    (l50, l99.max(l50.mul_f64(1.01)))
}

async fn page_latency(store: &DynamoDbStore, rows: usize) -> Duration {
    let mut v = Vec::new();
    for _ in 0..4 {
        let t = Instant::now();
        let page = store.room_page(&room(), None, Some(rows)).await.unwrap();
        v.push(t.elapsed());
        assert_eq!(page.records.len(), rows);
    }
    median(v)
}

/// Lists the room; returns the records and each request's time.
async fn list_all(store: &impl ConnectionStore, limit: Option<usize>) -> (usize, Vec<Duration>) {
    let (mut cursor, mut count, mut requests) = (None, 0, Vec::new());
    loop {
        let t = tokio::time::Instant::now();
        let page = store
            .room_page(&room(), cursor.as_ref(), limit)
            .await
            .unwrap();
        count += page.records.len();
        requests.push(t.elapsed());
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (count, requests),
        }
    }
}

fn dynamodb_calibration(endpoint: &str, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (full, small, measured, measured_requests) = rt.block_on(async {
        let config = sdk_config(Some(endpoint)).await;
        let table = format!("calibrate-{}-{n}", std::process::id());
        let store = DynamoDbStore::builder()
            .client(aws_sdk_dynamodb::Client::new(&config))
            .table_name(table)
            .page_size(DDB_PAGE as u32)
            .build()
            .unwrap();
        store.ensure_table().await.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        futures_util::stream::iter(0..n)
            .map(|i| {
                let record =
                    Membership::new(ConnectionId::new(format!("C{i:08x}=")).unwrap(), room())
                        .with_connected_at(now);
                let store = &store;
                async move { store.join(&record).await.unwrap() }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        // Probes and listings interleaved, so that both meet the same load on a shared machine.
        let (mut walls, mut requests, mut fulls, mut smalls) =
            (Vec::new(), 0, Vec::new(), Vec::new());
        for _ in 0..RUNS {
            fulls.push(page_latency(&store, DDB_PAGE).await);
            smalls.push(page_latency(&store, 50).await);
            let t = Instant::now();
            let (listed, made) = list_all(&store, Some(DDB_PAGE)).await;
            walls.push(t.elapsed());
            assert_eq!(listed, n);
            requests = made.len();
            if made.len() > 1 {
                eprintln!(
                    "MiniStack {n}: first page {}, later pages median {}, last {}",
                    ms(made[0]),
                    ms(median(made[1..].to_vec())),
                    ms(made[made.len() - 1]),
                );
            }
        }
        (median(fulls), median(smalls), median(walls), requests)
    });
    // Page time = a + b × rows, from the two probes; in the model's terms, a fixed latency and a
    // latency per MB of records of PAGE_BYTES / 500 bytes (500 to a page).
    let per_row = full.saturating_sub(small).as_secs_f64() / (DDB_PAGE - 50) as f64;
    let fixed = small.as_secs_f64() - 50.0 * per_row;
    let mut params = StoreParams::default();
    params.record_bytes = PAGE_BYTES / DDB_PAGE;
    params.partition_rcu = 1_000_000_000;
    params.partition_wcu = 1_000_000_000;
    params.page_latency = Duration::from_secs_f64(fixed.max(0.0));
    params.page_latency_per_mb = Duration::from_secs_f64(per_row * DDB_PAGE as f64);
    let ((predicted, predicted_requests), _) = run_paused(1, async {
        let store = SimStore::new(params);
        for i in 0..n {
            let id = ConnectionId::new(format!("C{i:08x}=")).unwrap();
            store
                .inner()
                .join(&Membership::new(id, room()))
                .await
                .unwrap();
        }
        let t = tokio::time::Instant::now();
        let (listed, requests) = list_all(&store, None).await;
        assert_eq!(listed, n);
        Ok((t.elapsed(), requests.len()))
    })
    .unwrap();
    println!(
        "| MiniStack DynamoDB | {n} | page of {DDB_PAGE} {} / of 50 {} → {:.2} ms + {:.1} µs per row | {} | {} | {:+.1} % | requests: {predicted_requests} predicted, {measured_requests} made |",
        ms(full),
        ms(small),
        fixed * 1e3,
        per_row * 1e6,
        ms(predicted),
        ms(measured),
        error_percent(predicted.as_secs_f64(), measured.as_secs_f64()),
    );
}

fn main() {
    let sizes: Vec<usize> = std::env::var("CALIBRATE_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "calibration: simulator prediction against measured run (error = (predicted − measured) ÷ measured)\n"
    );
    println!(
        "| system | members | model input (measured) | predicted | measured | error | note |\n|---|---|---|---|---|---|---|"
    );
    for &n in &sizes {
        gateway_calibration(n);
    }
    match std::env::var("DYNAMODB_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            for &n in &sizes {
                dynamodb_calibration(&endpoint, n);
            }
        }
        _ => println!("| MiniStack DynamoDB | — | skipped: DYNAMODB_ENDPOINT is not set | | | | |"),
    }
}
