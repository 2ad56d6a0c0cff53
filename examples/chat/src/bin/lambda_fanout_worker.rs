//! The queued fan-out worker as an AWS Lambda function, triggered by the fan-out SQS queue: each
//! record is a job (a room message and at most 500 of its connections) that `lambda_message`
//! enqueued for a room above `CHAT_QUEUE_ABOVE` members. It delivers each job through the
//! management API, re-enqueues what it could not deliver yet, and reports the records to retry
//! (`batchItemFailures`; the event source needs `FunctionResponseTypes: [ReportBatchItemFailures]`).
//!
//! Build and deploy: `cargo lambda build --release --arm64 -p chat`, then
//! `sam deploy --template-file examples/chat/template.yaml`. Environment: `CONNECTIONS_TABLE`
//! (Gone cleanup), `APIGW_MANAGEMENT_URL` (targets whose record names no endpoint),
//! `FANOUT_QUEUE_URL` and `FANOUT_QUEUE_MAX_MESSAGE_BYTES` (remainders), `FANOUT_JOB_KEY` (the
//! planner's key: with it only signed jobs run; without it each target's membership of the
//! job's room is checked). Targets may name only `APIGW_MANAGEMENT_URL` as their endpoint.
//! Members its Gone cleanup removes are announced as `"left"` to their rooms (the chat's
//! `CHAT_QUEUE_ABOVE` / presence limits apply, as on the routes).

use std::sync::Arc;

use stateless_ws::broadcast::{Broadcaster, SigV4Sender};
use stateless_ws::lambda::{self, LambdaError};
use stateless_ws::presence::{Presence, PresenceConfig};
use stateless_ws::queue::{FanoutPlanner, FanoutWorker, JobKey, SqsQueue};
use stateless_ws::store::DynamoDbStore;

/// Everything from the environment, once at start-up.
async fn worker() -> stateless_ws::Result<FanoutWorker> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = DynamoDbStore::from_env_with(&sdk)?;
    let sender = SigV4Sender::from_env_with(&sdk)?;
    let queue: Arc<SqsQueue> = Arc::new(SqsQueue::from_env_with(&sdk)?);
    let key = JobKey::from_env()?;
    let store = Arc::new(store);
    let broadcaster = Broadcaster::new(store.clone(), Arc::new(sender));
    // Departures the Gone cleanup finds are announced as the chat's routes announce them:
    // the same room-size limits, large rooms through the queue.
    let chat = chat::ChatConfig::from_env()?;
    let mut presence = PresenceConfig::default();
    presence.max_room_size = chat.presence_max_room_size;
    presence.queue_above = chat.presence_queue_threshold();
    let presence = Presence::new(broadcaster.clone())
        .with_config(presence)
        .with_queue(FanoutPlanner::new(store, queue.clone()).with_job_key(key.clone()));
    Ok(FanoutWorker::new(broadcaster, queue)
        .with_job_key(key)
        .with_presence(presence))
}

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    lambda::init_tracing();
    let worker = match worker().await {
        Ok(worker) => worker,
        Err(e) => {
            tracing::error!(error = %e, "start-up configuration is invalid");
            return Err(e.into());
        }
    };
    lambda::sqs::run(worker).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateless_ws::broadcast::{Payload, RecordingSender};
    use stateless_ws::lambda::sqs::{Event as SqsEvent, handle_sqs_event};
    use stateless_ws::queue::{FanoutPlanner, InMemoryQueue};
    use stateless_ws::store::{ConnectionStore, InMemoryStore};
    use stateless_ws::{ConnectionId, Membership, RoomId};

    #[tokio::test]
    async fn delivers_the_jobs_of_an_sqs_event_and_reports_the_bad_record() {
        let store = Arc::new(InMemoryStore::new());
        let room = RoomId::new("lobby").unwrap();
        for i in 0..3 {
            let id = ConnectionId::new(format!("C{i}=")).unwrap();
            store
                .join(&Membership::new(id, room.clone()))
                .await
                .unwrap();
        }
        let queue = Arc::new(InMemoryQueue::new());
        FanoutPlanner::new(store.clone(), queue.clone())
            .enqueue_broadcast(&room, &Payload::text("hi").unwrap(), None)
            .await
            .unwrap();
        let job = queue.receive(1, std::time::Duration::ZERO).await.remove(0);
        let sender = RecordingSender::new();
        let worker = FanoutWorker::new(Broadcaster::new(store, Arc::new(sender.clone())), queue);
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "1", "receiptHandle": "r1", "body": job.body, "eventSource": "aws:sqs"},
            {"messageId": "2", "receiptHandle": "r2", "body": "oops", "eventSource": "aws:sqs"}
        ]}))
        .unwrap();
        let response = handle_sqs_event(&worker, event).await;
        assert_eq!(response.batch_item_failures.len(), 1);
        assert_eq!(response.batch_item_failures[0].item_identifier, "2");
        assert_eq!(sender.total_delivered(), 3);
    }
}
