//! A send whose outcome is unknown (no answer after the request may have reached the queue) is
//! never sent again: SQS standard queues do not deduplicate, so a resend could queue every job
//! twice and deliver every target twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use stateless_ws::Error;
use stateless_ws::broadcast::Payload;
use stateless_ws::queue::{FanoutPlanner, InMemoryQueue, JobQueue, SqsQueue};
use tokio::io::AsyncReadExt;

use super::{member, room_of};
use crate::common;

/// Queues every batch, then answers as if the answer had been lost — once.
#[derive(Debug)]
struct LandsThenTimesOut {
    inner: InMemoryQueue,
    calls: AtomicUsize,
}

impl std::fmt::Display for LandsThenTimesOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LandsThenTimesOut")
    }
}

#[async_trait]
impl JobQueue for LandsThenTimesOut {
    fn max_message_bytes(&self) -> usize {
        self.inner.max_message_bytes()
    }

    async fn send_batch(
        &self,
        bodies: &[String],
    ) -> stateless_ws::Result<Vec<stateless_ws::Result<()>>> {
        let results = self.inner.send_batch(bodies).await?;
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(Error::QueueOutcomeUnknown {
                queue: self.to_string(),
                reason: "no answer within the call timeout".into(),
                source: "injected".into(),
            });
        }
        Ok(results)
    }
}

#[tokio::test]
async fn the_planner_does_not_send_a_batch_with_an_unknown_outcome_again() {
    let (store, room) = room_of(1_000, 4_000).await;
    let queue = Arc::new(LandsThenTimesOut {
        inner: InMemoryQueue::new(),
        calls: AtomicUsize::new(0),
    });
    let planner = FanoutPlanner::new(store, queue.clone());
    let error = planner
        .enqueue_broadcast(&room, &Payload::text("hi").unwrap(), Some(&member(0)))
        .await
        .unwrap_err();
    let Error::Enqueue {
        queued_jobs,
        unknown_jobs,
        unknown_targets,
        ref source,
        ..
    } = error
    else {
        panic!("{error:?}");
    };
    assert_eq!((queued_jobs, unknown_jobs, unknown_targets), (0, 2, 999));
    assert!(matches!(**source, Error::QueueOutcomeUnknown { .. }));
    assert_eq!(queue.calls.load(Ordering::SeqCst), 1, "not sent again");
    assert_eq!(queue.inner.len(), 2, "two jobs queued, not four");
    assert!(error.to_string().contains("may be"), "{error}");
}

/// An SQS endpoint that reads the request and never answers.
async fn silent_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn sqs_without_an_answer_is_an_unknown_outcome_and_a_refused_connection_is_retryable() {
    use aws_sdk_sqs::config::retry::RetryConfig;
    use aws_sdk_sqs::config::timeout::TimeoutConfig;
    let client = |endpoint: String| async move {
        let config = aws_sdk_sqs::config::Builder::from(&common::local_sdk_config().await)
            .endpoint_url(endpoint)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_millis(300))
                    .build(),
            )
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    };
    let url = "http://127.0.0.1/000000000000/fanout";

    let silent = SqsQueue::from_client(client(silent_endpoint().await).await, url);
    let error = silent.send_batch(&["{}".to_owned()]).await.unwrap_err();
    assert!(
        matches!(error, Error::QueueOutcomeUnknown { .. }),
        "a request that may have landed: {error:?}"
    );
    assert!(!error.is_retryable());

    // Nothing listens on a port just released: the request never left.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let refused = SqsQueue::from_client(client(format!("http://127.0.0.1:{port}")).await, url);
    let error = refused.send_batch(&["{}".to_owned()]).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Queue {
                retryable: true,
                ..
            }
        ),
        "a request that never left: {error:?}"
    );
}
