//! The planner: jobs within SQS's limits, every target queued once, per-entry retries, and an
//! error that says what was queued when it stops part-way.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use stateless_ws::Error;
use stateless_ws::broadcast::Payload;
use stateless_ws::queue::{
    FanoutPlanner, InMemoryQueue, Job, JobQueue, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, QueueConfig,
};

use super::{member, room_of};

/// A queue that records each call and fails entries as told — SQS's per-entry failures.
#[derive(Debug)]
struct Flaky {
    inner: InMemoryQueue,
    /// (entries, bytes) of every call.
    calls: Mutex<Vec<(usize, usize)>>,
    /// Entries whose index is odd fail (retryably) this many more calls.
    odd_failures: Mutex<u32>,
    /// Calls after this many fail as a whole, for good.
    fatal_after: Option<usize>,
}

impl Flaky {
    fn new(odd_failures: u32, fatal_after: Option<usize>) -> Self {
        Self {
            inner: InMemoryQueue::new().with_max_message_bytes(256 * 1024),
            calls: Mutex::default(),
            odd_failures: Mutex::new(odd_failures),
            fatal_after,
        }
    }
}

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Flaky")
    }
}

#[async_trait]
impl JobQueue for Flaky {
    fn max_message_bytes(&self) -> usize {
        self.inner.max_message_bytes()
    }

    async fn send_batch(
        &self,
        bodies: &[String],
    ) -> stateless_ws::Result<Vec<stateless_ws::Result<()>>> {
        let calls = {
            let mut calls = self.calls.lock().unwrap();
            calls.push((bodies.len(), bodies.iter().map(String::len).sum()));
            calls.len()
        };
        if self.fatal_after.is_some_and(|n| calls > n) {
            return Err(Error::Queue {
                queue: "Flaky".into(),
                retryable: false,
                source: "AccessDenied".into(),
            });
        }
        let fail_odd = {
            let mut left = self.odd_failures.lock().unwrap();
            let fail = *left > 0;
            *left = left.saturating_sub(1);
            fail
        };
        let mut results = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            if fail_odd && i % 2 == 1 {
                results.push(Err(Error::Queue {
                    queue: "Flaky".into(),
                    retryable: true,
                    source: "InternalError".into(),
                }));
            } else {
                results.extend(self.inner.send_batch(std::slice::from_ref(body)).await?);
            }
        }
        Ok(results)
    }
}

fn quick() -> QueueConfig {
    let mut config = QueueConfig::default();
    config.initial_backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(5);
    config
}

async fn drain(queue: &InMemoryQueue) -> Vec<Job> {
    let mut jobs = Vec::new();
    loop {
        let got = queue.receive(10, Duration::ZERO).await;
        if got.is_empty() {
            return jobs;
        }
        for m in got {
            jobs.push(Job::parse(&m.body).unwrap());
            queue.delete(&m.receipt);
        }
    }
}

#[tokio::test]
async fn a_large_room_is_packed_within_sqs_limits_each_target_once() {
    let (store, room) = room_of(12_345, 1_000).await;
    let queue = std::sync::Arc::new(Flaky::new(0, None));
    let planner = FanoutPlanner::new(store, queue.clone()).with_config(quick());
    // ~100 KB of payload: ten jobs would pass 1 MiB, so batches hold fewer.
    let payload = Payload::text("m".repeat(100_000)).unwrap();
    let enqueued = planner
        .enqueue_broadcast(&room, &payload, Some(&member(7)))
        .await
        .unwrap();
    assert_eq!(enqueued.targets, 12_344);
    assert_eq!(enqueued.jobs, 12_344usize.div_ceil(500));
    let calls = queue.calls.lock().unwrap().clone();
    assert!(
        calls
            .iter()
            .all(|&(n, bytes)| n <= MAX_BATCH_ENTRIES && bytes <= MAX_BATCH_BYTES),
        "{calls:?}"
    );
    assert!(
        calls.iter().all(|&(n, _)| n <= 9),
        "ten 100 KB jobs exceed 1 MiB: {calls:?}"
    );
    let jobs = drain(&queue.inner).await;
    assert_eq!(jobs.len(), enqueued.jobs);
    let mut seen = HashSet::new();
    for job in &jobs {
        assert!(job.len() <= 500);
        assert_eq!(job.fanout_id(), enqueued.fanout_id);
        assert_eq!(job.context().room.as_ref(), Some(&room));
        assert_eq!(job.payload().unwrap(), payload);
        for t in job.targets() {
            assert!(seen.insert(t.connection_id), "a target in two jobs");
        }
    }
    assert_eq!(seen.len(), 12_344);
    assert!(!seen.contains(&member(7)), "the sender is excluded");
}

