//! The event source mapping: concurrency limit, cold starts and SQS batches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use stateless_ws::broadcast::{Broadcaster, Payload};
use stateless_ws::queue::{FanoutPlanner, FanoutWorker, InMemoryQueue, QueueConfig};
use stateless_ws::store::ConnectionStore;
use stateless_ws::{ConnectionId, Membership, RoomId};
use stateless_ws_sim::core::SimCore;
use stateless_ws_sim::lambda::{EventSourceMapping, LambdaParams, LambdaStats, WorkerFactory};
use stateless_ws_sim::sender::{ApiParams, SimApi, SimSender};
use stateless_ws_sim::store::{SimStore, StoreParams};
use tokio::time::Instant;

/// 1,200 members in jobs of 100 (12 jobs), posts of exactly 10 ms, no CPU, nobody gone.
fn run(concurrency: usize, batch_size: usize) -> (LambdaStats, Duration, u64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = SimStore::new(StoreParams::default());
        let room = RoomId::new("r").unwrap();
        for i in 0..1_200 {
            let id = ConnectionId::new(format!("c{i:04}=")).unwrap();
            let record = Membership::new(id, room.clone()).with_connected_at(0);
            store.inner().join(&record).await.unwrap();
        }
        let mut api = ApiParams::default();
        api.latency_p50 = Duration::from_millis(10);
        api.latency_p99 = Duration::from_millis(10);
        api.gone_fraction = 0.0;
        api.post_cpu = Duration::ZERO;
        let api = SimApi::new(api);
        let shared: Arc<dyn ConnectionStore> = Arc::new(store);
        let queue = InMemoryQueue::new();
        let mut config = QueueConfig::default();
        config.targets_per_job = 100;
        let factory: WorkerFactory = {
            let (api, queue, shared, config) =
                (api.clone(), queue.clone(), shared.clone(), config.clone());
            Arc::new(move |core: &SimCore| {
                let sender = SimSender::on_core(api.clone(), core.clone());
                FanoutWorker::new(
                    Broadcaster::new(shared.clone(), Arc::new(sender)),
                    Arc::new(queue.clone()),
                )
                .with_membership_check(false)
                .with_config(config.clone())
            })
        };
        let mut params = LambdaParams::default();
        params.concurrency = concurrency;
        params.batch_size = batch_size;
        params.job_cpu = Duration::ZERO;
        let mapping = EventSourceMapping::start(queue.clone(), factory, params);
        let start = Instant::now();
        let planner = FanoutPlanner::new(shared, Arc::new(queue.clone())).with_config(config);
        let enqueued = planner
            .enqueue_broadcast(&room, &Payload::text("x").unwrap(), None)
            .await
            .unwrap();
        assert_eq!(enqueued.jobs, 12);
        while !queue.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let took = start.elapsed();
        let stats = mapping.shutdown().await;
        (stats, took, api.stats().distinct_delivered)
    })
}

#[test]
fn the_concurrency_limit_and_cold_starts_are_honoured() {
    let (stats, took, delivered) = run(3, 1);
    assert_eq!(delivered, 1_200);
    assert_eq!(stats.invocations, 12, "one job per invocation: {stats:?}");
    assert_eq!(stats.peak_concurrency, 3, "{stats:?}");
    assert_eq!(stats.cold_starts, 3, "instances are reused: {stats:?}");
    assert_eq!(stats.jobs, 12);
    // A job: 100 posts, 64 at a time, 10 ms each = 20 ms; 4 rounds of 3 jobs after a 250 ms
    // cold start.
    let least = Duration::from_millis(250 + 4 * 20);
    assert!(
        took >= least && took < least + Duration::from_millis(50),
        "{took:?}"
    );
}

#[test]
fn batches_hold_up_to_ten_messages_processed_in_turn() {
    let (stats, took, delivered) = run(10, 10);
    assert_eq!(delivered, 1_200);
    assert_eq!(stats.invocations, 2, "10 + 2 messages: {stats:?}");
    assert_eq!(stats.cold_starts, 2, "{stats:?}");
    // The batch of 10 runs its jobs one after another on one instance: 250 ms + 10 × 20 ms.
    assert!(took >= Duration::from_millis(450), "{took:?}");
}
