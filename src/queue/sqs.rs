//! [`SqsQueue`]: the [`JobQueue`] on Amazon SQS (feature `sqs`).

use std::fmt;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};

use super::JobQueue;
use crate::error::{BoxError, Error, Result};

/// The message size [`SqsQueue`] packs jobs for unless told otherwise: 256 KiB (262,144
/// bytes). SQS queues accept up to 1 MiB by default (since 2025) but may be set as low as
/// 1 KiB; 256 KiB was the default before and holds a job of 500 targets with a full 128 KB
/// payload, and smaller messages spread a fan-out over more workers.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 262_144;

/// Fan-out jobs on an Amazon SQS standard queue (feature `sqs`).
///
/// Sends with `SendMessageBatch` (10 entries, 1 MiB per call) and reports each entry's failure:
/// a `SenderFault` entry is not retryable (the message is refused as it is), the others are.
/// The SDK's own retries handle throttled or failed calls first.
///
/// ```no_run
/// # async fn f(store: std::sync::Arc<dyn stateless_ws::store::ConnectionStore>,
/// #            sdk: stateless_ws::aws_config::SdkConfig) -> stateless_ws::Result<()> {
/// use std::sync::Arc;
/// use stateless_ws::broadcast::Payload;
/// use stateless_ws::queue::{FanoutPlanner, SqsQueue};
/// use stateless_ws::RoomId;
///
/// // FANOUT_QUEUE_URL names the queue; region and credentials come from `sdk`.
/// let planner = FanoutPlanner::new(store, Arc::new(SqsQueue::from_env_with(&sdk)?));
/// let queued = planner
///     .enqueue_broadcast(&RoomId::new("general")?, &Payload::text("hello")?, None)
///     .await?;
/// println!("{} targets in {} jobs", queued.targets, queued.jobs);
/// # Ok(()) }
/// ```
///
/// IAM: `sqs:SendMessage` on the queue (it authorizes `SendMessageBatch`), plus
/// `sqs:GetQueueAttributes` only for [`read_max_message_bytes`](Self::read_max_message_bytes).
/// The SQS-triggered worker also needs `sqs:ReceiveMessage`, `sqs:DeleteMessage`,
/// `sqs:GetQueueAttributes` and `sqs:ChangeMessageVisibility` for its event source, and
/// `sqs:SendMessage` for remainders.
#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    max_message_bytes: usize,
}

impl fmt::Display for SqsQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SqsQueue({})", self.queue_url)
    }
}

impl fmt::Debug for SqsQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SqsQueue({})", self.queue_url)
    }
}

impl SqsQueue {
    /// The queue at `queue_url`, with a client from `config`, packing jobs for
    /// [`DEFAULT_MAX_MESSAGE_BYTES`].
    pub fn new(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::from_client(Client::new(config), queue_url)
    }

