//! The broadcaster on the real `ApiGatewaySender` and SDK client, with the management API's
//! answers injected by aws-smithy-mocks: 410, 429, 5xx, 403, 413, and a mixture over 1,000
//! connections.
#![cfg(feature = "apigw")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::error::ErrorMetadata;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::{
    PostToConnectionError, PostToConnectionInput, PostToConnectionOutput,
};
use aws_sdk_apigatewaymanagement::types::error::{
    ForbiddenException, GoneException, LimitExceededException, PayloadTooLargeException,
};
use aws_smithy_mocks::{
    MockResponse, MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use stateless_ws::broadcast::{
    ApiGatewaySender, BroadcastConfig, Broadcaster, ConnectionSender, Payload, Target,
};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::{ConnectionId, Error, Membership, RoomId};

const ENDPOINT: &str = "https://abc123.execute-api.us-east-1.amazonaws.com/prod";

fn meta(code: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code(code)
        .message("injected")
        .build()
}

fn gone() -> PostToConnectionError {
    PostToConnectionError::GoneException(
        GoneException::builder().meta(meta("GoneException")).build(),
    )
}

fn throttled() -> PostToConnectionError {
    PostToConnectionError::LimitExceededException(
        LimitExceededException::builder()
            .meta(meta("LimitExceededException"))
            .build(),
    )
}

fn forbidden() -> PostToConnectionError {
    PostToConnectionError::ForbiddenException(
        ForbiddenException::builder()
            .meta(meta("ForbiddenException"))
            .build(),
    )
}

fn too_large() -> PostToConnectionError {
    PostToConnectionError::PayloadTooLargeException(
        PayloadTooLargeException::builder()
            .meta(meta("PayloadTooLargeException"))
            .build(),
    )
}

fn http(status: u16) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from("{\"message\":\"boom\"}"),
    )
}

fn ok() -> PostToConnectionOutput {
    PostToConnectionOutput::builder().build()
}

/// The real sender on a mocked SDK client (SDK retries off, as `ApiGatewaySender::new` does).
fn sender(rules: &[&Rule]) -> ApiGatewaySender {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let config = aws_sdk_apigatewaymanagement::Config::builder()
        .with_test_defaults_v2()
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .retry_config(RetryConfig::disabled());
    ApiGatewaySender::from_builder(config)
        .with_default_endpoint(ENDPOINT)
        .unwrap()
}

fn for_id(id: &'static str) -> impl Fn(&PostToConnectionInput) -> bool + Send + Sync {
    move |r| r.connection_id() == Some(id)
}

/// Short backoffs, so retries do not slow the suite down.
fn fast_config() -> BroadcastConfig {
    let mut config = crate::common::without_connect_grace();
    config.initial_backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(5);
    config
}

async fn room_with(store: &InMemoryStore, room: &RoomId, ids: &[&str]) {
    for id in ids {
        store
            .join(&Membership::new(
                ConnectionId::new(*id).unwrap(),
                room.clone(),
            ))
            .await
            .unwrap();
    }
}

fn id(s: &str) -> ConnectionId {
    ConnectionId::new(s).unwrap()
}

#[tokio::test]
async fn sender_maps_each_management_api_error() {
    let rules = [
        mock!(Client::post_to_connection)
            .match_requests(for_id("gone"))
            .then_error(gone),
        mock!(Client::post_to_connection)
            .match_requests(for_id("slow"))
            .then_error(throttled),
        mock!(Client::post_to_connection)
            .match_requests(for_id("denied"))
            .then_error(forbidden),
        mock!(Client::post_to_connection)
            .match_requests(for_id("big"))
            .then_error(too_large),
        mock!(Client::post_to_connection)
            .match_requests(for_id("broken"))
            .then_http_response(|| http(503)),
        mock!(Client::post_to_connection)
            .match_requests(for_id("bad"))
            .then_http_response(|| http(400)),
        mock!(Client::post_to_connection)
            .match_requests(for_id("bare410"))
            .then_http_response(|| http(410)),
    ];
    let sender = sender(&rules.iter().collect::<Vec<_>>());
    let payload = Payload::text("hi").unwrap();
    let post = |s: &'static str| {
        let sender = sender.clone();
        let payload = payload.clone();
        async move {
            sender
                .post(&Target::new(id(s)), &payload)
                .await
                .unwrap_err()
        }
    };
    assert!(matches!(post("gone").await, Error::Gone { connection_id } if connection_id == "gone"));
    assert!(matches!(post("slow").await, Error::Throttled { .. }));
    let denied = post("denied").await;
    assert!(
        matches!(&denied, Error::Forbidden { endpoint, .. } if endpoint == ENDPOINT),
        "{denied:?}"
    );
    assert!(
        denied.to_string().contains("stage"),
        "403 message points at the usual cause: {denied}"
    );
    assert!(matches!(post("big").await, Error::PayloadTooLarge { .. }));
    let broken = post("broken").await;
    assert!(
        matches!(
            broken,
            Error::Delivery {
                status: Some(503),
                retryable: true,
                ..
            }
        ),
        "{broken:?}"
    );
    let bad = post("bad").await;
    assert!(
        matches!(
            bad,
            Error::Delivery {
                status: Some(400),
                retryable: false,
                ..
            }
        ),
        "{bad:?}"
    );
    assert!(
        matches!(post("bare410").await, Error::Gone { .. }),
        "a 410 without x-amzn-ErrorType is still gone"
    );
}

