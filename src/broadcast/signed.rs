//! [`SigV4Sender`]: the API Gateway Management API over plain signed HTTP, without the SDK's
//! orchestrator.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use serde::Deserialize;

use super::apigw::{classify, sanitize_error_code, validate_endpoint};
use super::{ConnectionInfo, ConnectionSender, DEFAULT_CALL_TIMEOUT, Payload, Target};
use crate::env;
use crate::error::{BoxError, Error, Result};
use crate::event::RequestContext;
use crate::http::HttpsClient;

/// How long establishing a connection (TCP and TLS) may take; a failure to connect in that time
/// is a retryable [`Error::Delivery`] (the request never left). The SDK's default is 3.1 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Cached credentials are replaced this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// The most of an answer's body that is read (an error body, a `GetConnection` answer): a
/// faulty or hostile endpoint cannot make the sender buffer more.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A lean [`ConnectionSender`] on the API Gateway Management API: each request is signed with
/// `aws-sigv4` (the SDK's own signer, same canonical request as the SDK) and sent over one
/// pooled HTTP/1.1 keep-alive client (hyper on rustls/aws-lc-rs, the system's root certificates).
///
/// # When to pick it over [`ApiGatewaySender`](super::ApiGatewaySender)
///
/// For throughput per core: a post through the SDK spends about a quarter of its CPU in the
/// SDK's orchestration (interceptors, retry and identity plumbing, its own body types). This
/// sender does the same signed `POST|GET|DELETE {endpoint}/@connections/{id}` with none of it.
/// Both report every outcome alike (one shared table, see [`ConnectionSender`]), so a
/// [`Broadcaster`](super::Broadcaster) behaves the same over either.
///
/// What it does not do: no SDK interceptors, no SDK retries (the broadcaster retries, and must
/// see each 429), no endpoint resolution (give the endpoint), no request compression or
/// checksums (the management API uses none). Pick [`ApiGatewaySender`](super::ApiGatewaySender)
/// when you need those or a custom SDK HTTP client.
///
/// # Behaviour
///
/// - Credentials come from the config's provider chain, are cached, and are refreshed 5 minutes
///   before they expire; concurrent posts wait for one provider call. A session token is sent
///   as `x-amz-security-token`. A provider failure is an [`Error::Config`] naming the cause
///   (unless the cached credentials have not expired yet: they are used meanwhile).
/// - Connecting may take [`DEFAULT_CONNECT_TIMEOUT`]; a failure to connect is a retryable
///   [`Error::Delivery`]. A whole call may take [`DEFAULT_CALL_TIMEOUT`]
///   ([`with_call_timeout`](Self::with_call_timeout)); after it, or when the connection drops
///   mid-request or the answer cannot be read, the result is [`Error::OutcomeUnknown`] (the
///   message may have been delivered).
/// - At most 64 KiB of an answer's body is read.
///
/// Endpoints and IAM are as for [`ApiGatewaySender`](super::ApiGatewaySender):
/// `https://{domainName}/{stage}` with the stage, and `execute-api:ManageConnections` on
/// `arn:aws:execute-api:REGION:ACCOUNT:API_ID/STAGE/POST/@connections/*` (and `GET`, `DELETE`).
///
/// ```no_run
/// use std::sync::Arc;
/// use stateless_ws::broadcast::{Broadcaster, Payload, SigV4Sender};
/// use stateless_ws::store::InMemoryStore;
/// use stateless_ws::RoomId;
///
/// # async fn run() -> stateless_ws::Result<()> {
/// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
/// let sender = SigV4Sender::new(&config)?
///     .with_default_endpoint("https://abc123.execute-api.eu-west-1.amazonaws.com/prod")?;
/// let broadcaster = Broadcaster::new(Arc::new(InMemoryStore::new()), Arc::new(sender));
/// let report = broadcaster
///     .broadcast(&RoomId::new("lobby")?, &Payload::text("hello")?, None)
///     .await?;
/// println!("{report}");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SigV4Sender {
    inner: Arc<Inner>,
    default_endpoint: Option<Arc<str>>,
    call_timeout: Duration,
}

struct Inner {
    client: HttpsClient<Full<Bytes>>,
    region: String,
    provider: SharedCredentialsProvider,
    /// The config's time source (a fixed clock in tests), or the system clock.
    now: Box<dyn Fn() -> SystemTime + Send + Sync>,
    identity: RwLock<Option<Identity>>,
    /// Held while the provider is asked, so that concurrent posts wait for one call.
    refresh: tokio::sync::Mutex<()>,
}

