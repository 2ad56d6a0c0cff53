//! The crate's one public error type.
//!
//! Every fallible function in this crate returns [`Result<T>`](Result), whose error is [`Error`].
//! Variants carry what a caller needs to decide what to do (which field of an event was wrong,
//! which backend refused, whether retrying can help); the underlying cause, when there is one, is
//! kept and reachable through [`std::error::Error::source`]. `Display` describes this crate's layer
//! only and never repeats the cause's text, so printing the whole chain (as `anyhow`'s `{:#}` or
//! `tracing`'s error fields do) shows each piece of information once.

use std::borrow::Cow;

/// A boxed error from a lower layer (the AWS SDK, serde, I/O).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `std::result::Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate.
///
/// The enum is `#[non_exhaustive]`: match the variants you handle and keep a catch-all arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An API Gateway event could not be parsed: it is not JSON, a required field is missing or
    /// has the wrong type, or its `eventType` is not one this crate knows.
    #[error("invalid WebSocket event: field `{field}`: {reason}")]
    InvalidEvent {
        /// The JSON path of the offending field, e.g. `requestContext.connectionId`; `$` for the
        /// document as a whole.
        field: Cow<'static, str>,
        /// What is wrong with it.
        reason: String,
        /// The JSON error, when the failure came from the JSON parser.
        #[source]
        source: Option<serde_json::Error>,
    },

    /// A message body was asked for as JSON (or decoded from base64) and is not valid.
    #[error("invalid message body: {reason}")]
    InvalidBody {
        /// What is wrong with the body.
        reason: String,
        /// The underlying decoding error, when there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// An identifier ([`ConnectionId`](crate::ConnectionId), [`RoomId`](crate::RoomId),
    /// [`UserId`](crate::UserId)) failed validation.
    #[error("invalid {kind}: {reason}")]
    InvalidId {
        /// Which kind of identifier: `"connection id"`, `"room id"` or `"user id"`.
        kind: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The crate was configured wrongly: a required environment variable is missing or
    /// unparsable, a builder lacks a required setting, an endpoint is not a URL.
    #[error("configuration error: {message}")]
    Config {
        /// What is missing or wrong, naming the setting or environment variable.
        message: String,
    },

    /// The backend says the resource (table, index) does not exist.
    #[error("{backend}: resource not found")]
    NotFound {
        /// The backend and resource, e.g. `DynamoDbStore(ws-connections)`.
        backend: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },

    /// The backend throttled the request and the SDK's own retries did not get it through.
    /// Retrying later can succeed.
    #[error("{backend}: request throttled")]
    Throttled {
        /// The backend and resource, e.g. `DynamoDbStore(ws-connections)`.
        backend: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },

    /// The backend rejected the request as invalid (for DynamoDB: a `ValidationException`, such
    /// as a key schema that does not match the table). Retrying the same request cannot help.
    #[error("{backend}: request rejected as invalid")]
    Validation {
        /// The backend and resource, e.g. `DynamoDbStore(ws-connections)`.
        backend: String,
        /// The SDK error, whose message says what the backend objected to.
        #[source]
        source: BoxError,
    },

    /// A batch operation gave up with items still unprocessed after its retries (for DynamoDB:
    /// `UnprocessedItems` that kept coming back). Nothing is silently dropped: the keys that were
    /// not processed are listed.
    #[error("{backend}: {} item(s) left unprocessed after {attempts} attempt(s)", unprocessed.len())]
    Unprocessed {
        /// The backend and resource, e.g. `DynamoDbStore(ws-connections)`.
        backend: String,
        /// `(connection id, room key)` of each record that was not processed.
        unprocessed: Vec<(String, String)>,
        /// How many times the batch was sent.
        attempts: u32,
    },

    /// The management API says the connection is gone (410 `GoneException`): the client
    /// disconnected, and its records should be removed.
    #[error("connection {connection_id} is gone")]
    Gone {
        /// The connection.
        connection_id: crate::ids::ConnectionId,
    },

    /// A message is larger than API Gateway accepts (413 `PayloadTooLargeException`, or refused
    /// before sending).
    #[error("payload of {size} bytes exceeds the {limit}-byte limit")]
    PayloadTooLarge {
        /// The payload's size in bytes (0 when only the service's refusal is known).
        size: usize,
        /// The limit in bytes (131,072 for API Gateway WebSocket messages).
        limit: usize,
    },

    /// A message body cannot be sent: it is not UTF-8 text, or cannot be serialized as JSON.
    #[error("invalid payload: {reason}")]
    InvalidPayload {
        /// What is wrong with it.
        reason: String,
    },

    /// The management API refused the call with 403 (`ForbiddenException`): almost always a
    /// configuration error — an endpoint without the stage (`https://{domain}/{stage}`), the
    /// wrong API or region, or an IAM policy without `execute-api:ManageConnections`. A
    /// broadcast stops at the first one instead of failing every connection the same way.
    #[error(
        "management API at {endpoint} refused the call (403 Forbidden): check the endpoint's stage, the API id and region, and execute-api:ManageConnections"
    )]
    Forbidden {
        /// The management endpoint that refused.
        endpoint: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },

    /// Posting to a connection failed for another reason: a 5xx answer, a timeout, a network
    /// failure (`retryable: true`), or an unexpected client error.
    #[error("delivery to {connection_id} failed{}", status.map(|s| format!(" with HTTP {s}")).unwrap_or_default())]
    Delivery {
        /// The connection.
        connection_id: crate::ids::ConnectionId,
        /// The HTTP status, when an answer came.
        status: Option<u16>,
        /// Whether retrying may succeed.
        retryable: bool,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// A post may or may not have been delivered: the request may have reached the management
    /// API, but no answer came that says what happened — the call timed out after the request
    /// was sent, the connection dropped mid-request, the answer could not be read, or the
    /// broadcast's deadline cut the post in flight.
    ///
    /// Not [retryable](Error::is_retryable) in the sense of "safe to repeat": repeating it may
    /// deliver a second copy. The [`Broadcaster`](crate::broadcast::Broadcaster) repeats it only
    /// when [`BroadcastConfig::retry_unknown_outcome`](crate::broadcast::BroadcastConfig::retry_unknown_outcome)
    /// is set.
    #[error("delivery to {connection_id}: outcome unknown ({reason})")]
    OutcomeUnknown {
        /// The connection.
        connection_id: crate::ids::ConnectionId,
        /// Why no answer counts, e.g. `no answer within the call timeout`.
        reason: Cow<'static, str>,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// A job queue refused or failed a call (for SQS: `SendMessageBatch` as a whole, or one of
    /// its entries). `retryable` says whether sending again may succeed (throttling, a 5xx, a
    /// network failure) or cannot (a message the queue rejects, a queue that does not exist,
    /// access denied).
    #[error("{queue}: queue request failed{}", if *retryable { " (retryable)" } else { "" })]
    Queue {
        /// The backend and queue, e.g. `SqsQueue(https://sqs.../fanout)`.
        queue: String,
        /// Whether sending again may succeed.
        retryable: bool,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// A queued fan-out was only partly enqueued: listing the recipients or sending the jobs
    /// failed part-way. The jobs already queued are not withdrawn — they will be delivered — so
    /// calling again would send their targets a second copy; the counts say what is in the queue.
    #[error(
        "fan-out {fanout_id} enqueued only in part: {queued_jobs} job(s) with {queued_targets} target(s) are queued and will be delivered, {unknown_jobs} job(s) with {unknown_targets} target(s) may be (no answer from the queue; not sent again), the rest is not"
    )]
    Enqueue {
        /// The fan-out's id (also in every queued job).
        fanout_id: String,
        /// Jobs the queue accepted.
        queued_jobs: usize,
        /// Targets in those jobs.
        queued_targets: usize,
        /// Jobs whose send got no answer after it may have reached the queue
        /// ([`Error::QueueOutcomeUnknown`]): queued or not, nobody knows, and they were not sent
        /// again (that could deliver every target twice).
        unknown_jobs: usize,
        /// Targets in those jobs.
        unknown_targets: usize,
        /// Why it stopped.
        #[source]
        source: Box<Error>,
    },

    /// A send to a job queue got no answer after the request may have reached it (a timeout, a
    /// connection lost mid-request, an unreadable answer): the messages may be queued or not.
    /// Not retryable — sending again could queue every job twice, and SQS standard queues do
    /// not deduplicate.
    #[error("{queue}: no answer after the request may have reached the queue ({reason})")]
    QueueOutcomeUnknown {
        /// The queue, e.g. `SqsQueue(https://…/fanout)`.
        queue: String,
        /// Why no answer counts.
        reason: Cow<'static, str>,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// A [room policy](crate::policy) refused a room to a user: answer 403 with this text (it
    /// names the room and the reason, never the grant). Nothing was stored or announced.
    #[error("{0}")]
    RoomRefused(crate::policy::Refusal),
    /// The JSON Web Key Set that JWT signatures are checked against could not be had: the
    /// fetch (or the OIDC discovery before it) failed, timed out, answered a non-200 status, or
    /// the document is too large or not a key set. A token cannot be judged without keys, so the
    /// authorizer answers 500 rather than refusing the user.
    #[error("JWKS {uri}: {reason}")]
    Jwks {
        /// The URL fetched (the JWKS or the discovery document).
        uri: String,
        /// What went wrong.
        reason: Cow<'static, str>,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// Any other failure of a storage backend (network, timeouts, unexpected service errors).
    #[error("{backend}: store request failed")]
    Store {
        /// The backend and resource, e.g. `DynamoDbStore(ws-connections)`.
        backend: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

/// Shows an error and every cause under it ([`source`](std::error::Error::source) after
/// `source`), joined by `": "` — `DynamoDbStore(ws): store request failed: service error:
/// AccessDeniedException: …`. [`Error`]'s own `Display` names its layer only, so a log line
/// that prints just `%error` loses the service's error code; logs print
/// [`error.chain()`](Error::chain) instead. [`new`](Self::new) wraps any other error.
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl<'a> ErrorChain<'a> {
    /// The chain of `error`.
    pub fn new(error: &'a (dyn std::error::Error + 'static)) -> Self {
        Self(error)
    }
}

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self.0, f)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl std::fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Error {
    /// This error and its causes on one line ([`ErrorChain`]): what a log line should print.
    ///
    /// ```
    /// let error = stateless_ws::Error::Store {
    ///     backend: "DynamoDbStore(ws)".into(),
    ///     source: "AccessDeniedException: not authorized to perform dynamodb:Query".into(),
    /// };
    /// assert_eq!(error.to_string(), "DynamoDbStore(ws): store request failed");
    /// assert_eq!(
    ///     error.chain().to_string(),
    ///     "DynamoDbStore(ws): store request failed: AccessDeniedException: not authorized to perform dynamodb:Query"
    /// );
    /// ```
    pub fn chain(&self) -> ErrorChain<'_> {
        ErrorChain(self)
    }

    /// Whether retrying the same operation later may succeed and is safe (throttling, transient
    /// backend failures, unprocessed batch items, retryable deliveries). An
    /// [`OutcomeUnknown`](Error::OutcomeUnknown) post is not: it may have been delivered.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Throttled { .. }
            | Error::Unprocessed { .. }
            | Error::Store { .. }
            | Error::Jwks { .. } => true,
            Error::Delivery { retryable, .. } | Error::Queue { retryable, .. } => *retryable,
            _ => false,
        }
    }

    pub(crate) fn invalid_event(
        field: impl Into<Cow<'static, str>>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidEvent {
            field: field.into(),
            reason: reason.into(),
            source: None,
        }
    }

    pub(crate) fn invalid_event_caused_by(
        field: impl Into<Cow<'static, str>>,
        reason: impl Into<String>,
        source: serde_json::Error,
    ) -> Self {
        Error::InvalidEvent {
            field: field.into(),
            reason: reason.into(),
            source: Some(source),
        }
    }

    pub(crate) fn invalid_body(reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Error::InvalidBody {
            reason: reason.into(),
            source,
        }
    }

    pub(crate) fn invalid_id(kind: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidId {
            kind,
            reason: reason.into(),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn display_names_the_field_and_keeps_the_source_separate() {
        let json_err = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let json_text = json_err.to_string();
        let err = Error::InvalidEvent {
            field: "$".into(),
            reason: "not JSON".into(),
            source: Some(json_err),
        };
        let shown = err.to_string();
        assert!(shown.contains("`$`"), "{shown}");
        assert!(!shown.contains(&json_text), "cause printed twice: {shown}");
        assert_eq!(err.source().map(|s| s.to_string()), Some(json_text));
    }

    #[test]
    fn retryable_classification() {
        let boxed = || -> BoxError { "x".into() };
        assert!(
            Error::Throttled {
                backend: "b".into(),
                source: boxed()
            }
            .is_retryable()
        );
        assert!(
            !Error::Validation {
                backend: "b".into(),
                source: boxed()
            }
            .is_retryable()
        );
        assert!(!Error::invalid_id("room id", "empty").is_retryable());
        let unprocessed = Error::Unprocessed {
            backend: "DynamoDbStore(t)".into(),
            unprocessed: vec![("c".into(), "room#r".into())],
            attempts: 5,
        };
        assert!(unprocessed.is_retryable());
        assert_eq!(
            unprocessed.to_string(),
            "DynamoDbStore(t): 1 item(s) left unprocessed after 5 attempt(s)"
        );
    }
}