#[tokio::test]
async fn gone_connections_are_reported_and_removed_from_every_room() {
    let store = Arc::new(InMemoryStore::new());
    let (lobby, games) = (RoomId::new("lobby").unwrap(), RoomId::new("games").unwrap());
    room_with(&store, &lobby, &["alive", "dead"]).await;
    room_with(&store, &games, &["dead"]).await;
    let rules = [
        mock!(Client::post_to_connection)
            .match_requests(for_id("dead"))
            .then_error(gone),
        mock!(Client::post_to_connection).then_output(ok),
    ];
    let b = Broadcaster::new(store.clone(), Arc::new(sender(&[&rules[0], &rules[1]])))
        .with_config(crate::common::without_connect_grace());
    let report = b
        .broadcast(&lobby, &Payload::text("x").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(report.delivered, [id("alive")]);
    assert_eq!(report.gone, [id("dead")]);
    assert_eq!(report.removed.len(), 2, "removed from lobby and games");
    assert!(store.room_connections(&games).await.unwrap().is_empty());
    assert!(report.is_success());
}

#[tokio::test]
async fn one_connections_429s_are_retried_without_lowering_concurrency() {
    let store = Arc::new(InMemoryStore::new());
    let room = RoomId::new("r").unwrap();
    room_with(&store, &room, &["a"]).await;
    let rule = mock!(Client::post_to_connection)
        .sequence()
        .error(throttled)
        .error(throttled)
        .output(ok)
        .build();
    let mut config = fast_config();
    config.concurrency = 8;
    config.connection_throttle_retries = 2;
    let b = Broadcaster::new(store, Arc::new(sender(&[&rule]))).with_config(config);
    let report = b
        .broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(report.delivered, [id("a")]);
    assert_eq!(report.retries, 2);
    assert_eq!(rule.num_calls(), 3);
    assert_eq!(
        report.final_concurrency, 8,
        "one connection's 429s are its own (a full client buffer), not the account's"
    );
}

#[tokio::test]
async fn server_error_then_success_is_retried() {
    let store = Arc::new(InMemoryStore::new());
    let room = RoomId::new("r").unwrap();
    room_with(&store, &room, &["a"]).await;
    let rule = mock!(Client::post_to_connection)
        .sequence()
        .http_status(500, None)
        .http_status(502, None)
        .output(ok)
        .build();
    let b = Broadcaster::new(store, Arc::new(sender(&[&rule]))).with_config(fast_config());
    let report = b
        .broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(report.delivered, [id("a")]);
    assert_eq!(report.retries, 2);
    assert_eq!(
        report.final_concurrency, 64,
        "5xx does not lower concurrency"
    );
}

#[tokio::test]
async fn server_errors_until_attempts_are_exhausted_fail_with_the_last_error() {
    let store = Arc::new(InMemoryStore::new());
    let room = RoomId::new("r").unwrap();
    room_with(&store, &room, &["a", "b"]).await;
    let failing = mock!(Client::post_to_connection)
        .match_requests(for_id("a"))
        .then_http_response(|| http(500));
    let fine = mock!(Client::post_to_connection).then_output(ok);
    let mut config = fast_config();
    config.retries = 2;
    let b =
        Broadcaster::new(store.clone(), Arc::new(sender(&[&failing, &fine]))).with_config(config);
    let report = b
        .broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(
        report.delivered,
        [id("b")],
        "one failure never stops the others"
    );
    assert_eq!(report.failed.len(), 1);
    let failure = &report.failed[0];
    assert_eq!(failure.connection_id, "a");
    assert_eq!(failure.attempts, 3, "1 attempt + 2 retries");
    assert!(matches!(
        failure.error,
        Error::Delivery {
            status: Some(500),
            ..
        }
    ));
    assert_eq!(failing.num_calls(), 3);
    assert_eq!(
        store.room_connections(&room).await.unwrap().len(),
        2,
        "failed is not gone: kept"
    );

    // retries = 0 disables retries.
    let mut config = fast_config();
    config.retries = 0;
    let b = b.with_config(config);
    let report = b
        .broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(report.failed[0].attempts, 1);
    assert_eq!(report.retries, 0);
}

#[tokio::test]
async fn forbidden_stops_the_broadcast_early() {
    let store = Arc::new(InMemoryStore::new());
    let room = RoomId::new("r").unwrap();
    let ids: Vec<String> = (0..500).map(|i| format!("c{i}")).collect();
    for i in &ids {
        store
            .join(&Membership::new(id(i), room.clone()))
            .await
            .unwrap();
    }
    let rule = mock!(Client::post_to_connection).then_error(forbidden);
    let mut config = fast_config();
    config.concurrency = 4;
    let b = Broadcaster::new(store, Arc::new(sender(&[&rule]))).with_config(config);
    let report = b
        .broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .unwrap();
    assert!(report.stopped_early);
    assert!(report.config_error().is_some());
    assert!(
        rule.num_calls() <= 4,
        "at most the posts already in flight: {} of 500 were sent",
        rule.num_calls()
    );
    assert_eq!(report.failed.len(), rule.num_calls());
    assert_eq!(report.targets(), 500, "every target is in a bucket");
    assert_eq!(report.not_attempted.len(), 500 - rule.num_calls());
    assert!(
        report.failed.iter().all(|f| f.attempts == 1),
        "403 is never retried"
    );
}

#[tokio::test]
async fn payload_too_large_is_refused_before_any_send_and_413_is_not_retried() {
    assert!(matches!(
        Payload::text("x".repeat(131_073)),
        Err(Error::PayloadTooLarge {
            size: 131_073,
            limit: 131_072
        })
    ));
    let store = Arc::new(InMemoryStore::new());
    let room = RoomId::new("r").unwrap();
    room_with(&store, &room, &["a"]).await;
    let rule = mock!(Client::post_to_connection).then_error(too_large);
    let b = Broadcaster::new(store, Arc::new(sender(&[&rule]))).with_config(fast_config());
    let report = b
        .broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .unwrap();
    assert!(matches!(
        report.failed[0].error,
        Error::PayloadTooLarge { .. }
    ));
    assert_eq!(rule.num_calls(), 1);
}

/// 1,000 connections: gone, throttled-then-ok, 5xx-then-ok, 5xx forever, 403-free, and fine.
/// Every connection is accounted for exactly once, and the store keeps no gone connection.
#[tokio::test]
async fn a_mixture_across_1000_connections_is_fully_accounted_for() {
    let store = Arc::new(InMemoryStore::new());
    let (room, other) = (RoomId::new("big").unwrap(), RoomId::new("other").unwrap());
    let ids: Vec<ConnectionId> = (0..1000).map(|i| id(&format!("conn-{i}="))).collect();
    for (i, c) in ids.iter().enumerate() {
        store
            .join(&Membership::new(c.clone(), room.clone()))
            .await
            .unwrap();
        if i % 2 == 0 {
            store
                .join(&Membership::new(c.clone(), other.clone()))
                .await
                .unwrap();
        }
    }
    // What each connection does, by index modulo 10.
    let kind = |conn: &str| -> usize {
        conn.trim_start_matches("conn-")
            .trim_end_matches('=')
            .parse::<usize>()
            .unwrap()
            % 10
    };
    let calls: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let seen = Arc::clone(&calls);
    let rule = mock!(Client::post_to_connection).then_compute_response(move |req| {
        let conn = req.connection_id().unwrap().to_owned();
        let n = {
            let mut calls = seen.lock().unwrap();
            let n = calls.entry(conn.clone()).or_default();
            *n += 1;
            *n
        };
        match (kind(&conn), n) {
            (0 | 1, _) => MockResponse::Error(gone()),
            (2, 1) => MockResponse::Error(throttled()),
            (3, 1 | 2) => MockResponse::Http(http(503)),
            (4, _) => MockResponse::Http(http(500)),
            _ => MockResponse::Output(ok()),
        }
    });
    let mut config = fast_config();
    config.retries = 3;
    config.concurrency = 32;
    let b = Broadcaster::new(store.clone(), Arc::new(sender(&[&rule]))).with_config(config);
    let report = b
        .broadcast(&room, &Payload::text("mixed").unwrap(), None)
        .await
        .unwrap();

    let mut all: Vec<&ConnectionId> = report
        .delivered
        .iter()
        .chain(&report.gone)
        .chain(report.failed.iter().map(|f| &f.connection_id))
        .chain(&report.not_attempted)
        .collect();
    assert_eq!(all.len(), 1000, "{report}");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 1000, "no connection is in two buckets");
    assert_eq!(report.gone.len(), 200);
    assert_eq!(report.failed.len(), 100);
    assert!(report.failed.iter().all(|f| f.attempts == 4));
    assert_eq!(report.delivered.len(), 700);
    assert!(report.not_attempted.is_empty());
    assert_eq!(
        report.retries,
        100 + 200 + 300,
        "kind 2: 1 retry, kind 3: 2, kind 4: 3"
    );
    assert_eq!(
        report.removed.len(),
        200 + 100,
        "gone connections left both rooms"
    );

    let gone: HashSet<&ConnectionId> = report.gone.iter().collect();
    for listing in [
        store.room_connections(&room).await.unwrap(),
        store.room_connections(&other).await.unwrap(),
    ] {
        assert!(
            listing.iter().all(|c| !gone.contains(&c.connection_id)),
            "store holds no gone connection"
        );
    }
    assert_eq!(store.room_connections(&room).await.unwrap().len(), 800);
    let calls = calls.lock().unwrap();
    assert!(
        calls.values().all(|n| *n <= 4),
        "never more than 1 + retries posts"
    );
}

