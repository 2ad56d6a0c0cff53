//! The message log's cost: a publish to a room of 100 with and without the log (the append and
//! the envelope), and a resume of 1,000 missed messages.
//!
//! Run with: `cargo bench --all-features --bench history`
//!
//! The log is `InMemoryLog` and the sender an in-process stand-in that answers each post at once
//! and keeps nothing, so the figures are this crate's own CPU cost; on DynamoDB an append adds
//! one strongly consistent Query and one conditional PutItem (see `DynamoDbLog`'s docs for their
//! measured latency). Measured in the same run:
//!
//! - `publish/plain/100`: `RoomDispatch::send` of the application's JSON (the baseline);
//! - `publish/logged/100`: `Publisher::publish` of the same data: append, envelope, send;
//! - `resume/1000`: `Publisher::resume` of 1,000 missed messages of about 200 bytes each to one
//!   connection, in pages of at most 100 messages / 96 KB.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{BenchmarkId, Criterion, criterion_group};
use serde_json::json;
use stateless_ws::broadcast::{Broadcaster, ConnectionInfo, ConnectionSender, Payload, Target};
use stateless_ws::history::{InMemoryLog, LogMessage, Position, Publisher, ResumeLimits};
use stateless_ws::queue::RoomDispatch;
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::{ConnectionId, Membership, RoomId};

const MEMBERS: usize = 100;
const MISSED: u64 = 1_000;

#[derive(Debug, Default)]
struct StandIn {
    posts: AtomicU64,
    bytes: AtomicU64,
}

impl std::fmt::Display for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StandIn")
    }
}

#[async_trait]
impl ConnectionSender for StandIn {
    async fn post(&self, _: &Target, payload: &Payload) -> stateless_ws::Result<()> {
        self.posts.fetch_add(1, Ordering::Relaxed);
        self.bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    async fn get(&self, _: &Target) -> stateless_ws::Result<ConnectionInfo> {
        Ok(ConnectionInfo::default())
    }
    async fn delete(&self, _: &Target) -> stateless_ws::Result<()> {
        Ok(())
    }
}

fn message(n: u64) -> serde_json::Value {
    json!({"type": "message", "userId": "alice", "text": format!("message {n}: {}", "x".repeat(120))})
}

fn bench_history(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let room = RoomId::new("bench").unwrap();
    let store: Arc<dyn ConnectionStore> = Arc::new(InMemoryStore::new());
    rt.block_on(async {
        for i in 0..MEMBERS {
            store
                .join(&Membership::new(
                    ConnectionId::new(format!("m{i:04}=")).unwrap(),
                    room.clone(),
                ))
                .await
                .unwrap();
        }
    });
    let sender = Arc::new(StandIn::default());
    let dispatch = RoomDispatch::new(Broadcaster::new(store.clone(), sender.clone()));

    let mut group = c.benchmark_group("publish");
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(200));
    group.measurement_time(Duration::from_secs(3));
    group.bench_with_input(BenchmarkId::new("plain", MEMBERS), &MEMBERS, |b, _| {
        b.to_async(&rt).iter(|| async {
            let payload = Payload::json(&message(1)).unwrap();
            dispatch.send(&room, &payload, None).await.unwrap()
        });
    });
    let publisher = Publisher::new(Arc::new(InMemoryLog::new()), dispatch.clone());
    group.bench_with_input(BenchmarkId::new("logged", MEMBERS), &MEMBERS, |b, _| {
        b.to_async(&rt).iter(|| async {
            publisher
                .publish(&room, LogMessage::new(message(1)), None)
                .await
                .unwrap()
        });
    });
    group.finish();

    // A room with 1,000 messages the client missed.
    let log = Arc::new(InMemoryLog::new());
    let publisher = Publisher::new(log, dispatch.clone());
    let quiet = RoomId::new("missed").unwrap();
    let epoch = rt.block_on(async {
        let mut epoch = String::new();
        for n in 1..=MISSED {
            epoch = publisher
                .publish(&quiet, LogMessage::new(message(n)), None)
                .await
                .unwrap()
                .envelope
                .epoch;
        }
        epoch
    });
    let mut group = c.benchmark_group("resume");
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(200));
    group.measurement_time(Duration::from_secs(3));
    let pages = AtomicU64::new(0);
    group.bench_with_input(BenchmarkId::from_parameter(MISSED), &MISSED, |b, _| {
        b.to_async(&rt).iter_custom(|iters| {
            let (publisher, quiet, epoch, pages) = (&publisher, &quiet, &epoch, &pages);
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let resumed = publisher
                        .resume(
                            ConnectionId::new("r=").unwrap(),
                            quiet,
                            &Position::new(epoch.clone(), 0),
                            ResumeLimits::default(),
                        )
                        .await
                        .unwrap();
                    assert_eq!(resumed.messages as u64, MISSED);
                    pages.store(resumed.pages as u64, Ordering::Relaxed);
                }
                start.elapsed()
            }
        });
    });
    group.finish();
    println!(
        "\n== history: resume of {MISSED} missed messages = {} room.history pages ==",
        pages.load(Ordering::Relaxed)
    );
}

criterion_group!(benches, bench_history);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
