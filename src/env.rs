//! Every environment variable this crate reads, each name defined once.
//!
//! Only constructors named `from_env` or `from_env_with` read them; nothing else in the crate
//! looks at the environment. An empty or all-whitespace value counts as unset; a value that is not valid
//! UTF-8, or does not parse, is an [`Error::Config`] naming the variable.
//!
//! | variable | read by | meaning | default |
//! |---|---|---|---|
//! | `CONNECTIONS_TABLE` | `DynamoDbStore::from_env`, `from_env_with`, `DynamoDbStoreBuilder::from_env_vars` | the routing table's name | required |
//! | `CONNECTIONS_ROOM_INDEX` | the same | the room GSI's name | `roomId-index` |
//! | `CONNECTIONS_USER_INDEX` | the same | the user GSI's name | `userId-index` |
//! | `CONNECTION_TTL_SECONDS` | the same | how long a record lives | `7200` (2 h) |
//! | `MESSAGES_TABLE` | `DynamoDbLog::from_env`, `from_env_with`, `DynamoDbLogBuilder::from_env_vars` | the message log's table (history per room; not the routing table) | required |
//! | `MESSAGES_TTL_SECONDS` | the same | how long a logged message is kept (`LogConfig::ttl`) | `86400` (24 h) |
//! | `MESSAGES_MAX_PER_ROOM` | the same | the newest messages kept per room (`LogConfig::max_messages`) | `10000` |
//! | `APIGW_MANAGEMENT_URL` | `ApiGatewaySender::from_env` | the default management endpoint, `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}` | required by `from_env` |
//! | `FANOUT_QUEUE_URL` | `SqsQueue::from_env_with` | the URL of the SQS queue of queued fan-out jobs | required by `from_env_with` |
//! | `FANOUT_JOB_KEY` | `queue::JobKey::from_env` | the key (≥ 32 bytes, e.g. `openssl rand -hex 32`) of the HMAC-SHA256 the planner writes into each fan-out job and workers check; the same value for planner and workers | unset: jobs unsigned, workers check room membership instead |
//! | `FANOUT_QUEUE_MAX_MESSAGE_BYTES` | `SqsQueue::from_env_with` | the queue's `MaximumMessageSize`: jobs are packed to fit it (1,024–1,048,576) | `262144` (256 KiB) |
//! | `ROOM_GRANT_KEY` | `policy::SignedGrants::from_env` | the key (≥ 32 bytes, e.g. `openssl rand -hex 32`) of the HMAC-SHA256 of room grants; the same value in the backend that issues them | unset: no grant rule |
//! | `ROOM_GRANT_PREVIOUS_KEY` | the same | during a key rotation, the previous key, still accepted | unset |
//! | `ROOM_GRANT_KEY_SECRET_ARN` | `policy::SignedGrants::from_env_with` (feature `secretsmanager`) | the Secrets Manager secret (ARN or name) holding the room grant key as text, instead of `ROOM_GRANT_KEY` | unset |
//! | `JWT_ISSUER` | `jwt::JwtConfig::from_env` | the token issuer (`iss`), e.g. `https://cognito-idp.{region}.amazonaws.com/{userPoolId}` | required |
//! | `JWT_AUDIENCE` | the same | accepted audiences (`aud`; a Cognito app client id), comma-separated | required |
//! | `JWT_JWKS_URI` | the same | the JWKS URL | unset: OIDC discovery, `{issuer}/.well-known/openid-configuration` |
//! | `JWT_CLAIMS` | the same | claims copied into the authorizer context, comma-separated | none |
//! | `JWT_TOKEN_SOURCE` | the same | where the token is read, comma-separated `query:NAME` / `header:NAME`, first found wins | `query:token,header:Authorization` |
//! | `JWT_ACCEPT_CLIENT_ID` | the same | `true`: a token without `aud` is accepted when its `client_id` is an audience (Cognito access tokens) | `false` |
//!
//! `SqsQueue` has no `from_env`: it is made from the `SdkConfig` the process already loaded
//! for its store and sender (`SqsQueue::from_env_with(&config)`).
//!
//! Region and credentials come from the AWS SDK's own chain (`AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, ..., `AWS_ENDPOINT_URL` for a local endpoint), read by `aws_config`.

use crate::error::{Error, Result};

