//! `SqsQueue` on a mocked SDK client (aws-smithy-mocks): what `SendMessageBatch` answers that
//! MiniStack cannot be made to produce — per-entry failures, sender faults, throttling — and
//! how the planner acts on each.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::error::ErrorMetadata;
use aws_sdk_sqs::operation::send_message_batch::{SendMessageBatchError, SendMessageBatchOutput};
use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use stateless_ws::Error;
use stateless_ws::RoomId;
use stateless_ws::broadcast::Payload;
use stateless_ws::queue::{FanoutPlanner, JobContext, JobQueue, QueueConfig, SqsQueue};
use stateless_ws::store::InMemoryStore;

use super::member;

const URL: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/fanout";

fn queue(rules: &[&Rule]) -> SqsQueue {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::Sequential);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let config = aws_sdk_sqs::Config::builder()
        .with_test_defaults_v2()
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .retry_config(RetryConfig::disabled())
        .build();
    SqsQueue::from_client(Client::from_conf(config), URL)
}

fn ok_entry(id: &str) -> SendMessageBatchResultEntry {
    SendMessageBatchResultEntry::builder()
        .id(id)
        .message_id(format!("m-{id}"))
        .md5_of_message_body("x")
        .build()
        .unwrap()
}

fn failed_entry(id: &str, sender_fault: bool) -> BatchResultErrorEntry {
    BatchResultErrorEntry::builder()
        .id(id)
        .sender_fault(sender_fault)
        .code(if sender_fault {
            "InvalidMessageContents"
        } else {
            "InternalError"
        })
        .message("injected")
        .build()
        .unwrap()
}

fn context() -> JobContext {
    JobContext::room(RoomId::new("big").unwrap())
}

fn output(ok: &[&str], failed: Vec<BatchResultErrorEntry>) -> SendMessageBatchOutput {
    SendMessageBatchOutput::builder()
        .set_successful(Some(ok.iter().map(|id| ok_entry(id)).collect()))
        .set_failed(Some(failed))
        .build()
        .unwrap()
}

/// Fast planner retries.
fn planner(queue: SqsQueue) -> FanoutPlanner {
    let mut config = QueueConfig::default();
    config.targets_per_job = 2;
    config.initial_backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(2);
    FanoutPlanner::new(Arc::new(InMemoryStore::new()), Arc::new(queue)).with_config(config)
}

#[tokio::test]
async fn each_entry_gets_its_own_result() {
    let rule = mock!(Client::send_message_batch).then_output(|| {
        // Entry 3 is in neither list.
        output(
            &["0"],
            vec![failed_entry("1", false), failed_entry("2", true)],
        )
    });
    let q = queue(&[&rule]);
    let bodies: Vec<String> = (0..4).map(|i| format!("job {i}")).collect();
    let results = q.send_batch(&bodies).await.unwrap();
    assert!(results[0].is_ok());
    assert!(
        matches!(
            &results[1],
            Err(Error::Queue {
                retryable: true,
                ..
            })
        ),
        "a service-side entry failure is retryable: {:?}",
        results[1]
    );
    assert!(
        matches!(
            &results[2],
            Err(Error::Queue {
                retryable: false,
                ..
            })
        ),
        "a sender fault is not: {:?}",
        results[2]
    );
    assert!(
        matches!(
            &results[3],
            Err(Error::Queue {
                retryable: true,
                ..
            })
        ),
        "an entry SQS did not report is sent again: {:?}",
        results[3]
    );
}

#[tokio::test]
async fn the_planner_resends_only_the_entries_that_failed() {
    // 6 targets in jobs of 2: one batch of 3 entries; entry 1 fails once, then goes through.
    let first = mock!(Client::send_message_batch)
        .match_requests(|r| r.entries().len() == 3)
        .then_output(|| output(&["0", "2"], vec![failed_entry("1", false)]));
    let second = mock!(Client::send_message_batch)
        .match_requests(|r| r.entries().len() == 1)
        .then_output(|| output(&["0"], vec![]));
    let enqueued = planner(queue(&[&first, &second]))
        .enqueue_targets((0..6).map(member), &Payload::text("x").unwrap(), context())
        .await
        .unwrap();
    assert_eq!((enqueued.jobs, enqueued.targets), (3, 6));
    assert_eq!(first.num_calls(), 1);
    assert_eq!(
        second.num_calls(),
        1,
        "only the failed entry was sent again"
    );
}

#[tokio::test]
async fn a_throttled_call_is_retried_and_a_sender_fault_stops_with_the_counts() {
    let throttled = mock!(Client::send_message_batch).then_error(|| {
        SendMessageBatchError::generic(
            ErrorMetadata::builder()
                .code("RequestThrottled")
                .message("injected")
                .build(),
        )
    });
    let accepted = mock!(Client::send_message_batch)
        .then_output(|| output(&["0"], vec![failed_entry("1", true)]));
    let err = planner(queue(&[&throttled, &accepted]))
        .enqueue_targets((0..4).map(member), &Payload::text("x").unwrap(), context())
        .await
        .unwrap_err();
    assert_eq!(throttled.num_calls(), 1);
    assert_eq!(accepted.num_calls(), 1, "the throttled call was sent again");
    match err {
        Error::Enqueue {
            queued_jobs,
            queued_targets,
            ..
        } => assert_eq!(
            (queued_jobs, queued_targets),
            (1, 2),
            "the error says what is queued"
        ),
        other => panic!("expected Error::Enqueue, got {other:?}"),
    }
}
