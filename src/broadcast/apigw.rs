//! [`ApiGatewaySender`]: the API Gateway Management API on `aws-sdk-apigatewaymanagement`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::config::StalledStreamProtectionConfig;
use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::config::timeout::TimeoutConfig;
use aws_sdk_apigatewaymanagement::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_apigatewaymanagement::primitives::{Blob, DateTime};

use super::{ConnectionInfo, ConnectionSender, Payload, Target};
use crate::env;
use crate::error::{BoxError, Error, Result};
use crate::event::RequestContext;

/// How long one management API call may take before it counts as a (retryable) failure.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`ConnectionSender`] on the real API Gateway Management API.
///
/// One SDK client per management endpoint, built on first use and cached for the life of the
/// sender (clones share the cache): never a client per message. A [`Target`] that names an
/// endpoint (its record's `managementEndpoint`) goes through that endpoint's client; others go
/// through the default endpoint.
///
/// The SDK's own retries are disabled on these clients: the [`Broadcaster`](super::Broadcaster)
/// retries with its own backoff and must see each 429 to lower its concurrency. Each call has a
/// [10 s operation timeout](DEFAULT_CALL_TIMEOUT). A timeout, a connection dropped mid-request
/// or an unreadable answer is [`Error::OutcomeUnknown`] (the message may have been delivered);
/// a failure to connect is a retryable [`Error::Delivery`] (the request never left).
///
/// # Endpoints
///
/// The management endpoint is `https://{domainName}/{stage}` — **with the stage**; leaving it out
/// is the classic cause of `403 Forbidden`. Behind a custom domain, use the `execute-api` URL
/// ([`RequestContext::execute_api_endpoint`]). Build a sender:
///
/// - in a Lambda handler, once at start-up with [`ApiGatewaySender::new`] (no default endpoint),
///   then per event [`with_default_endpoint`](Self::with_default_endpoint) or
///   [`for_event`](Self::for_event) — cheap, the clients stay cached;
/// - in a service outside any WebSocket event, with [`from_env`](Self::from_env)
///   (`APIGW_MANAGEMENT_URL`);
/// - for a custom domain or a local gateway, with an explicit endpoint.
///
/// IAM: `execute-api:ManageConnections` on `arn:aws:execute-api:REGION:ACCOUNT:API_ID/STAGE/POST/@connections/*`
/// (and `GET`, `DELETE` for [`get`](ConnectionSender::get) / [`delete`](ConnectionSender::delete)).
#[derive(Clone)]
pub struct ApiGatewaySender {
    base: aws_sdk_apigatewaymanagement::config::Builder,
    clients: Arc<RwLock<HashMap<Arc<str>, Client>>>,
    default_endpoint: Option<Arc<str>>,
}

