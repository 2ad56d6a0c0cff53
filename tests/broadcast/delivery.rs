//! Delivery semantics and the time budget, over HTTP against the loopback management API: what
//! happens to posts whose answer comes late or never.
#![cfg(feature = "apigw")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::config::timeout::TimeoutConfig;
use stateless_ws::broadcast::{ApiGatewaySender, BroadcastConfig, Broadcaster, Payload};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::{ConnectionId, Error, Membership, RoomId};
use stateless_ws_local::test_util::FakeManagementApi;

fn id(s: &str) -> ConnectionId {
    ConnectionId::new(s).unwrap()
}

/// A sender for `fake` whose calls time out after `call_timeout`.
async fn sender_with_timeout(endpoint: &str, call_timeout: Duration) -> ApiGatewaySender {
    let base =
        aws_sdk_apigatewaymanagement::config::Builder::from(&common::local_sdk_config().await)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(call_timeout)
                    .build(),
            );
    ApiGatewaySender::from_builder(base)
        .with_default_endpoint(endpoint)
        .unwrap()
}

fn fast_config() -> BroadcastConfig {
    let mut config = BroadcastConfig::default();
    config.initial_backoff = Duration::from_millis(5);
    config.max_backoff = Duration::from_millis(20);
    config
}

/// The fake delivers the post, then answers after the sender's call timeout: by default the
/// post is not retried (at most one copy), and the report says the outcome is unknown.
#[tokio::test]
async fn a_post_answered_after_the_call_timeout_is_delivered_once_by_default() {
    let fake = FakeManagementApi::start("prod").await;
    fake.set_delay_for("late=", Duration::from_millis(800));
    let sender = sender_with_timeout(&fake.endpoint(), Duration::from_millis(200)).await;
    let b = Broadcaster::new(Arc::new(InMemoryStore::new()), Arc::new(sender))
        .with_config(fast_config());
    let report = b.send(id("late="), &Payload::text("once").unwrap()).await;
    assert_eq!(fake.deliveries("late="), 1, "copies delivered: {report}");
    assert_eq!(report.failed.len(), 1, "{report}");
    assert_eq!(report.failed[0].attempts, 1);
    assert!(
        matches!(report.failed[0].error, Error::OutcomeUnknown { .. }),
        "{:?}",
        report.failed[0].error
    );
    assert_eq!(report.retries, 0);
}

/// The same endpoint with `retry_unknown_outcome`: every attempt is repeated, and every one of
/// them is delivered — at least once, with duplicates.
#[tokio::test]
async fn with_retry_unknown_outcome_a_late_answer_is_delivered_once_per_attempt() {
    let fake = FakeManagementApi::start("prod").await;
    fake.set_delay_for("late=", Duration::from_millis(800));
    let sender = sender_with_timeout(&fake.endpoint(), Duration::from_millis(200)).await;
    let mut config = fast_config();
    config.retry_unknown_outcome = true;
    config.retries = 2;
    let b = Broadcaster::new(Arc::new(InMemoryStore::new()), Arc::new(sender)).with_config(config);
    let report = b.send(id("late="), &Payload::text("again").unwrap()).await;
    assert_eq!(fake.deliveries("late="), 3, "1 + 2 retries: {report}");
    assert_eq!(report.failed.len(), 1, "{report}");
    assert_eq!(report.failed[0].attempts, 3);
    assert!(matches!(
        report.failed[0].error,
        Error::OutcomeUnknown { .. }
    ));
}

/// A request that never left (nothing listens on the port) is retried even in the default
/// at-most-once mode: the message cannot have arrived.
#[tokio::test]
async fn a_refused_connection_is_retried_by_default() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let endpoint = format!("http://{addr}/prod");
    let sender = sender_with_timeout(&endpoint, Duration::from_secs(5)).await;
    let b = Broadcaster::new(Arc::new(InMemoryStore::new()), Arc::new(sender))
        .with_config(fast_config());
    let report = b.send(id("x="), &Payload::text("hi").unwrap()).await;
    assert_eq!(report.failed.len(), 1, "{report}");
    let failed = &report.failed[0];
    assert_eq!(failed.attempts, 4, "{:?}", failed.error);
    assert!(
        matches!(
            failed.error,
            Error::Delivery {
                retryable: true,
                ..
            }
        ),
        "{:?}",
        failed.error
    );
}

/// 200 targets behind an endpoint that never answers (10 gone, 190 hung), the sender's 10 s
/// call timeout and a 1 s budget: the call returns within the budget plus a margin, every
/// target is in a bucket, the posts in flight are failed with an unknown outcome, and the gone
/// connections are cleaned up in the time kept for it.
#[tokio::test]
async fn the_time_budget_bounds_the_whole_call_even_when_the_endpoint_hangs() {
    let fake = FakeManagementApi::start("prod").await;
    fake.set_quiet();
    let store = Arc::new(InMemoryStore::new());
    let room = RoomId::new("hung").unwrap();
    for i in 0..200 {
        let conn = format!("c{i:03}=");
        if i % 20 == 0 {
            fake.set_gone(&conn);
        } else {
            fake.set_hung(&conn);
        }
        store
            .join(&Membership::new(id(&conn), room.clone()))
            .await
            .unwrap();
    }
    let sender = ApiGatewaySender::new(&common::local_sdk_config().await)
        .with_default_endpoint(&fake.endpoint())
        .unwrap();
    let mut config = BroadcastConfig::default();
    config.connect_grace = Duration::ZERO; // the gone connections here joined long ago
    // Every target in flight at once, so that each one's fate is known: 10 gone, 190 hung.
    config.concurrency = 256;
    config.cleanup_reserve = Duration::from_millis(200);
    let budget = Duration::from_secs(1);
    let b = Broadcaster::new(store.clone(), Arc::new(sender))
        .with_config(config)
        .with_time_budget(budget);
    let started = std::time::Instant::now();
    let report = b
        .broadcast(&room, &Payload::text("anyone?").unwrap(), None)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed < budget + Duration::from_millis(500),
        "returned after {elapsed:?}: {report}"
    );
    // How many of the 200 posts got through the client's connection set-up in time depends on
    // the machine's load; what is checked is that each target has its bucket and that every
    // gone answer that came was cleaned up.
    assert_eq!(report.targets(), 200, "{report}");
    assert!(!report.gone.is_empty(), "{report}");
    assert_eq!(report.removed.len(), report.gone.len(), "{report}");
    assert!(report.cleanup_error.is_none(), "{report}");
    assert_eq!(
        store.room_connections(&room).await.unwrap().len(),
        200 - report.gone.len()
    );
    assert_eq!(report.failed.len(), 200 - report.gone.len(), "{report}");
    assert!(
        report
            .failed
            .iter()
            .all(|f| matches!(f.error, Error::OutcomeUnknown { .. }) && f.attempts == 1),
        "{:?}",
        report.failed.first()
    );
}
