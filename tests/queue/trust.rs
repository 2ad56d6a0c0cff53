//! Jobs are input (anyone with `sqs:SendMessage` can write one): the worker refuses jobs above
//! the target limit, endpoints it does not serve, another room's members, and — with a key —
//! jobs the planner did not sign.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use stateless_ws::broadcast::{Broadcaster, Payload, RecordingSender};
use stateless_ws::queue::{FanoutPlanner, FanoutWorker, InMemoryQueue, JobKey, JobOutcome};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::{Membership, RoomId};

use super::{id, member};

/// A store with room `general` (g0, g1) and room `secret` (s0, s1).
async fn two_rooms() -> Arc<InMemoryStore> {
    let store = Arc::new(InMemoryStore::new());
    for (room, ids) in [("general", ["g0=", "g1="]), ("secret", ["s0=", "s1="])] {
        for c in ids {
            store
                .join(&Membership::new(id(c), RoomId::new(room).unwrap()))
                .await
                .unwrap();
        }
    }
    store
}

/// A job body as the planner writes it for `general`, unsigned unless `key`.
async fn general_job(store: &Arc<InMemoryStore>, key: Option<JobKey>) -> String {
    let queue = Arc::new(InMemoryQueue::new());
    FanoutPlanner::new(store.clone(), queue.clone())
        .with_job_key(key)
        .enqueue_broadcast(
            &RoomId::new("general").unwrap(),
            &Payload::text("hi").unwrap(),
            None,
        )
        .await
        .unwrap();
    queue.receive(1, Duration::ZERO).await.remove(0).body
}

/// `body` with its targets replaced by `targets` (and `targetCount` to match).
fn with_targets(body: &str, targets: Vec<Value>) -> String {
    let mut job: Value = serde_json::from_str(body).unwrap();
    job["targetCount"] = json!(targets.len());
    job["targets"] = Value::Array(targets);
    job.to_string()
}

fn worker(store: Arc<InMemoryStore>, sender: &RecordingSender) -> FanoutWorker {
    FanoutWorker::new(
        Broadcaster::new(store, Arc::new(sender.clone())),
        Arc::new(InMemoryQueue::new()),
    )
}

#[tokio::test]
async fn a_job_of_30000_targets_is_poison_not_delivered() {
    let store = two_rooms().await;
    let body = general_job(&store, None).await;
    let targets = (0..30_000)
        .map(|i| json!({"connectionId": member(i).as_str()}))
        .collect();
    let forged = with_targets(&body, targets);
    let sender = RecordingSender::new();
    let outcome = worker(store, &sender)
        .with_membership_check(false)
        .process(&forged)
        .await;
    assert!(
        matches!(outcome, JobOutcome::Failed { ref error, .. } if error.to_string().contains("more than the 500")),
        "{outcome:?}"
    );
    assert_eq!(sender.total_delivered(), 0);
}

#[tokio::test]
async fn a_target_naming_an_endpoint_the_worker_does_not_serve_is_refused() {
    let store = two_rooms().await;
    let body = general_job(&store, None).await;
    let forged = with_targets(
        &body,
        vec![
            json!({"connectionId": "g0="}),
            json!({"connectionId": "g1=", "endpoint": "http://127.0.0.1:9/anything"}),
        ],
    );
    let sender = RecordingSender::new();
    let outcome = worker(store.clone(), &sender).process(&forged).await;
    assert!(
        matches!(
            outcome,
            JobOutcome::Completed {
                delivered: 1,
                refused: 1,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(sender.messages(&id("g1=")).is_empty(), "not posted");
    // An endpoint the worker is told it serves is posted to.
    let sender = RecordingSender::new();
    let outcome = worker(store, &sender)
        .with_allowed_endpoints(["http://127.0.0.1:9/anything/"])
        .process(&forged)
        .await;
    assert!(
        matches!(
            outcome,
            JobOutcome::Completed {
                delivered: 2,
                refused: 0,
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn without_a_key_a_job_for_one_room_does_not_reach_another_rooms_members() {
    let store = two_rooms().await;
    let body = general_job(&store, None).await;
    let forged = with_targets(
        &body,
        ["g0=", "s0=", "s1="]
            .iter()
            .map(|c| json!({"connectionId": c}))
            .collect(),
    );
    let sender = RecordingSender::new();
    let outcome = worker(store.clone(), &sender).process(&forged).await;
    assert!(
        matches!(
            outcome,
            JobOutcome::Completed {
                delivered: 1,
                refused: 2,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(sender.messages(&id("s0=")).is_empty());
    assert!(sender.messages(&id("s1=")).is_empty());
}

#[tokio::test]
async fn with_a_key_workers_run_only_jobs_the_planner_signed() {
    let key = JobKey::new(b"0123456789abcdef0123456789abcdef").unwrap();
    let store = two_rooms().await;
    let signed = general_job(&store, Some(key.clone())).await;
    let unsigned = general_job(&store, None).await;
    let sender = RecordingSender::new();
    let worker = worker(store, &sender).with_job_key(key);
    assert!(matches!(
        worker.process(&signed).await,
        JobOutcome::Completed { delivered: 2, .. }
    ));
    // Unsigned, or signed and then altered (another room's members): poison, nothing posted.
    let forged = with_targets(&signed, vec![json!({"connectionId": "s0="})]);
    for body in [unsigned, forged] {
        let outcome = worker.process(&body).await;
        assert!(
            matches!(outcome, JobOutcome::Failed { ref error, .. } if error.to_string().contains("`sig`")),
            "{outcome:?}"
        );
    }
    assert_eq!(sender.total_delivered(), 2);
    assert!(sender.messages(&id("s0=")).is_empty());
}

/// With `ApiGatewaySender` the default allow-list is its default endpoint
/// (`APIGW_MANAGEMENT_URL`): a target naming it (trailing `/` or not) is posted to, another
/// endpoint is refused.
#[tokio::test]
async fn the_api_gateway_senders_default_endpoint_is_allowed_by_default() {
    use stateless_ws::broadcast::{ApiGatewaySender, BroadcastConfig};
    let store = two_rooms().await;
    let body = general_job(&store, None).await;
    // Nothing listens there: a post is attempted (connection refused), not refused.
    let sender = ApiGatewaySender::new(&crate::common::local_sdk_config().await)
        .with_default_endpoint("http://127.0.0.1:1/prod")
        .unwrap();
    let mut config = BroadcastConfig::default();
    config.retries = 0;
    let worker = FanoutWorker::new(
        Broadcaster::new(store, Arc::new(sender)).with_config(config),
        Arc::new(InMemoryQueue::new()),
    );
    let other = with_targets(
        &body,
        vec![json!({"connectionId": "g0=", "endpoint": "http://127.0.0.1:1/other"})],
    );
    let outcome = worker.process(&other).await;
    assert!(
        matches!(outcome, JobOutcome::Completed { refused: 1, .. }),
        "{outcome:?}"
    );
    let own = with_targets(
        &body,
        vec![json!({"connectionId": "g0=", "endpoint": "http://127.0.0.1:1/prod/"})],
    );
    let outcome = worker.process(&own).await;
    assert!(
        matches!(outcome, JobOutcome::Failed { .. }),
        "attempted, and failed to connect: {outcome:?}"
    );
}
