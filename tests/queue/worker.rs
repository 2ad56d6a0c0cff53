//! The worker on the in-memory sender and queue: remainders, the generation limit, poison and
//! no-progress jobs, and the SQS Lambda glue's partial batch failures.

use std::sync::Arc;
use std::time::Duration;

use stateless_ws::broadcast::{
    BroadcastConfig, Broadcaster, InjectedFailure, Payload, RecordingSender,
};
use stateless_ws::queue::{
    FanoutPlanner, FanoutWorker, InMemoryQueue, Job, JobOutcome, QueueConfig,
};
use stateless_ws::store::InMemoryStore;

use super::{member, room_of};

fn quick_broadcaster(store: Arc<InMemoryStore>, sender: &RecordingSender) -> Broadcaster {
    let mut config = BroadcastConfig::default();
    config.connect_grace = Duration::ZERO; // the gone connections here joined long ago
    config.retries = 1;
    config.initial_backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(2);
    Broadcaster::new(store, Arc::new(sender.clone())).with_config(config)
}

async fn one_job(queue: &InMemoryQueue) -> (String, String) {
    let mut got = queue.receive(1, Duration::ZERO).await;
    assert_eq!(got.len(), 1, "one job in the queue");
    let m = got.remove(0);
    (m.receipt, m.body)
}

#[tokio::test]
async fn undeliverable_targets_become_a_remainder_then_the_dead_letter_queue() {
    let (store, room) = room_of(10, 100).await;
    let queue = Arc::new(InMemoryQueue::new().with_max_receive_count(1));
    let sender = RecordingSender::new();
    for i in [2, 5, 8] {
        sender.fail(&member(i), InjectedFailure::ServerError(503), None);
    }
    let mut config = QueueConfig::default();
    config.max_generations = 2;
    let worker = FanoutWorker::new(quick_broadcaster(store.clone(), &sender), queue.clone())
        .with_config(config);
    FanoutPlanner::new(store, queue.clone())
        .enqueue_broadcast(&room, &Payload::text("hi").unwrap(), None)
        .await
        .unwrap();

    let (receipt, body) = one_job(&queue).await;
    let outcome = worker.process(&body).await;
    assert!(
        matches!(outcome, JobOutcome::Requeued { delivered: 7, remainder: 3, ref job, .. } if job.generation == 0),
        "{outcome:?}"
    );
    assert!(outcome.is_ack());
    queue.delete(&receipt);

    // The remainder makes no progress: it fails as it is, and the queue's redrive moves it to
    // the dead letters (max_receive_count 1) — holding only the three undelivered targets.
    let (_, body) = one_job(&queue).await;
    let outcome = worker.process(&body).await;
    assert!(
        matches!(outcome, JobOutcome::Failed { job: Some(ref j), .. } if j.generation == 1),
        "{outcome:?}"
    );
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(queue.receive(1, Duration::ZERO).await.is_empty());
    let dead = queue.dead_letters();
    assert_eq!(dead.len(), 1);
    let job = Job::parse(&dead[0].body).unwrap();
    let mut left: Vec<_> = job.targets().into_iter().map(|t| t.connection_id).collect();
    left.sort();
    assert_eq!(
        left,
        [member(2), member(5), member(8)],
        "only the undelivered go to the DLQ"
    );

    // A job past the generation limit fails untouched: nothing is posted.
    let attempts = sender.total_attempts();
    let third = job.remainder(&job.targets()).remainder(&job.targets());
    let outcome = worker.process(&third.to_body()).await;
    assert!(
        matches!(outcome, JobOutcome::Failed { job: Some(ref j), .. } if j.generation == 3),
        "{outcome:?}"
    );
    assert_eq!(sender.total_attempts(), attempts);
    for i in [0, 1, 3, 4, 6, 7, 9] {
        assert_eq!(
            sender.messages(&member(i)).len(),
            1,
            "delivered once, never again"
        );
    }
}