impl SigV4Sender {
    /// A sender using `config`'s region and credentials provider (and its time source, if
    /// any), with no default endpoint: every target must name one, or use
    /// [`with_default_endpoint`](Self::with_default_endpoint).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `config` has no region or no credentials provider, or TLS cannot
    /// be set up.
    pub fn new(config: &aws_config::SdkConfig) -> Result<Self> {
        let region = config.region().ok_or_else(|| {
            Error::config("SigV4Sender: the SdkConfig has no region (set AWS_REGION)")
        })?;
        let provider = config.credentials_provider().ok_or_else(|| {
            Error::config("SigV4Sender: the SdkConfig has no credentials provider")
        })?;
        let client = crate::http::client("SigV4Sender", Some(DEFAULT_CONNECT_TIMEOUT))?;
        let time = config.time_source();
        let now = Box::new(move || time.as_ref().map_or_else(SystemTime::now, |t| t.now()));
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                region: region.to_string(),
                provider,
                now,
                identity: RwLock::new(None),
                refresh: tokio::sync::Mutex::new(()),
            }),
            default_endpoint: None,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        })
    }

    /// A sender for the API an event came from: default endpoint
    /// [`RequestContext::management_endpoint`].
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new); [`Error::InvalidEvent`] when the event lacks `domainName` or
    /// `stage`.
    pub fn for_event(config: &aws_config::SdkConfig, context: &RequestContext) -> Result<Self> {
        Self::new(config)?.with_default_endpoint(&context.management_endpoint()?)
    }

    /// A sender configured from the environment: `aws_config`'s default chain for region and
    /// credentials, and the default endpoint as [`from_env_with`](Self::from_env_with) reads it.
    ///
    /// # Errors
    ///
    /// As [`from_env_with`](Self::from_env_with).
    pub async fn from_env() -> Result<Self> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::from_env_with(&config)
    }

    /// A sender from `config` with [`env::APIGW_MANAGEMENT_URL`](crate::env::APIGW_MANAGEMENT_URL)
    /// (`APIGW_MANAGEMENT_URL`) as the default endpoint.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the variable is missing or not a valid endpoint, or as
    /// [`new`](Self::new). Never panics.
    pub fn from_env_with(config: &aws_config::SdkConfig) -> Result<Self> {
        let Some(endpoint) = env::var(env::APIGW_MANAGEMENT_URL)? else {
            return Err(Error::config(format!(
                "environment variable {} is not set: it must be the management \
                 endpoint https://{{api-id}}.execute-api.{{region}}.amazonaws.com/{{stage}}",
                env::APIGW_MANAGEMENT_URL
            )));
        };
        Self::new(config)?.with_default_endpoint(endpoint.trim())
    }

    /// Sets `endpoint` as the default for targets whose record names none (clones share the
    /// HTTP client and credentials).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `endpoint` is not an `http(s)://host/stage` URL.
    pub fn with_default_endpoint(mut self, endpoint: &str) -> Result<Self> {
        self.default_endpoint = Some(validate_endpoint(endpoint)?.into());
        Ok(self)
    }

    /// Sets how long one call may take, answer included ([`DEFAULT_CALL_TIMEOUT`] by default).
    #[must_use]
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The default endpoint, if any.
    pub fn default_endpoint(&self) -> Option<&str> {
        self.default_endpoint.as_deref()
    }

    fn endpoint_of(&self, target: &Target) -> Result<String> {
        match target.endpoint.as_deref() {
            // A record's endpoint is data: check it as the SDK sender does before use.
            Some(endpoint) => validate_endpoint(endpoint),
            None => self
                .default_endpoint
                .as_deref()
                .map(str::to_owned)
                .ok_or_else(|| {
                    Error::config(format!(
                        "no management endpoint for connection {}: the record names none and \
                         the sender has no default (use with_default_endpoint or {})",
                        target.connection_id,
                        env::APIGW_MANAGEMENT_URL
                    ))
                }),
        }
    }

    fn now(&self) -> SystemTime {
        (self.inner.now)()
    }

    /// The cached identity if it is good for 5 more minutes (or never expires).
    fn cached_identity(&self, now: SystemTime) -> Option<Identity> {
        let cached = self
            .inner
            .identity
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        cached
            .as_ref()
            .filter(|id| {
                id.expiration()
                    .is_none_or(|exp| now + REFRESH_BEFORE_EXPIRY < exp)
            })
            .cloned()
    }

    /// Credentials for a request: cached, or from the provider (one call at a time).
    async fn identity(&self) -> Result<Identity> {
        if let Some(identity) = self.cached_identity(self.now()) {
            return Ok(identity);
        }
        let _one_at_a_time = self.inner.refresh.lock().await;
        if let Some(identity) = self.cached_identity(self.now()) {
            return Ok(identity);
        }
        use aws_credential_types::provider::ProvideCredentials;
        let credentials = match self.inner.provider.provide_credentials().await {
            Ok(credentials) => credentials,
            Err(e) => {
                // Credentials inside their last 5 minutes still sign: keep using them while the
                // provider fails, and ask again on the next request.
                let now = self.now();
                let still_valid = self
                    .inner
                    .identity
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                    .filter(|id| id.expiration().is_none_or(|exp| now < exp))
                    .cloned();
                return still_valid.ok_or_else(|| {
                    Error::config(format!(
                        "SigV4Sender: the credentials provider failed: {}",
                        error_chain(&e)
                    ))
                });
            }
        };
        let identity = Identity::from(credentials);
        *self
            .inner
            .identity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(identity.clone());
        Ok(identity)
    }

    /// Signs and sends one request; the answer's status, headers and (bounded) body.
    async fn call(&self, method: Method, target: &Target, body: Bytes) -> Result<Answer> {
        let endpoint = self.endpoint_of(target)?;
        let uri = format!(
            "{endpoint}/@connections/{}",
            encode_id(target.connection_id.as_str())
        );
        let identity = self.identity().await?;
        let not_built = |source: BoxError| Error::Delivery {
            connection_id: target.connection_id.clone(),
            status: None,
            retryable: false,
            source,
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.inner.region)
            .name("execute-api")
            .time(self.now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| not_built(e.into()))?
            .into();
        let signable = SignableRequest::new(
            method.as_str(),
            uri.as_str(),
            std::iter::empty(),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| not_built(e.into()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| not_built(e.into()))?
            .into_parts();
        let mut builder = Request::builder().method(method).uri(uri.as_str());
        if !body.is_empty() {
            builder = builder.header(http::header::CONTENT_TYPE, "application/octet-stream");
        }
        let mut request = builder
            .body(Full::new(body))
            .map_err(|e| not_built(e.into()))?;
        instructions.apply_to_request_http1x(&mut request);

        let unknown = |reason: &'static str, source: Option<BoxError>| Error::OutcomeUnknown {
            connection_id: target.connection_id.clone(),
            reason: reason.into(),
            source,
        };
        let exchange = async {
            let response = match self.inner.client.request(request).await {
                Ok(response) => response,
                // Connect-phase failures (refused, unreachable, DNS, TLS, connect timeout):
                // nothing was sent.
                Err(e) if e.is_connect() => {
                    return Err(classify(
                        "SigV4Sender",
                        &endpoint,
                        target,
                        None,
                        None,
                        Box::new(e),
                    ));
                }
                Err(e) => {
                    let reason = if is_parse_error(&e) {
                        "the answer could not be read"
                    } else {
                        "the connection failed while the request was in flight"
                    };
                    return Err(unknown(reason, Some(Box::new(e))));
                }
            };
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES).collect().await;
            Ok(Answer {
                status: parts.status,
                error_type: parts
                    .headers
                    .get("x-amzn-errortype")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: body.map(|b| b.to_bytes()),
            })
        };
        let answer = tokio::time::timeout(self.call_timeout, exchange)
            .await
            .map_err(|e| unknown("no answer within the call timeout", Some(Box::new(e))))??;
        if answer.status.is_success() {
            return match answer.body {
                Ok(_) => Ok(answer),
                Err(e) => Err(unknown("the answer could not be read", Some(e))),
            };
        }
        let code = answer.error_code();
        let status = answer.status.as_u16();
        let source: BoxError = format!(
            "the management API answered {status}{}",
            code.as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
        )
        .into();
        Err(classify(
            "SigV4Sender",
            &endpoint,
            target,
            code.as_deref(),
            Some(status),
            source,
        ))
    }
}