#[tokio::test]
async fn entries_that_fail_retryably_are_sent_again() {
    let (store, room) = room_of(3_000, 1_000).await;
    let queue = std::sync::Arc::new(Flaky::new(2, None));
    let planner = FanoutPlanner::new(store, queue.clone()).with_config(quick());
    let enqueued = planner
        .enqueue_broadcast(&room, &Payload::text("hi").unwrap(), None)
        .await
        .unwrap();
    assert_eq!((enqueued.jobs, enqueued.targets), (6, 3_000));
    let calls = queue.calls.lock().unwrap().clone();
    // One batch of 6: its 3 odd entries fail; of those 3 sent again, the odd one fails again.
    assert_eq!(calls.iter().map(|c| c.0).collect::<Vec<_>>(), [6, 3, 1]);
    let jobs = drain(&queue.inner).await;
    assert_eq!(jobs.iter().map(Job::len).sum::<usize>(), 3_000);
}

#[tokio::test]
async fn a_failure_part_way_says_how_much_is_queued() {
    let (store, room) = room_of(12_000, 1_000).await;
    let queue = std::sync::Arc::new(Flaky::new(0, Some(1)));
    let planner = FanoutPlanner::new(store, queue.clone()).with_config(quick());
    let err = planner
        .enqueue_broadcast(&room, &Payload::text("hi").unwrap(), None)
        .await
        .unwrap_err();
    let Error::Enqueue {
        queued_jobs,
        queued_targets,
        ref source,
        ..
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!((queued_jobs, queued_targets), (10, 5_000), "{err}");
    assert!(matches!(
        **source,
        Error::Queue {
            retryable: false,
            ..
        }
    ));
    assert!(
        err.to_string()
            .contains("10 job(s) with 5000 target(s) are queued"),
        "{err}"
    );
    assert_eq!(
        drain(&queue.inner).await.len(),
        10,
        "what it says is queued is queued"
    );
}

#[tokio::test]
async fn notify_user_and_explicit_targets_are_queued_once_each() {
    use stateless_ws::queue::JobContext;
    let (store, _) = room_of(0, 10).await;
    let queue = std::sync::Arc::new(InMemoryQueue::new());
    let planner = FanoutPlanner::new(store, queue.clone()).with_default_endpoint("https://x/prod");
    let targets = [member(1), member(2), member(1)];
    let enqueued = planner
        .enqueue_targets(
            targets,
            &Payload::text("hi").unwrap(),
            JobContext::default(),
        )
        .await
        .unwrap();
    assert_eq!((enqueued.jobs, enqueued.targets), (1, 2));
    let job = drain(&queue).await.remove(0);
    assert!(
        job.targets()
            .iter()
            .all(|t| t.endpoint.as_deref() == Some("https://x/prod"))
    );
}

/// SQS refuses U+FFFE and U+FFFF in a body (serde_json writes them raw): a room named with them
/// must still fan out through the queue, and the in-memory queue must refuse what SQS refuses.
#[tokio::test]
async fn a_room_named_with_u_fffe_travels_through_the_queue() {
    use stateless_ws::broadcast::{Broadcaster, RecordingSender};
    use stateless_ws::queue::FanoutWorker;
    use stateless_ws::store::{ConnectionStore, InMemoryStore};
    use stateless_ws::{Membership, RoomId};
    use std::sync::Arc;

    let store = Arc::new(InMemoryStore::new());
    let room = RoomId::new("caf\u{FFFE}\u{FFFF}").unwrap();
    for i in 0..3 {
        store
            .join(&Membership::new(member(i), room.clone()))
            .await
            .unwrap();
    }
    let queue = Arc::new(InMemoryQueue::new());
    let payload = Payload::text("hi \u{FFFF}").unwrap();
    let enqueued = FanoutPlanner::new(store.clone(), queue.clone())
        .enqueue_broadcast(&room, &payload, None)
        .await
        .unwrap();
    assert_eq!((enqueued.jobs, enqueued.targets), (1, 3));
    let got = queue.receive(1, Duration::ZERO).await;
    let body = &got[0].body;
    assert!(
        !body.contains(['\u{FFFE}', '\u{FFFF}']),
        "a body SQS would refuse: {body}"
    );
    assert_eq!(
        Job::parse(body).unwrap().context().room.as_ref(),
        Some(&room)
    );
    let sender = RecordingSender::new();
    let worker = FanoutWorker::new(
        Broadcaster::new(store, Arc::new(sender.clone())),
        queue.clone(),
    );
    assert!(worker.process(body).await.is_ack());
    assert_eq!(sender.total_delivered(), 3);

    // What SQS refuses, the in-memory queue refuses, as a whole call.
    let raw = vec![body.replace("\\ufffe", "\u{FFFE}")];
    let err = queue.send_batch(&raw).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Queue {
                retryable: false,
                ..
            }
        ),
        "{err}"
    );
}