#[tokio::test]
async fn poison_and_no_progress_jobs_fail_without_sending() {
    let (store, room) = room_of(4, 100).await;
    let queue = Arc::new(InMemoryQueue::new());
    let sender = RecordingSender::new();
    let worker = FanoutWorker::new(quick_broadcaster(store.clone(), &sender), queue.clone());

    let outcome = worker.process("{\"v\":1,\"oops\":true}").await;
    assert!(
        matches!(
            outcome,
            JobOutcome::Failed {
                job: None,
                error: stateless_ws::Error::InvalidBody { .. }
            }
        ),
        "{outcome:?}"
    );
    assert!(!outcome.is_ack());

    // A 403 on every post: nothing delivered, so the job fails as it is (the queue retries it).
    for i in 0..4 {
        sender.fail(&member(i), InjectedFailure::Forbidden, None);
    }
    FanoutPlanner::new(store, queue.clone())
        .enqueue_broadcast(&room, &Payload::text("hi").unwrap(), None)
        .await
        .unwrap();
    let (_, body) = one_job(&queue).await;
    let outcome = worker.process(&body).await;
    assert!(
        matches!(
            outcome,
            JobOutcome::Failed {
                error: stateless_ws::Error::Forbidden { .. },
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(sender.total_delivered(), 0);
    assert_eq!(
        queue.len(),
        1,
        "no remainder was enqueued; the job itself comes back"
    );
}

#[tokio::test]
async fn gone_targets_are_cleaned_and_the_job_completes() {
    let (store, room) = room_of(5, 100).await;
    let queue = Arc::new(InMemoryQueue::new());
    let sender = RecordingSender::new();
    sender.set_gone(&member(3));
    let worker = FanoutWorker::new(quick_broadcaster(store.clone(), &sender), queue.clone());
    FanoutPlanner::new(store.clone(), queue.clone())
        .enqueue_broadcast(&room, &Payload::text("hi").unwrap(), None)
        .await
        .unwrap();
    let (_, body) = one_job(&queue).await;
    let outcome = worker.process(&body).await;
    assert!(
        matches!(
            outcome,
            JobOutcome::Completed {
                delivered: 4,
                gone: 1,
                failed: 0,
                ..
            }
        ),
        "{outcome:?}"
    );
    use stateless_ws::store::ConnectionStore;
    assert_eq!(store.room_connections(&room).await.unwrap().len(), 4);
}

#[tokio::test]
async fn the_sqs_handler_reports_the_failed_records_by_message_id() {
    use aws_lambda_events::sqs::SqsEvent;
    let (store, room) = room_of(3, 100).await;
    let queue = Arc::new(InMemoryQueue::new());
    let sender = RecordingSender::new();
    let worker = FanoutWorker::new(quick_broadcaster(store.clone(), &sender), queue.clone());
    FanoutPlanner::new(store, queue.clone())
        .enqueue_broadcast(&room, &Payload::text("hi").unwrap(), None)
        .await
        .unwrap();
    let (_, good) = one_job(&queue).await;
    let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
        {"messageId": "m-good", "receiptHandle": "r1", "body": good, "eventSource": "aws:sqs"},
        {"messageId": "m-poison", "receiptHandle": "r2", "body": "not a job", "eventSource": "aws:sqs"},
        {"messageId": "m-empty", "receiptHandle": "r3", "eventSource": "aws:sqs"}
    ]}))
    .unwrap();
    let response = stateless_ws::lambda::sqs::handle_sqs_event(&worker, event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-poison", "m-empty"]);
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(json["batchItemFailures"][0]["itemIdentifier"], "m-poison");
    assert_eq!(sender.total_delivered(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_worker_pool_drains_the_queue_and_dead_letters_poison() {
    use stateless_ws::queue::JobQueue;
    let (store, room) = room_of(2_345, 1_000).await;
    let queue = Arc::new(
        InMemoryQueue::new()
            .with_visibility_timeout(Duration::from_secs(5))
            .with_max_receive_count(3),
    );
    let sender = RecordingSender::new();
    let worker = FanoutWorker::new(quick_broadcaster(store.clone(), &sender), queue.clone());
    let pool = queue.spawn_workers(&worker, 4);
    queue.send_batch(&["poison".to_owned()]).await.unwrap();
    let enqueued = FanoutPlanner::new(store, queue.clone())
        .enqueue_broadcast(&room, &Payload::text("hi").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(enqueued.jobs, 5);
    // Virtual time: a wait that never ends fails here instead of hanging the run (it did when
    // the dead-lettering receive did not wake `wait_until_empty`).
    tokio::time::timeout(Duration::from_secs(600), queue.wait_until_empty())
        .await
        .expect("the queue drains: the poison job is dead-lettered");
    pool.shutdown().await;
    assert_eq!(sender.total_delivered(), 2_345);
    let dead = queue.dead_letters();
    assert_eq!(
        (dead.len(), dead[0].body.as_str(), dead[0].receive_count),
        (1, "poison", 3)
    );
}

/// A job that outlives its visibility timeout: 10 targets behind a slow endpoint (250 ms a
/// post, one at a time: a 2.5 s job) on a queue with a 1 s visibility timeout and two workers.
/// Before: the job came back to the other worker every second, each copy re-sent to every
/// target (5 copies each), and then it was dead-lettered. Now the pool gives each job a deadline
/// inside its visibility timeout and re-enqueues the rest: at most one copy per target.
#[tokio::test(start_paused = true)]
async fn a_job_slower_than_its_visibility_timeout_is_not_delivered_again() {
    let (store, room) = room_of(10, 100).await;
    let queue = Arc::new(
        InMemoryQueue::new()
            .with_visibility_timeout(Duration::from_secs(1))
            .with_max_receive_count(5),
    );
    let sender = RecordingSender::new();
    sender.set_latency(Duration::from_millis(250));
    let mut config = BroadcastConfig::default();
    config.concurrency = 1;
    let broadcaster = Broadcaster::new(store.clone(), Arc::new(sender.clone())).with_config(config);
    let mut tuning = QueueConfig::default();
    tuning.max_generations = 20;
    let worker = FanoutWorker::new(broadcaster, queue.clone()).with_config(tuning);
    FanoutPlanner::new(store, queue.clone())
        .enqueue_broadcast(&room, &Payload::text("hi").unwrap(), None)
        .await
        .unwrap();
    let pool = queue.spawn_workers(&worker, 2);
    queue.wait_until_empty().await;
    let report = pool.shutdown().await;
    let copies: Vec<usize> = (0..10).map(|i| sender.messages(&member(i)).len()).collect();
    eprintln!("copies per target: {copies:?}; {report:?}");
    // Each target is delivered exactly once: posts stop starting before the job's deadline
    // early enough for the one in flight to be answered (`in_flight_reserve`), so none is cut
    // with an unknown outcome, and what was not started goes on in a remainder job.
    assert_eq!(copies, [1; 10], "{report:?}");
    assert_eq!(report.delivered, 10, "{report:?}");
    assert_eq!(report.failed_targets, 0, "{report:?}");
    assert!(queue.dead_letters().is_empty());
    assert_eq!(report.failed_deletes, 0, "{report:?}");
}

/// In a queued room the worker's Gone cleanup removes a member; with a `Presence` the worker
/// announces it: the remaining members receive `"left"` (before: the records were removed and
/// nobody was told).
#[tokio::test]
async fn a_gone_member_of_a_queued_room_is_announced_as_left() {
    use stateless_ws::presence::Presence;
    let (store, room) = room_of(5, 100).await;
    let queue = Arc::new(InMemoryQueue::new());
    let sender = RecordingSender::new();
    sender.set_gone(&member(3));
    let broadcaster = quick_broadcaster(store.clone(), &sender);
    let worker = FanoutWorker::new(broadcaster.clone(), queue.clone())
        .with_presence(Presence::new(broadcaster));
    FanoutPlanner::new(store, queue.clone())
        .enqueue_broadcast(&room, &Payload::text("hi").unwrap(), None)
        .await
        .unwrap();
    let (_, body) = one_job(&queue).await;
    let outcome = worker.process(&body).await;
    match &outcome {
        JobOutcome::Completed {
            gone: 1, removed, ..
        } => {
            assert_eq!(removed.len(), 1);
            assert_eq!(removed[0].connection_id, member(3));
        }
        other => panic!("{other:?}"),
    }
    for i in [0, 1, 2, 4] {
        let got = sender.messages(&member(i));
        let left: Vec<serde_json::Value> = got
            .iter()
            .filter_map(|m| serde_json::from_str::<serde_json::Value>(m).ok())
            .filter(|v| v["event"] == "left")
            .collect();
        assert_eq!(left.len(), 1, "member {i} got {got:?}");
        assert_eq!(left[0]["room"], "big", "{}", left[0]);
    }
}