struct Answer {
    status: StatusCode,
    error_type: Option<String>,
    /// The body, or why it could not be read (too large, connection lost).
    body: std::result::Result<Bytes, BoxError>,
}

impl Answer {
    /// The error code as the SDK's restJson1 parser finds it: the `x-amzn-ErrorType` header, else
    /// the body's `code`, else its `__type`; sanitized.
    fn error_code(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct ErrorBody {
            code: Option<String>,
            #[serde(rename = "__type")]
            kind: Option<String>,
        }
        let raw = self.error_type.clone().or_else(|| {
            let body = self.body.as_ref().ok()?;
            let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
            parsed.code.or(parsed.kind)
        })?;
        Some(sanitize_error_code(&raw).to_owned())
    }
}

/// Whether hyper failed on the answer's bytes (not HTTP, or cut short).
fn is_parse_error(err: &hyper_util::client::legacy::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = next {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            return h.is_parse() || h.is_parse_status() || h.is_incomplete_message();
        }
        next = e.source();
    }
    false
}

/// `id` percent-encoded as the SDK encodes a path label: everything but the unreserved
/// characters `A-Za-z0-9-._~`.
fn encode_id(id: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(id.len() + 8);
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}

/// The payload's bytes without a copy: the body shares the payload's buffer.
struct PayloadBytes(Payload);