impl ApiGatewaySender {
    /// A sender using `config` (region, credentials) with no default endpoint: every target must
    /// name one, or use [`with_default_endpoint`](Self::with_default_endpoint).
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let base = aws_sdk_apigatewaymanagement::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            // Bodies are at most 128 KB and calls have an operation timeout: the stalled-stream
            // watchdog (built for long streaming bodies) only adds a timer per request.
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(DEFAULT_CALL_TIMEOUT)
                    .build(),
            );
        Self::from_builder(base)
    }

    /// A sender from a fully prepared SDK config builder (custom timeouts, HTTP client,
    /// interceptors — e.g. `aws-smithy-mocks` in tests). Its endpoint URL, if any, is replaced per
    /// target; its retry settings are kept as given. Keep the SDK's retries disabled: an SDK
    /// retry after a timeout repeats a post that may have been delivered, behind the
    /// broadcaster's back (see [`Broadcaster`](super::Broadcaster#delivery-semantics)).
    pub fn from_builder(base: aws_sdk_apigatewaymanagement::config::Builder) -> Self {
        Self {
            base,
            clients: Arc::default(),
            default_endpoint: None,
        }
    }

    /// A sender for the API an event came from: default endpoint
    /// [`RequestContext::management_endpoint`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] when the event lacks `domainName` or `stage`.
    pub fn for_event(config: &aws_config::SdkConfig, context: &RequestContext) -> Result<Self> {
        Self::new(config).with_default_endpoint(&context.management_endpoint()?)
    }

    /// A sender configured from the environment: `aws_config`'s default chain for region and
    /// credentials, and the default endpoint as [`from_env_with`](Self::from_env_with) reads it.
    /// Call it once at start-up.
    ///
    /// # Errors
    ///
    /// As [`from_env_with`](Self::from_env_with).
    pub async fn from_env() -> Result<Self> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::from_env_with(&config)
    }

    /// A sender with a client from `config` (the `SdkConfig` the process shares between its
    /// AWS clients) and [`env::APIGW_MANAGEMENT_URL`](crate::env::APIGW_MANAGEMENT_URL)
    /// (`APIGW_MANAGEMENT_URL`) as the default endpoint.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the variable is missing or not a valid endpoint. Never panics.
    pub fn from_env_with(config: &aws_config::SdkConfig) -> Result<Self> {
        let endpoint = match env::var(env::APIGW_MANAGEMENT_URL)? {
            Some(v) => v,
            None => {
                return Err(Error::config(format!(
                    "environment variable {} is not set: it must be the management \
                     endpoint https://{{api-id}}.execute-api.{{region}}.amazonaws.com/{{stage}}",
                    env::APIGW_MANAGEMENT_URL
                )));
            }
        };
        Self::new(config).with_default_endpoint(endpoint.trim())
    }

    /// Sets `endpoint` as the sender's process-wide default (a clone shares the cached clients):
    /// the last fallback for targets whose record names no endpoint and that no
    /// [`Broadcaster::with_default_endpoint`](crate::broadcast::Broadcaster::with_default_endpoint)
    /// covered.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `endpoint` is not an `http(s)://host/stage` URL.
    pub fn with_default_endpoint(mut self, endpoint: &str) -> Result<Self> {
        self.default_endpoint = Some(validate_endpoint(endpoint)?.into());
        Ok(self)
    }

    /// The default endpoint, if any.
    pub fn default_endpoint(&self) -> Option<&str> {
        self.default_endpoint.as_deref()
    }

    fn endpoint_of<'a>(&'a self, target: &'a Target) -> Result<&'a Arc<str>> {
        target
            .endpoint
            .as_ref()
            .or(self.default_endpoint.as_ref())
            .ok_or_else(|| {
                Error::config(format!(
                    "no management endpoint for connection {}: the record names none and the \
                     sender has no default (use with_default_endpoint or {})",
                    target.connection_id,
                    env::APIGW_MANAGEMENT_URL
                ))
            })
    }

    /// The cached client for `endpoint`, built on first use.
    fn client(&self, endpoint: &Arc<str>) -> Result<Client> {
        if let Some(client) = self
            .clients
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(endpoint)
        {
            return Ok(client.clone());
        }
        let endpoint_url = validate_endpoint(endpoint)?;
        let mut clients = self.clients.write().unwrap_or_else(PoisonError::into_inner);
        let client = clients.entry(Arc::clone(endpoint)).or_insert_with(|| {
            Client::from_conf(self.base.clone().endpoint_url(endpoint_url).build())
        });
        Ok(client.clone())
    }

    /// Number of SDK clients built so far (one per distinct endpoint).
    #[doc(hidden)]
    pub fn cached_clients(&self) -> usize {
        self.clients
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Checks that `endpoint` is `http(s)://host/path` with a non-empty path (the stage) and returns
/// it without a trailing slash.
pub(super) fn validate_endpoint(endpoint: &str) -> Result<String> {
    let trimmed = endpoint.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    let Some(rest) = rest else {
        return Err(Error::config(format!(
            "management endpoint {endpoint:?} must start with https:// (or http:// for a local gateway)"
        )));
    };
    match rest.split_once('/') {
        Some((host, stage)) if !host.is_empty() && !stage.is_empty() => Ok(trimmed.to_owned()),
        _ => Err(Error::config(format!(
            "management endpoint {endpoint:?} has no stage: it must be https://{{domain}}/{{stage}} \
             (a missing stage makes API Gateway answer 403 Forbidden)"
        ))),
    }
}

/// Maps an SDK error onto the crate's meanings (see [`ConnectionSender`]) through [`classify`].
///
/// Failures without an answer are split by whether the request can have left: a failure to
/// connect (refused, unreachable, DNS, TLS handshake) happened before any byte of the request
/// was sent, so it is a plain retryable [`Error::Delivery`]; a timeout, a connection dropped
/// mid-request or an unreadable answer may come after API Gateway delivered the message, so
/// it is [`Error::OutcomeUnknown`] and the broadcaster does not repeat it by default.
fn map_err<E>(endpoint: &str, target: &Target, err: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    let unknown_outcome = match &err {
        SdkError::TimeoutError(_) => Some("no answer within the call timeout"),
        SdkError::DispatchFailure(_) if !crate::sdk::failed_to_connect(&err) => {
            Some("the connection failed while the request was in flight")
        }
        SdkError::ResponseError(_) => Some("the answer could not be read"),
        _ => None,
    };
    let construction = matches!(err, SdkError::ConstructionFailure(_));
    let source: BoxError = Box::new(err);
    if let Some(reason) = unknown_outcome {
        return Error::OutcomeUnknown {
            connection_id: target.connection_id.clone(),
            reason: reason.into(),
            source: Some(source),
        };
    }
    if construction {
        // The request could not be built: nothing was sent, and trying again will not help.
        return Error::Delivery {
            connection_id: target.connection_id.clone(),
            status: None,
            retryable: false,
            source,
        };
    }
    classify(
        "ApiGatewaySender",
        endpoint,
        target,
        code.as_deref(),
        status,
        source,
    )
}

/// The one table from a management API answer — or a failure to connect, `status: None` — to
/// the crate's meanings, shared by [`ApiGatewaySender`] and
/// [`SigV4Sender`](super::SigV4Sender) so both report every fault alike.
///
/// `code` is the error code as the SDK's restJson1 parser finds it (`x-amzn-ErrorType`, else the
/// body's `code` or `__type`), already [sanitized](sanitize_error_code). A status without a code
/// is still classified by status, so emulators that omit the header behave the same. `sender`
/// names the backend in [`Error::Throttled`] (`{sender}({endpoint})`).
pub(super) fn classify(
    sender: &str,
    endpoint: &str,
    target: &Target,
    code: Option<&str>,
    status: Option<u16>,
    source: BoxError,
) -> Error {
    let connection_id = target.connection_id.clone();
    match (code, status) {
        (Some("GoneException"), _) | (None, Some(410)) => Error::Gone { connection_id },
        (
            Some("LimitExceededException" | "ThrottlingException" | "TooManyRequestsException"),
            _,
        )
        | (_, Some(429)) => Error::Throttled {
            backend: format!("{sender}({endpoint})"),
            source,
        },
        (Some("PayloadTooLargeException"), _) | (_, Some(413)) => Error::PayloadTooLarge {
            size: 0,
            limit: Payload::MAX_SIZE,
        },
        (Some("ForbiddenException" | "AccessDeniedException"), _) | (_, Some(403)) => {
            Error::Forbidden {
                endpoint: endpoint.to_owned(),
                source,
            }
        }
        // No status: the request never left (a failure to connect), so trying again is safe.
        // A 5xx is an answer: API Gateway says the call failed, so it is retried like a 429.
        (_, status) => Error::Delivery {
            connection_id,
            retryable: status.is_none_or(|s| s >= 500),
            status,
            source,
        },
    }
}

/// An error code as the SDK's JSON error parser leaves it: what follows a `:` (a URL) and what
/// precedes a `#` (a namespace) dropped, e.g. `aws.protocoltests#GoneException:http://…` →
/// `GoneException`.
pub(super) fn sanitize_error_code(code: &str) -> &str {
    let code = code.split_once(':').map_or(code, |(c, _)| c);
    code.split_once('#').map_or(code, |(_, c)| c)
}

fn to_system_time(t: Option<&DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

impl fmt::Debug for ApiGatewaySender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiGatewaySender")
            .field("default_endpoint", &self.default_endpoint)
            .field("cached_clients", &self.cached_clients())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ApiGatewaySender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ApiGatewaySender({})",
            self.default_endpoint
                .as_deref()
                .unwrap_or("no default endpoint")
        )
    }
}

