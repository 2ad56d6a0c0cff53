//! The [`ConnectionSender`] seam: the API Gateway Management API as a trait.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use super::Payload;
use crate::error::Result;
use crate::ids::ConnectionId;
use crate::store::Membership;

/// Where to deliver: a connection, and the management endpoint of the API that holds it when
/// the record names one (tables shared by several APIs or regions). `None` means the sender's
/// default endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The connection.
    pub connection_id: ConnectionId,
    /// The management endpoint (`https://{domain}/{stage}`) holding it, if not the default.
    pub endpoint: Option<Arc<str>>,
}

impl Target {
    /// A target on the sender's default endpoint.
    pub fn new(connection_id: ConnectionId) -> Self {
        Self {
            connection_id,
            endpoint: None,
        }
    }

    /// A target on an explicit management endpoint.
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<Arc<str>>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }
}

impl From<ConnectionId> for Target {
    fn from(connection_id: ConnectionId) -> Self {
        Self::new(connection_id)
    }
}

impl From<&Membership> for Target {
    fn from(record: &Membership) -> Self {
        Self {
            connection_id: record.connection_id.clone(),
            endpoint: record.endpoint.as_deref().map(Arc::from),
        }
    }
}

impl From<Membership> for Target {
    fn from(record: Membership) -> Self {
        Self {
            connection_id: record.connection_id,
            endpoint: record.endpoint.map(Arc::from),
        }
    }
}

/// What the management API's `GET @connections/{id}` says about a connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// When the connection was made.
    pub connected_at: Option<SystemTime>,
    /// When the connection last sent or received a message.
    pub last_active_at: Option<SystemTime>,
    /// The client's IP address.
    pub source_ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
}

/// The API Gateway Management API, as the broadcaster needs it: post to a connection, look one
/// up, close one.
///
/// Implementations report outcomes with the crate's [`Error`](crate::Error), and the
/// [`Broadcaster`](super::Broadcaster) relies on these meanings:
///
/// | outcome | error |
/// |---|---|
/// | the connection is gone (410) | [`Error::Gone`](crate::Error::Gone) |
/// | throttled (429) | [`Error::Throttled`](crate::Error::Throttled) — retried, and concurrency drops |
/// | transient, the request was answered or never left: 5xx, connection refused | [`Error::Delivery`](crate::Error::Delivery) with `retryable: true` |
/// | no answer after the request may have left: timeout, connection dropped mid-request | [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown) — retried only if configured |
/// | body too large (413) | [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge) |
/// | wrong endpoint, stage or IAM (403) | [`Error::Forbidden`](crate::Error::Forbidden) — stops a broadcast |
///
/// Three implementations ship: [`ApiGatewaySender`](super::ApiGatewaySender) on the SDK and the
/// lean [`SigV4Sender`](super::SigV4Sender) (both feature `apigw`; one error table, so they report
/// every fault alike), and [`RecordingSender`](super::RecordingSender) for tests and local use. `Display` names the
/// backend and its default endpoint, for logs.
#[async_trait]
pub trait ConnectionSender: Send + Sync + fmt::Debug + fmt::Display + 'static {
    /// Sends `payload` to the connection as one text message.
    async fn post(&self, target: &Target, payload: &Payload) -> Result<()>;

    /// Looks the connection up.
    async fn get(&self, target: &Target) -> Result<ConnectionInfo>;

    /// Closes the connection (API Gateway then runs `$disconnect`).
    async fn delete(&self, target: &Target) -> Result<()>;

    /// The management endpoint used for targets that name none, if the sender has one
    /// (`ApiGatewaySender`'s `APIGW_MANAGEMENT_URL`). The
    /// [`FanoutWorker`](crate::queue::FanoutWorker) allows jobs to name only this endpoint
    /// unless told otherwise. `None` by default: a wrapper that does not forward it makes the
    /// worker refuse every named endpoint (fail closed), never allow more.
    fn default_endpoint(&self) -> Option<&str> {
        None
    }
}

#[async_trait]
impl<T: ConnectionSender + ?Sized> ConnectionSender for Arc<T> {
    async fn post(&self, target: &Target, payload: &Payload) -> Result<()> {
        (**self).post(target, payload).await
    }
    async fn get(&self, target: &Target) -> Result<ConnectionInfo> {
        (**self).get(target).await
    }
    async fn delete(&self, target: &Target) -> Result<()> {
        (**self).delete(target).await
    }
    fn default_endpoint(&self) -> Option<&str> {
        (**self).default_endpoint()
    }
}
