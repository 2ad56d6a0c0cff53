//! A worker killed mid-job: its job comes back after the visibility timeout and is delivered
//! again — every target gets at least one copy, and the extra copies are at most one job's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stateless_ws::broadcast::{ApiGatewaySender, BroadcastConfig, Broadcaster, Payload};
use stateless_ws::queue::{FanoutPlanner, FanoutWorker, InMemoryQueue, QueueConfig};

use super::{member, room_of};
use crate::common;
use stateless_ws_local::test_util::FakeManagementApi;

const MEMBERS: usize = 1_000;
const PER_JOB: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_loses_no_target_and_duplicates_at_most_one_job() {
    let fake = FakeManagementApi::start("prod").await;
    fake.set_delay(Duration::from_millis(10));
    let (store, room) = room_of(MEMBERS, 250).await;
    // Well above a job's time (~125 ms here), even on a loaded machine, as SQS's visibility
    // timeout must be above the worker's: a job still in progress when it ends comes back to
    // another worker and is sent twice.
    let queue = Arc::new(InMemoryQueue::new().with_visibility_timeout(Duration::from_secs(3)));
    let sender = ApiGatewaySender::new(&common::local_sdk_config().await)
        .with_default_endpoint(&fake.endpoint())
        .unwrap();
    let mut tuning = BroadcastConfig::default();
    tuning.concurrency = 8;
    let broadcaster = Broadcaster::new(store.clone(), Arc::new(sender)).with_config(tuning);
    let mut config = QueueConfig::default();
    config.targets_per_job = PER_JOB;
    let worker = FanoutWorker::new(broadcaster, queue.clone()).with_config(config.clone());
    let enqueued = FanoutPlanner::new(store, queue.clone())
        .with_config(config)
        .enqueue_broadcast(&room, &Payload::text("hi").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(enqueued.jobs, MEMBERS / PER_JOB);

    // One worker, killed in the middle of its second job.
    let pool = queue.spawn_workers(&worker, 1);
    let started = Instant::now();
    while fake.total_deliveries() < PER_JOB + PER_JOB / 2 {
        assert!(started.elapsed() < Duration::from_secs(20), "no progress");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    pool.abort();
    let at_kill = fake.total_deliveries();
    assert!(at_kill < 2 * PER_JOB, "killed mid-job: {at_kill}");

    // Its jobs come back after the visibility timeout; fresh workers finish.
    let pool = queue.spawn_workers(&worker, 2);
    tokio::time::timeout(Duration::from_secs(30), queue.wait_until_empty())
        .await
        .expect("the queue drains");
    pool.shutdown().await;

    let mut extra = 0;
    for i in 0..MEMBERS {
        let copies = fake.deliveries(member(i).as_str());
        assert!(copies >= 1, "{} got nothing", member(i));
        extra += copies - 1;
    }
    assert!(
        extra <= PER_JOB,
        "{extra} extra copies; one job is {PER_JOB}"
    );
    assert!(
        extra > 0,
        "the killed job was partly delivered before, so some copies repeat"
    );
    assert!(queue.dead_letters().is_empty());
    eprintln!(
        "kill mid-job: {at_kill} delivered at the kill, {extra} duplicate(s) after redelivery, {:?} in all",
        started.elapsed()
    );
}