#[async_trait]
impl ConnectionSender for ApiGatewaySender {
    fn default_endpoint(&self) -> Option<&str> {
        self.default_endpoint.as_deref()
    }

    async fn post(&self, target: &Target, payload: &Payload) -> Result<()> {
        // No size check here: a `Payload` cannot exceed `Payload::MAX_SIZE`.
        let endpoint = self.endpoint_of(target)?;
        self.client(endpoint)?
            .post_to_connection()
            .connection_id(target.connection_id.as_str())
            .data(Blob::new(payload.as_bytes()))
            .send()
            .await
            .map_err(|e| map_err(endpoint, target, e))?;
        Ok(())
    }

    async fn get(&self, target: &Target) -> Result<ConnectionInfo> {
        let endpoint = self.endpoint_of(target)?;
        let out = self
            .client(endpoint)?
            .get_connection()
            .connection_id(target.connection_id.as_str())
            .send()
            .await
            .map_err(|e| map_err(endpoint, target, e))?;
        Ok(ConnectionInfo {
            connected_at: to_system_time(out.connected_at()),
            last_active_at: to_system_time(out.last_active_at()),
            source_ip: out
                .identity()
                .and_then(|i| i.source_ip())
                .map(str::to_owned),
            user_agent: out
                .identity()
                .and_then(|i| i.user_agent())
                .map(str::to_owned),
        })
    }

    async fn delete(&self, target: &Target) -> Result<()> {
        let endpoint = self.endpoint_of(target)?;
        self.client(endpoint)?
            .delete_connection()
            .connection_id(target.connection_id.as_str())
            .send()
            .await
            .map_err(|e| map_err(endpoint, target, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_need_a_scheme_and_a_stage() {
        assert_eq!(
            validate_endpoint("https://abc.execute-api.eu-west-1.amazonaws.com/prod/").unwrap(),
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod"
        );
        assert!(validate_endpoint("http://127.0.0.1:9000/local").is_ok());
        let err = validate_endpoint("https://abc.execute-api.eu-west-1.amazonaws.com").unwrap_err();
        assert!(err.to_string().contains("no stage"), "{err}");
        let err = validate_endpoint("abc.execute-api.eu-west-1.amazonaws.com/prod").unwrap_err();
        assert!(err.to_string().contains("https://"), "{err}");
    }
}