/// A queue whose sends wait until the store's page reads reach `reads` (at most 5 s; then the
/// send fails for good).
#[derive(Debug)]
struct WaitsForReads {
    inner: InMemoryQueue,
    store: stateless_ws::test_util::InstrumentedStore,
    reads: u64,
}

impl std::fmt::Display for WaitsForReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WaitsForReads")
    }
}

#[async_trait]
impl JobQueue for WaitsForReads {
    fn max_message_bytes(&self) -> usize {
        self.inner.max_message_bytes()
    }

    async fn send_batch(
        &self,
        bodies: &[String],
    ) -> stateless_ws::Result<Vec<stateless_ws::Result<()>>> {
        let started = std::time::Instant::now();
        while self.store.calls(stateless_ws::test_util::StoreOp::RoomPage) < self.reads {
            if started.elapsed() > Duration::from_secs(5) {
                return Err(Error::Queue {
                    queue: "WaitsForReads".into(),
                    retryable: false,
                    source: "the next page was not being read while jobs were sent".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.inner.send_batch(bodies).await
    }
}

/// Read-ahead (issue 21): the planner reads the next page while it sends the jobs of the one
/// before. Pages of 6,000 fill a batch of 10 jobs within the first page, and sends wait until
/// the second read has begun: a planner that read the next page only after sending would fail.
#[tokio::test]
async fn the_next_page_is_read_while_the_jobs_of_the_one_before_are_sent() {
    let (inner, room) = room_of(10_000, 6_000).await;
    let store = stateless_ws::test_util::InstrumentedStore::new(inner);
    let queue = std::sync::Arc::new(WaitsForReads {
        inner: InMemoryQueue::new(),
        store: store.clone(),
        reads: 2,
    });
    let planner =
        FanoutPlanner::new(std::sync::Arc::new(store.clone()), queue.clone()).with_config(quick());
    let enqueued = planner
        .enqueue_broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(enqueued.targets, 10_000);
    assert_eq!(enqueued.jobs, 20);
    assert_eq!(store.calls(stateless_ws::test_util::StoreOp::RoomPage), 2);
}