/// The routing table's name (required by `DynamoDbStore::from_env`).
pub const CONNECTIONS_TABLE: &str = "CONNECTIONS_TABLE";
/// The room GSI's name (default `roomId-index`).
pub const CONNECTIONS_ROOM_INDEX: &str = "CONNECTIONS_ROOM_INDEX";
/// The user GSI's name (default `userId-index`).
pub const CONNECTIONS_USER_INDEX: &str = "CONNECTIONS_USER_INDEX";
/// How long a record lives, in seconds (default 7200).
pub const CONNECTION_TTL_SECONDS: &str = "CONNECTION_TTL_SECONDS";
/// The message log's table (required by `history::DynamoDbLog::from_env`): one item per logged
/// message, apart from the routing table.
pub const MESSAGES_TABLE: &str = "MESSAGES_TABLE";
/// How long a logged message is kept, in seconds (default 86,400: 24 h).
pub const MESSAGES_TTL_SECONDS: &str = "MESSAGES_TTL_SECONDS";
/// The newest messages kept per room by the message log (default 10,000).
pub const MESSAGES_MAX_PER_ROOM: &str = "MESSAGES_MAX_PER_ROOM";
/// The default management endpoint (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`).
pub const APIGW_MANAGEMENT_URL: &str = "APIGW_MANAGEMENT_URL";

/// The URL of the SQS queue of queued fan-out jobs (required by `SqsQueue::from_env_with`).
pub const FANOUT_QUEUE_URL: &str = "FANOUT_QUEUE_URL";
/// The key of fan-out jobs' HMAC-SHA256 (read by `queue::JobKey::from_env`; unset: unsigned).
pub const FANOUT_JOB_KEY: &str = "FANOUT_JOB_KEY";
/// The fan-out queue's `MaximumMessageSize` in bytes (default 262,144): jobs are packed to fit it.
pub const FANOUT_QUEUE_MAX_MESSAGE_BYTES: &str = "FANOUT_QUEUE_MAX_MESSAGE_BYTES";

/// The key of room grants' HMAC-SHA256 (read by `policy::SignedGrants::from_env`).
pub const ROOM_GRANT_KEY: &str = "ROOM_GRANT_KEY";
/// The previous room grant key, still accepted during a rotation.
pub const ROOM_GRANT_PREVIOUS_KEY: &str = "ROOM_GRANT_PREVIOUS_KEY";

/// The Secrets Manager secret holding the room grant key (read by
/// `policy::SignedGrants::from_env_with`, feature `secretsmanager`).
pub const ROOM_GRANT_KEY_SECRET_ARN: &str = "ROOM_GRANT_KEY_SECRET_ARN";
/// The token issuer the JWT verifier accepts (`iss`; required by `jwt::JwtConfig::from_env`).
pub const JWT_ISSUER: &str = "JWT_ISSUER";
/// The audiences the JWT verifier accepts (`aud`), comma-separated (required).
pub const JWT_AUDIENCE: &str = "JWT_AUDIENCE";
/// The issuer's JWKS URL (default: found by OIDC discovery under the issuer).
pub const JWT_JWKS_URI: &str = "JWT_JWKS_URI";
/// The claims copied into the authorizer context, comma-separated (default: none).
pub const JWT_CLAIMS: &str = "JWT_CLAIMS";
/// Where the token is read: `query:NAME` / `header:NAME`, comma-separated, first found wins
/// (default `query:token,header:Authorization`).
pub const JWT_TOKEN_SOURCE: &str = "JWT_TOKEN_SOURCE";
/// `true`: accept a token without `aud` whose `client_id` is an audience (Cognito access tokens).
pub const JWT_ACCEPT_CLIENT_ID: &str = "JWT_ACCEPT_CLIENT_ID";

/// The value of variable `name`: `None` when unset, empty or all whitespace.
///
/// # Errors
///
/// [`Error::Config`] when the value is not valid UTF-8.
pub(crate) fn var(name: &str) -> Result<Option<String>> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v.trim().to_owned())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::config(format!(
            "environment variable {name} is not valid UTF-8"
        ))),
    }
}

/// The value of variable `name` as a whole number: `None` when unset (as [`var`]).
///
/// # Errors
///
/// [`Error::Config`] naming the variable, `what` it must be and the value, when it is not a
/// whole number (or not valid UTF-8).
#[cfg(feature = "dynamodb")]
pub(crate) fn whole_number(name: &str, what: &str) -> Result<Option<u64>> {
    var(name)?
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                Error::config(format!(
                    "environment variable {name} must be {what}, got {v:?}"
                ))
            })
        })
        .transpose()
}