impl AsRef<[u8]> for PayloadBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// `GetConnection`'s answer (restJson1; timestamps ISO 8601 with offset).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetConnectionOutput {
    connected_at: Option<String>,
    last_active_at: Option<String>,
    identity: Option<IdentityOutput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityOutput {
    source_ip: Option<String>,
    user_agent: Option<String>,
}

fn parse_time(text: Option<&str>) -> std::result::Result<Option<SystemTime>, BoxError> {
    use aws_sdk_apigatewaymanagement::primitives::{DateTime, DateTimeFormat as Format};
    text.map(|t| {
        DateTime::from_str(t, Format::DateTimeWithOffset)
            .map_err(BoxError::from)
            .and_then(|d| SystemTime::try_from(d).map_err(BoxError::from))
    })
    .transpose()
}

fn parse_connection(body: &[u8]) -> std::result::Result<ConnectionInfo, BoxError> {
    let out: GetConnectionOutput = serde_json::from_slice(body)?;
    let identity = out.identity;
    Ok(ConnectionInfo {
        connected_at: parse_time(out.connected_at.as_deref())?,
        last_active_at: parse_time(out.last_active_at.as_deref())?,
        source_ip: identity.as_ref().and_then(|i| i.source_ip.clone()),
        user_agent: identity.and_then(|i| i.user_agent),
    })
}

impl fmt::Debug for SigV4Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4Sender")
            .field("default_endpoint", &self.default_endpoint)
            .field("region", &self.inner.region)
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for SigV4Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigV4Sender({})",
            self.default_endpoint
                .as_deref()
                .unwrap_or("no default endpoint")
        )
    }
}

#[async_trait]
impl ConnectionSender for SigV4Sender {
    fn default_endpoint(&self) -> Option<&str> {
        self.default_endpoint.as_deref()
    }

    async fn post(&self, target: &Target, payload: &Payload) -> Result<()> {
        let body = Bytes::from_owner(PayloadBytes(payload.clone()));
        self.call(Method::POST, target, body).await.map(drop)
    }

    async fn get(&self, target: &Target) -> Result<ConnectionInfo> {
        let answer = self.call(Method::GET, target, Bytes::new()).await?;
        let unreadable = |source: BoxError| Error::OutcomeUnknown {
            connection_id: target.connection_id.clone(),
            reason: "the answer could not be read".into(),
            source: Some(source),
        };
        let body = answer.body.map_err(unreadable)?;
        // A 2xx whose body is not a GetConnection answer: an answer, but not one to act on —
        // as the SDK reports it (an unhandled error with the status), not retried.
        parse_connection(&body).map_err(|source| Error::Delivery {
            connection_id: target.connection_id.clone(),
            status: Some(answer.status.as_u16()),
            retryable: false,
            source,
        })
    }

    async fn delete(&self, target: &Target) -> Result<()> {
        self.call(Method::DELETE, target, Bytes::new())
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_as_the_sdk_encodes_labels() {
        assert_eq!(encode_id("L0SM9cOFvHcCIhw="), "L0SM9cOFvHcCIhw%3D");
        assert_eq!(encode_id("ab+cd=="), "ab%2Bcd%3D%3D");
        assert_eq!(encode_id("per%cent="), "per%25cent%3D");
        assert_eq!(encode_id("a-b.c_d~e/f é"), "a-b.c_d~e%2Ff%20%C3%A9");
    }

    #[test]
    fn a_get_connection_answer_is_parsed_and_garbage_is_an_error() {
        let info = parse_connection(
            br#"{"connectedAt":"2026-11-26T10:00:00.000Z","identity":{"sourceIp":"203.0.113.7","userAgent":"ua"},"lastActiveAt":"2026-11-26T10:05:00Z"}"#,
        )
        .unwrap();
        let secs = |t: Option<SystemTime>| {
            t.unwrap()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        assert_eq!(secs(info.connected_at), 1_795_687_200);
        assert_eq!(secs(info.last_active_at), 1_795_687_500);
        assert_eq!(info.source_ip.as_deref(), Some("203.0.113.7"));
        assert!(parse_connection(b"{}").unwrap().connected_at.is_none());
        assert!(parse_connection(b"not json").is_err());
        assert!(parse_connection(br#"{"connectedAt":"yesterday"}"#).is_err());
    }
}
