//! Faults MiniStack cannot produce, injected at the AWS SDK boundary with aws-smithy-mocks:
//! `UnprocessedItems`, throttling, validation and server errors.
#![cfg(feature = "dynamodb")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::{QueryError, QueryOutput};
use aws_sdk_dynamodb::types::error::{
    ProvisionedThroughputExceededException, ResourceNotFoundException,
};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use stateless_ws::store::{ConnectionStore, DynamoDbStore};
use stateless_ws::{ConnectionId, Error, Membership, RoomId};

const TABLE: &str = "ws-connections";

fn store(client: Client, max_batch_attempts: u32) -> DynamoDbStore {
    DynamoDbStore::builder()
        .client(client)
        .table_name(TABLE)
        .max_batch_attempts(max_batch_attempts)
        .build()
        .unwrap()
}

fn item(conn: &str, room: &str) -> HashMap<String, AttributeValue> {
    [
        ("connectionId", AttributeValue::S(conn.into())),
        ("roomId", AttributeValue::S(format!("room#{room}"))),
        ("ttl", AttributeValue::N("99999999999".into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn delete_of(conn: &str, room: &str) -> WriteRequest {
    WriteRequest::builder()
        .delete_request(
            DeleteRequest::builder()
                .key("connectionId", AttributeValue::S(conn.into()))
                .key("roomId", AttributeValue::S(format!("room#{room}")))
                .build()
                .unwrap(),
        )
        .build()
}

/// Query answers: each connection `cN` is in rooms `a` and `b`.
fn query_rule() -> Rule {
    mock!(Client::query).then_compute_output(|req| {
        let conn = req.expression_attribute_values().unwrap()[":k"]
            .as_s()
            .unwrap()
            .clone();
        QueryOutput::builder()
            .items(item(&conn, "a"))
            .items(item(&conn, "b"))
            .build()
    })
}

fn meta(code: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code(code)
        .message("injected")
        .build()
}

fn conns(n: usize) -> Vec<ConnectionId> {
    (0..n)
        .map(|i| ConnectionId::new(format!("c{i}")).unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn unprocessed_items_are_retried_until_written() {
    let query = query_rule();
    // First call: 2 of the 4 deletes come back unprocessed; second call: 1; third: done.
    let batch = mock!(Client::batch_write_item)
        .sequence()
        .output(|| {
            BatchWriteItemOutput::builder()
                .unprocessed_items(TABLE, vec![delete_of("c0", "a"), delete_of("c1", "b")])
                .build()
        })
        .output(|| {
            BatchWriteItemOutput::builder()
                .unprocessed_items(TABLE, vec![delete_of("c1", "b")])
                .build()
        })
        .output(|| BatchWriteItemOutput::builder().build())
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&query, &batch]);
    let removed = store(client, 8)
        .remove_connections(&conns(2))
        .await
        .unwrap();
    assert_eq!(removed.len(), 4);
    assert_eq!(
        batch.num_calls(),
        3,
        "retried until nothing was unprocessed"
    );
}

#[tokio::test(start_paused = true)]
async fn unprocessed_items_that_never_clear_are_reported_not_dropped() {
    let query = query_rule();
    let batch = mock!(Client::batch_write_item).then_compute_output(|req| {
        // Everything sent comes back unprocessed.
        let sent = req.request_items().unwrap()[TABLE].clone();
        BatchWriteItemOutput::builder()
            .unprocessed_items(TABLE, sent)
            .build()
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&query, &batch]);
    let err = store(client, 3)
        .remove_connections(&conns(1))
        .await
        .unwrap_err();
    match &err {
        Error::Unprocessed {
            unprocessed,
            attempts,
            ..
        } => {
            assert_eq!(*attempts, 3);
            let mut keys = unprocessed.clone();
            keys.sort();
            assert_eq!(
                keys,
                [
                    ("c0".into(), "room#a".into()),
                    ("c0".into(), "room#b".into())
                ]
            );
        }
        other => panic!("expected Unprocessed, got {other:?}"),
    }
    assert!(err.is_retryable());
    assert_eq!(batch.num_calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn more_than_25_deletes_are_sent_in_chunks_of_25() {
    let query = query_rule();
    let batch = mock!(Client::batch_write_item)
        .match_requests(|req| req.request_items().unwrap()[TABLE].len() <= 25)
        .then_output(|| BatchWriteItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&query, &batch]);
    // 30 connections × 2 rooms = 60 deletes = 25 + 25 + 10.
    let removed = store(client, 8)
        .remove_connections(&conns(30))
        .await
        .unwrap();
    assert_eq!(removed.len(), 60);
    assert_eq!(batch.num_calls(), 3);
}

#[tokio::test]
async fn throttling_maps_to_throttled() {
    let rule = mock!(Client::query).then_error(|| {
        QueryError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("slow down")
                // The SDK's deserializer fills the error code in; built by hand, we must.
                .meta(meta("ProvisionedThroughputExceededException"))
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule], |c| c
        .retry_config(RetryConfig::disabled()));
    let err = store(client, 8)
        .room_connections(&RoomId::new("r").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Throttled { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        "DynamoDbStore(ws-connections): request throttled"
    );
}

#[tokio::test]
async fn resource_not_found_maps_to_not_found() {
    let rule = mock!(Client::put_item).then_error(|| {
        PutItemError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .meta(meta("ResourceNotFoundException"))
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
    let c = Membership::new(ConnectionId::new("c").unwrap(), RoomId::new("r").unwrap());
    let err = store(client, 8).join(&c).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn server_errors_map_to_store_with_the_cause_kept() {
    let rule = mock!(Client::query)
        .sequence()
        .http_status(500, Some(r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"boom"}"#.into()))
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule], |c| c
        .retry_config(RetryConfig::disabled()));
    let err = store(client, 8)
        .room_connections(&RoomId::new("r").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    let chain = format!(
        "{}",
        aws_sdk_dynamodb::error::DisplayErrorContext(std::error::Error::source(&err).unwrap())
    );
    assert!(chain.contains("InternalServerError"), "{chain}");
}

#[tokio::test]
async fn every_query_page_is_followed() {
    // Three pages linked by LastEvaluatedKey; the store must ask for each.
    let page = |i: usize, next: Option<&str>| {
        let mut out = QueryOutput::builder().items(item(&format!("c{i}"), "r"));
        if let Some(next) = next {
            out = out.set_last_evaluated_key(Some(item(next, "r")));
        }
        out.build()
    };
    let first = mock!(Client::query)
        .match_requests(|r| r.exclusive_start_key().is_none())
        .then_output(move || page(0, Some("c0")));
    let second = mock!(Client::query)
        .match_requests(|r| {
            r.exclusive_start_key()
                .is_some_and(|k| k["connectionId"].as_s().unwrap() == "c0")
        })
        .then_output(move || page(1, Some("c1")));
    let third = mock!(Client::query)
        .match_requests(|r| {
            r.exclusive_start_key()
                .is_some_and(|k| k["connectionId"].as_s().unwrap() == "c1")
        })
        .then_output(move || page(2, None));
    let client = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::MatchAny,
        [&first, &second, &third]
    );
    let members = store(client, 8)
        .room_connections(&RoomId::new("r").unwrap())
        .await
        .unwrap();
    let mut ids: Vec<_> = members
        .iter()
        .map(|c| c.connection_id.to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["c0", "c1", "c2"]);
}

/// Issue 17, item 7: a store error's `Display` names the store only; `chain()` — what the
/// crate's logs print — carries the service's error code, here an `AccessDeniedException`.
#[tokio::test]
async fn access_denied_is_in_the_error_chain() {
    let rule = mock!(Client::query).then_error(|| {
        QueryError::generic(
            ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not authorized to perform: dynamodb:Query")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule], |c| c
        .retry_config(RetryConfig::disabled()));
    let err = store(client, 8)
        .connection_rooms(&ConnectionId::new("c0").unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "DynamoDbStore(ws-connections): store request failed"
    );
    let chain = err.chain().to_string();
    assert!(chain.contains("AccessDeniedException"), "{chain}");
}

fn log(client: Client, attempts: u32) -> stateless_ws::history::DynamoDbLog {
    stateless_ws::history::DynamoDbLog::builder()
        .client(client)
        .table_name("ws-messages")
        .max_append_attempts(attempts)
        .build()
        .unwrap()
}

#[tokio::test]
async fn log_throttling_maps_to_throttled_with_the_code_in_the_chain() {
    use stateless_ws::history::{MessageLog, Position, ReadLimits};
    let rule = mock!(Client::query).then_error(|| {
        QueryError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .meta(meta("ProvisionedThroughputExceededException"))
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule], |c| c
        .retry_config(RetryConfig::disabled()));
    let err = log(client, 20)
        .read(
            &RoomId::new("r").unwrap(),
            &Position::start(),
            ReadLimits::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Throttled { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        "DynamoDbLog(ws-messages): request throttled"
    );
    assert!(
        err.chain()
            .to_string()
            .contains("ProvisionedThroughputExceededException"),
        "{}",
        err.chain()
    );
}

#[tokio::test]
async fn log_appends_that_always_lose_the_race_give_up_with_a_clear_error() {
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use stateless_ws::history::{LogMessage, MessageLog};
    let query = mock!(Client::query).then_output(|| QueryOutput::builder().build());
    let put = mock!(Client::put_item).then_error(|| {
        PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .meta(meta("ConditionalCheckFailedException"))
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&query, &put], |c| c
        .retry_config(RetryConfig::disabled()));
    let log = log(client, 3);
    let err = log
        .append(
            &RoomId::new("r").unwrap(),
            LogMessage::new(serde_json::json!(1)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Throttled { .. }), "{err:?}");
    assert!(
        err.chain().to_string().contains("gave up after 3 attempts"),
        "{}",
        err.chain()
    );
    assert_eq!(log.lost_races(), 3);
    assert_eq!(put.num_calls(), 3);
}
