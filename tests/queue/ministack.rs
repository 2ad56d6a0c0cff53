//! The whole queued path on MiniStack (SQS and DynamoDB on one port, started by
//! `scripts/test.sh`): a multi-page room on `DynamoDbStore` enqueued to an SQS queue with a
//! dead-letter queue, the messages received and handed to the Lambda handler as an `SqsEvent`,
//! the acknowledged ones deleted — every member gets exactly one copy, gone members leave the
//! table, and a failing job comes back until the redrive policy moves it to the DLQ.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_sqs::types::QueueAttributeName;
use stateless_ws::broadcast::{ApiGatewaySender, Broadcaster, Payload};
use stateless_ws::lambda::sqs::handle_sqs_event;
use stateless_ws::queue::{FanoutPlanner, FanoutWorker, QueueConfig, SqsQueue};
use stateless_ws::store::{ConnectionStore, DynamoDbStore};
use stateless_ws::{Membership, RoomId};

use super::member;
use crate::common;
use stateless_ws_local::test_util::FakeManagementApi;

const MEMBERS: usize = 230;
const GONE: [usize; 3] = [4, 100, 229];
const SENDER: usize = 17;

async fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(&common::local_sdk_config().await)
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// A queue with a dead-letter queue: visibility 1 s, two receives before the DLQ.
async fn queues(sqs: &aws_sdk_sqs::Client) -> (String, String) {
    let tag = common::unique_table("q");
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{tag}-dlq"))
        .send()
        .await
        .unwrap();
    let dlq_url = dlq.queue_url().unwrap().to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": "2"});
    let main = sqs
        .create_queue()
        .queue_name(tag)
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .unwrap();
    (main.queue_url().unwrap().to_owned(), dlq_url)
}

#[tokio::test]
async fn a_room_fanned_out_through_sqs_reaches_everyone_once() {
    let Some(endpoint) =
        common::dynamodb_endpoint("a_room_fanned_out_through_sqs_reaches_everyone_once")
    else {
        return;
    };
    let started = Instant::now();
    let sqs = sqs_client(&endpoint).await;
    let (queue_url, dlq_url) = queues(&sqs).await;
    let store = DynamoDbStore::builder()
        .client(common::dynamodb_client(&endpoint).await)
        .table_name(common::unique_table("qroom"))
        .page_size(50)
        .build()
        .unwrap();
    store.ensure_table().await.unwrap();
    let store: Arc<dyn ConnectionStore> = Arc::new(store);
    let room = RoomId::new("big").unwrap();
    for i in 0..MEMBERS {
        store
            .join(&Membership::new(member(i), room.clone()))
            .await
            .unwrap();
    }
    let fake = FakeManagementApi::start("prod").await;
    for i in GONE {
        fake.set_gone(member(i).as_str());
    }

    let queue = Arc::new(
        SqsQueue::from_client(sqs.clone(), &queue_url)
            .read_max_message_bytes()
            .await
            .unwrap(),
    );

    let mut config = QueueConfig::default();
    config.targets_per_job = 40;
    let enqueued = FanoutPlanner::new(store.clone(), queue.clone())
        .with_config(config.clone())
        .enqueue_broadcast(
            &room,
            &Payload::text("hello").unwrap(),
            Some(&member(SENDER)),
        )
        .await
        .unwrap();
    assert_eq!(
        (enqueued.jobs, enqueued.targets),
        ((MEMBERS - 1).div_ceil(40), MEMBERS - 1)
    );
    // A poison message beside the jobs.
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body("{\"not\":\"a job\"}")
        .send()
        .await
        .unwrap();

    let sender = ApiGatewaySender::new(&common::local_sdk_config().await)
        .with_default_endpoint(&fake.endpoint())
        .unwrap();
    let worker = FanoutWorker::new(
        Broadcaster::new(store.clone(), Arc::new(sender))
            .with_config(crate::common::without_connect_grace()),
        queue.clone(),
    )
    .with_config(config);

    let mut receives: HashMap<String, u32> = HashMap::new();
    let mut dead = Vec::new();
    while dead.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "did not settle: {receives:?}"
        );
        let got = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = got.messages();
        if !messages.is_empty() {
            let records: Vec<_> = messages
                .iter()
                .map(|m| {
                    *receives.entry(m.message_id().unwrap().to_owned()).or_default() += 1;
                    serde_json::json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(),
                        "body": m.body(), "eventSource": "aws:sqs", "awsRegion": "us-east-1"})
                })
                .collect();
            let event: SqsEvent =
                serde_json::from_value(serde_json::json!({"Records": records})).unwrap();
            let response = handle_sqs_event(&worker, event).await;
            let failed: Vec<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            for m in messages {
                if !failed.contains(&m.message_id().unwrap()) {
                    sqs.delete_message()
                        .queue_url(&queue_url)
                        .receipt_handle(m.receipt_handle().unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
        dead = sqs
            .receive_message()
            .queue_url(&dlq_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap()
            .messages()
            .to_vec();
    }

    for i in 0..MEMBERS {
        let want = usize::from(i != SENDER && !GONE.contains(&i));
        assert_eq!(fake.deliveries(member(i).as_str()), want, "{}", member(i));
    }
    let left = store.room_connections(&room).await.unwrap();
    assert_eq!(
        left.len(),
        MEMBERS - GONE.len(),
        "gone members were removed"
    );
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some("{\"not\":\"a job\"}"));
    let poison_receives = receives.values().copied().max().unwrap();
    assert_eq!(
        poison_receives, 2,
        "the failing job came back once, then went to the DLQ"
    );
    assert_eq!(receives.len(), enqueued.jobs + 1);
    eprintln!(
        "SQS fan-out on MiniStack: {} jobs, {} targets, poison in the DLQ after {poison_receives} receives, {:?}",
        enqueued.jobs,
        enqueued.targets,
        started.elapsed()
    );
}
