//! The SQS-triggered fan-out worker (features `lambda` and `sqs`): [`run`] is the whole `main`
//! of a worker function, [`handle_sqs_event`] the part to call from a `lambda_runtime` set-up of
//! your own.
//!
//! ```no_run
//! use std::sync::Arc;
//! use stateless_ws::broadcast::{ApiGatewaySender, Broadcaster};
//! use stateless_ws::lambda;
//! use stateless_ws::queue::{FanoutWorker, JobKey, SqsQueue};
//! use stateless_ws::store::DynamoDbStore;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), lambda::LambdaError> {
//!     lambda::init_tracing();
//!     let sdk = stateless_ws::aws_config::load_defaults(
//!         stateless_ws::aws_config::BehaviorVersion::latest(),
//!     )
//!     .await;
//!     let broadcaster = Broadcaster::new(
//!         Arc::new(DynamoDbStore::from_env_with(&sdk)?),
//!         Arc::new(ApiGatewaySender::from_env().await?),
//!     );
//!     // FANOUT_JOB_KEY, when set: run only jobs the planner signed with it.
//!     let worker = FanoutWorker::new(broadcaster, Arc::new(SqsQueue::from_env_with(&sdk)?))
//!         .with_job_key(JobKey::from_env()?);
//!     lambda::sqs::run(worker).await
//! }
//! ```

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};

pub use aws_lambda_events::sqs::{SqsBatchResponse as BatchResponse, SqsEvent as Event};

use super::{LambdaError, LambdaEvent, deadline};
use crate::error::Error;
use crate::queue::{FanoutWorker, JobOutcome};

/// Runs `worker` as this Lambda function: each invocation gets the worker with the
/// invocation's [`deadline`], and answers with [`handle_sqs_event`]'s batch response.
///
/// # Errors
///
/// What `lambda_runtime::run` returns (the Runtime API failed). It panics, as `lambda_runtime`
/// does, outside Lambda or a local runner (the Runtime API's variables are missing).
pub async fn run(worker: FanoutWorker) -> Result<(), LambdaError> {
    let worker = &worker;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<SqsEvent>| async move {
            let worker = worker.clone().with_deadline(deadline(&event.context));
            Ok::<_, LambdaError>(handle_sqs_event(&worker, event.payload).await)
        },
    ))
    .await
}

/// Handles an SQS-triggered invocation: each record's body is a job for `worker`, processed one
/// after another; the answer lists the records to retry (`batchItemFailures`, by `messageId`).
/// The event source mapping needs `FunctionResponseTypes: [ReportBatchItemFailures]`, or Lambda
/// retries the whole batch.
///
/// Give `worker` the invocation's deadline first
/// (`worker.with_deadline(lambda::deadline(&context))`, as [`run`] does); jobs not reached by
/// then are reported as failures and come back.
pub async fn handle_sqs_event(worker: &FanoutWorker, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let Some(message_id) = record.message_id else {
            // Lambda always sends one; without it the record cannot be reported.
            tracing::error!("an SQS record without messageId; skipped");
            continue;
        };
        let outcome = match record.body.as_deref() {
            Some(body) => worker.process(body).await,
            None => JobOutcome::Failed {
                job: None,
                error: Error::invalid_body("fan-out job: the SQS record has no body", None),
            },
        };
        if !outcome.is_ack() {
            response.add_failure(message_id);
        }
    }
    response
}