#[tokio::test]
async fn deadline_reports_the_rest_as_not_attempted() {
    let store = Arc::new(InMemoryStore::new());
    let room = RoomId::new("r").unwrap();
    for i in 0..200 {
        store
            .join(&Membership::new(id(&format!("c{i}")), room.clone()))
            .await
            .unwrap();
    }
    let rule = mock!(Client::post_to_connection).then_output(ok);
    let sender = Arc::new(sender(&[&rule]));
    // A deadline already passed: nothing is attempted, everything is accounted for.
    let b = Broadcaster::new(store, sender).with_deadline(std::time::Instant::now());
    let report = b
        .broadcast(&room, &Payload::text("x").unwrap(), None)
        .await
        .unwrap();
    // The first read is small (`first_page`, 100): those are not attempted, and the rest of the
    // room, not read, is where to resume from.
    assert_eq!(report.not_attempted.len(), 100);
    assert!(
        report.unread_from.is_some(),
        "the unread rest is accounted for"
    );
    assert_eq!(report.attempted(), 0);
    assert_eq!(rule.num_calls(), 0);
    assert!(!report.is_success());
}

#[tokio::test]
async fn a_failing_cleanup_is_reported_not_hidden() {
    // The store is a DynamoDbStore whose BatchWriteItem fails: a real code path, faults injected
    // at the SDK boundary.
    use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
    use aws_sdk_dynamodb::operation::query::QueryOutput;
    use aws_sdk_dynamodb::types::AttributeValue;
    let record = |conn: &str| {
        [
            ("connectionId".to_owned(), AttributeValue::S(conn.into())),
            ("roomId".to_owned(), AttributeValue::S("room#r".into())),
        ]
        .into_iter()
        .collect::<HashMap<_, _>>()
    };
    let query = mock!(aws_sdk_dynamodb::Client::query)
        .then_output(move || QueryOutput::builder().items(record("dead")).build());
    let batch = mock!(aws_sdk_dynamodb::Client::batch_write_item)
        .then_error(|| BatchWriteItemError::unhandled("injected: DynamoDB unavailable"));
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    interceptor = interceptor.with_rule(&query).with_rule(&batch);
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .with_test_defaults_v2()
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build(),
    );
    let store = stateless_ws::store::DynamoDbStore::builder()
        .client(dynamo)
        .table_name("ws-connections")
        .build()
        .unwrap();
    let gone_rule = mock!(Client::post_to_connection).then_error(gone);
    let b = Broadcaster::new(Arc::new(store), Arc::new(sender(&[&gone_rule])));
    let report = b
        .broadcast(
            &RoomId::new("r").unwrap(),
            &Payload::text("x").unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(report.gone, [id("dead")]);
    assert!(report.cleanup_error.is_some(), "{report}");
    assert!(!report.is_success());
    assert!(report.to_string().contains("cleanup failed"));
}
