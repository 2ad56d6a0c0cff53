//! # stateless-ws: stateless WebSockets on AWS
//!
//! API Gateway WebSocket APIs hold the sockets; your Lambda handlers run, update a routing table
//! in DynamoDB, and exit; any code — a handler, or a backend service that never saw a WebSocket —
//! pushes to a client by looking it up in the table and POSTing to the API Gateway Management API.
//! This crate is the typed, tested core of that design:
//!
//! - [`WebSocketEvent`] parses the `$connect` / `$disconnect` / message events a Lambda receives,
//!   with errors that name the bad field ([`event`]);
//! - [`ConnectionId`], [`RoomId`], [`UserId`] validate identifiers once ([`ids`]),
//!   and a [`Membership`] is one row of the routing table;
//! - [`ConnectionStore`](store::ConnectionStore) is the routing table, with an
//!   [`InMemoryStore`](store::InMemoryStore) and (feature `dynamodb`) a
//!   `DynamoDbStore` in the table layout shared with the Python version of this design ([`store`]);
//! - [`Broadcaster`](broadcast::Broadcaster) fans a [`Payload`](broadcast::Payload) out over a
//!   [`ConnectionSender`](broadcast::ConnectionSender) — `ApiGatewaySender` (the SDK) or the
//!   lean `SigV4Sender` on the real management API (feature `apigw`), or the in-memory
//!   [`RecordingSender`](broadcast::RecordingSender) — with bounded, throttle-aware concurrency,
//!   retries, stale-connection cleanup and a per-connection report ([`broadcast`]);
//! - `lambda` (feature `lambda`) is the glue to `lambda_runtime`: write
//!   `async fn(WebSocketEvent, Context) -> Result<RouteResponse>`, get parsing, error-to-status
//!   mapping, tracing spans and the deadline;
//! - [`FanoutPlanner`](queue::FanoutPlanner) hands rooms that outgrow one invocation to queue
//!   workers: jobs of at most 500 targets on an [`InMemoryQueue`](queue::InMemoryQueue) or
//!   (feature `sqs`) an SQS queue, delivered by [`FanoutWorker`](queue::FanoutWorker)s at least
//!   once per job, and [`RoomDispatch`](queue::RoomDispatch) sends a room in-line or through
//!   the queue by its size ([`queue`]);
//! - [`Presence`](presence::Presence) announces who joined and who left a room (one member per
//!   user, however many tabs), including connections removed by a broadcast's Gone cleanup,
//!   and answers the member list ([`presence`]);
//! - [`RoomPolicy`](policy::RoomPolicy) decides who may enter which room — public rooms by
//!   pattern, per-user rooms, rooms listed in a claim, and short-lived signed grants issued by
//!   the application's backend ([`policy`]).
//!
//! Its companion crate [`stateless-ws-local`](https://docs.rs/stateless-ws-local) runs all of it on
//! one machine: a local API Gateway WebSocket endpoint with the management API, for development
//! and tests, and a tool serving a SAM template's WebSocket API in front of your real functions.
//!
//! The README's "Your own Lambda" is the complete handler; `examples/chat` a complete application.
//!
//! ## Quickstart
//!
//! ```
//! use std::sync::Arc;
//! use stateless_ws::store::{ConnectionStore, ConnectionStoreExt, InMemoryStore};
//! use stateless_ws::{Membership, RoomId, UserId, WebSocketEvent};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // Chosen once at start-up: `DynamoDbStore::from_env_with(&sdk_config)?` in a Lambda.
//! let store: Arc<dyn ConnectionStore> = Arc::new(InMemoryStore::new());
//!
//! // $connect: register the connection in its room, with the user from the authorizer.
//! let event: WebSocketEvent = r#"{"requestContext": {"eventType": "CONNECT",
//!     "connectionId": "L0SM9cOFvHcCIhw=", "routeKey": "$connect",
//!     "domainName": "abc.execute-api.eu-west-1.amazonaws.com", "stage": "prod",
//!     "authorizer": {"principalId": "alice"}},
//!     "queryStringParameters": {"room": "general"}}"#.parse()?;
//! let WebSocketEvent::Connect(connect) = event else { unreachable!() };
//! let room = RoomId::new(connect.query("room").unwrap_or("general"))?;
//! store.join(&Membership::for_connect(&connect, room.clone())?).await?;
//!
//! assert_eq!(store.room_connections(&room).await?.len(), 1);
//! assert_eq!(store.user_connections(&UserId::new("alice")?).await?.len(), 1);
//!
//! // $disconnect: every room of the connection, idempotent.
//! store.disconnect(connect.connection_id()).await?;
//! assert!(store.room_connections(&room).await?.is_empty());
//! # Ok::<(), stateless_ws::Error>(())
//! # }).unwrap();
//! ```
//!
//! ## Features
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `dynamodb` | yes | `store::DynamoDbStore`, `history::DynamoDbLog` (aws-sdk-dynamodb) |
//! | `apigw` | yes | `broadcast::ApiGatewaySender` on the management API (aws-sdk-apigatewaymanagement), and `broadcast::SigV4Sender`, the same calls signed with aws-sigv4 over one pooled hyper client |
//! | `lambda` | no | the `lambda` module (`lambda_runtime` 1.x) and conversions from and to `aws_lambda_events` 1.x |
//! | `conformance` | no | `conformance`: the store scenarios and `conformance::history`'s message-log scenarios, to check your own backend (not covered by semver) |
//! | `sqs` | no | `queue::SqsQueue`, queued fan-out on Amazon SQS (aws-sdk-sqs); with `lambda`, `lambda::sqs` for the SQS-triggered worker |
//! | `secretsmanager` | no | `policy::SignedGrants::from_env_with`: the room grant key from AWS Secrets Manager (aws-sdk-secretsmanager) |
//! | `jwt` | no | `jwt::JwtVerifier`: RS256/ES256/EdDSA tokens checked against an OIDC issuer's JWKS (Cognito, Auth0, Entra ID); with `lambda`, `jwt::authorize` for the `$connect` authorizer (jsonwebtoken on aws-lc-rs) |
//! | `test-util` | no | `test_util::InstrumentedStore`: wraps any store to count its calls and inject faults, latency and smaller pages in your tests |
//!
//! The in-memory store, the broadcaster with its in-memory sender, events and identifiers are
//! always compiled: `--no-default-features` builds without any AWS SDK crate. Every environment
//! variable the crate reads is listed in [`env`](mod@env).
//!
//! ## Errors
//!
//! Everything returns [`Result`] with the one [`Error`] enum. Variants say what the caller can
//! act on ([`Error::InvalidEvent`] names the field, [`Error::Throttled`] is retryable,
//! [`Error::Unprocessed`] lists what was not written); the lower-level cause stays reachable
//! through [`std::error::Error::source`]. Nothing in this crate panics on input.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod backoff;
pub mod broadcast;
pub mod clock;
pub mod env;
pub mod error;
pub mod event;
pub mod history;
#[cfg(any(feature = "jwt", feature = "apigw"))]
mod http;
pub mod ids;
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub mod jwt;
#[cfg(feature = "lambda")]
#[cfg_attr(docsrs, doc(cfg(feature = "lambda")))]
pub mod lambda;
mod mac;
pub mod policy;
pub mod presence;
pub mod queue;
#[cfg(any(feature = "apigw", feature = "sqs"))]
mod sdk;
pub mod store;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;

#[cfg(any(test, feature = "conformance"))]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;

pub use error::{BoxError, Error, ErrorChain, Result};
pub use event::{
    Authorizer, ConnectEvent, DisconnectEvent, EventType, Identity, MessageEvent, RequestContext,
    RouteResponse, WebSocketEvent,
};
pub use ids::{ConnectionId, RoomId, UserId};
pub use store::Membership;

/// The AWS SDK's configuration loader, re-exported so that one `SdkConfig` can be built for every
/// client (`DynamoDbStore`, `ApiGatewaySender`) without adding `aws-config` yourself.
#[cfg(any(
    feature = "dynamodb",
    feature = "apigw",
    feature = "sqs",
    feature = "secretsmanager"
))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "dynamodb",
        feature = "apigw",
        feature = "sqs",
        feature = "secretsmanager"
    )))
)]
pub use aws_config;

// The README's Rust blocks compile and run as doctests (`cargo test --doc`), so it cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