    /// The queue at `queue_url` on `client` (e.g. one pointing at a local endpoint).
    pub fn from_client(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// Packs jobs for `bytes`: set it to the queue's `MaximumMessageSize` (or less).
    #[must_use]
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Reads the queue's `MaximumMessageSize` (one `GetQueueAttributes` call) and packs jobs
    /// for it.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] when the call fails; [`Error::Config`] when the attribute is missing
    /// or not a number.
    pub async fn read_max_message_bytes(mut self) -> Result<Self> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::MaximumMessageSize)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let value = out
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::MaximumMessageSize))
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| {
                Error::config(format!(
                    "{self:?}: GetQueueAttributes gave no numeric MaximumMessageSize"
                ))
            })?;
        self.max_message_bytes = value;
        Ok(self)
    }

    /// The queue from the environment, with a client from `aws_config`'s default chain (region,
    /// credentials, `AWS_ENDPOINT_URL_SQS` / `AWS_ENDPOINT_URL`): see
    /// [`from_env_with`](Self::from_env_with). Call it once at start-up.
    ///
    /// # Errors
    ///
    /// As [`from_env_with`](Self::from_env_with).
    pub async fn from_env() -> Result<Self> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::from_env_with(&config)
    }

    /// The queue from the environment: `FANOUT_QUEUE_URL` (required) and
    /// `FANOUT_QUEUE_MAX_MESSAGE_BYTES` (default 262,144), with a client from `config` (the
    /// `SdkConfig` the process shares between its AWS clients).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable that is missing or not a number of bytes
    /// (1,024–1,048,576). Never panics.
    pub fn from_env_with(config: &aws_config::SdkConfig) -> Result<Self> {
        use crate::env::{FANOUT_QUEUE_MAX_MESSAGE_BYTES, FANOUT_QUEUE_URL, var};
        let url = var(FANOUT_QUEUE_URL)?.ok_or_else(|| {
            Error::config(format!(
                "environment variable {FANOUT_QUEUE_URL} is not set"
            ))
        })?;
        let mut queue = Self::new(config, url);
        if let Some(v) = var(FANOUT_QUEUE_MAX_MESSAGE_BYTES)? {
            queue.max_message_bytes = v
                .parse::<usize>()
                .ok()
                .filter(|n| (1_024..=1_048_576).contains(n))
                .ok_or_else(|| {
                    Error::config(format!(
                        "environment variable {FANOUT_QUEUE_MAX_MESSAGE_BYTES} must be a number of bytes from 1024 to 1048576, got {v:?}"
                    ))
                })?;
        }
        Ok(queue)
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// The SQS client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn error<E>(&self, e: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let unknown = match &e {
            SdkError::TimeoutError(_) => Some("no answer within the call timeout"),
            SdkError::DispatchFailure(_) if !crate::sdk::failed_to_connect(&e) => {
                Some("the connection failed while the request was in flight")
            }
            SdkError::ResponseError(_) => Some("the answer could not be read"),
            _ => None,
        };
        if let Some(reason) = unknown {
            return Error::QueueOutcomeUnknown {
                queue: self.to_string(),
                reason: reason.into(),
                source: Box::new(e),
            };
        }
        let retryable = match &e {
            SdkError::ServiceError(_) => {
                let status = e.raw_response().map_or(0, |r| r.status().as_u16());
                status >= 500
                    || status == 429
                    || matches!(
                        e.code(),
                        Some(
                            "RequestThrottled"
                                | "ThrottlingException"
                                | "KmsThrottled"
                                | "ServiceUnavailable"
                                | "InternalError"
                        )
                    )
            }
            // Failed to connect: the request never left.
            SdkError::DispatchFailure(_) => true,
            _ => false,
        };
        Error::Queue {
            queue: format!("{self:?}"),
            retryable,
            source: Box::new(e),
        }
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    async fn send_batch(&self, bodies: &[String]) -> Result<Vec<Result<()>>> {
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|e| Error::Queue {
                        queue: format!("{self:?}"),
                        retryable: false,
                        source: Box::new(e),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let mut results: Vec<Result<()>> = bodies.iter().map(|_| Ok(())).collect();
        let mut answered = vec![false; bodies.len()];
        for ok in out.successful() {
            if let Some(i) = ok.id().parse::<usize>().ok().filter(|i| *i < bodies.len()) {
                answered[i] = true;
            }
        }
        for failed in out.failed() {
            let Some(i) = failed
                .id()
                .parse::<usize>()
                .ok()
                .filter(|i| *i < bodies.len())
            else {
                continue;
            };
            answered[i] = true;
            let source: BoxError = format!(
                "entry failed: {}{}",
                failed.code(),
                failed
                    .message()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            )
            .into();
            results[i] = Err(Error::Queue {
                queue: format!("{self:?}"),
                retryable: !failed.sender_fault(),
                source,
            });
        }
        // An entry in neither list was not confirmed: send it again.
        for (i, seen) in answered.iter().enumerate() {
            if !seen {
                results[i] = Err(Error::Queue {
                    queue: format!("{self:?}"),
                    retryable: true,
                    source: "SendMessageBatch did not report this entry".into(),
                });
            }
        }
        Ok(results)
    }
}
