//! `DynamoDbStore` against a real DynamoDB-compatible server (MiniStack, started by
//! `scripts/test.sh`): the whole conformance suite, table creation, error mapping, and the table
//! layout shared with the Python version.
#![cfg(feature = "dynamodb")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use stateless_ws::store::{ConnectionStore, ConnectionStoreExt, DynamoDbStore};
use stateless_ws::{ConnectionId, Error, Membership, RoomId, UserId, conformance};

fn unix_seconds_for_test(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn store(endpoint: &str, tag: &str, page_size: u32) -> DynamoDbStore {
    let store = DynamoDbStore::builder()
        .client(common::dynamodb_client(endpoint).await)
        .table_name(common::unique_table(tag))
        .page_size(page_size)
        .build()
        .unwrap();
    store.ensure_table().await.unwrap();
    store
}

#[tokio::test]
async fn conformance_suite_on_ministack_with_small_pages() {
    let Some(endpoint) =
        common::dynamodb_endpoint("conformance_suite_on_ministack_with_small_pages")
    else {
        return;
    };
    // 7 items per page: the 75-member room and the user listing cross many pages.
    let store = store(&endpoint, "conf", 7).await;
    conformance::run_all(&store).await;
    eprintln!("DynamoDB conformance suite passed against MiniStack at {endpoint}");
}

#[tokio::test]
async fn conformance_suite_on_ministack_through_arc_dyn() {
    let Some(endpoint) =
        common::dynamodb_endpoint("conformance_suite_on_ministack_through_arc_dyn")
    else {
        return;
    };
    let store: Arc<dyn ConnectionStore> = Arc::new(store(&endpoint, "confdyn", 1_000).await);
    conformance::run_all(store.as_ref()).await;
}

#[tokio::test]
async fn ensure_table_creates_the_layout_and_is_idempotent() {
    let Some(endpoint) =
        common::dynamodb_endpoint("ensure_table_creates_the_layout_and_is_idempotent")
    else {
        return;
    };
    let store = store(&endpoint, "ensure", 100).await;
    store
        .ensure_table()
        .await
        .expect("second ensure_table tolerates the existing table and TTL");

    let client = store.client();
    let table = client
        .describe_table()
        .table_name(store.table_name())
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys: Vec<(String, String)> = table
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("connectionId".into(), "HASH".into()),
            ("roomId".into(), "RANGE".into())
        ]
    );
    let mut indexes: Vec<(String, String)> = table
        .global_secondary_indexes()
        .iter()
        .map(|i| {
            let hash = i
                .key_schema()
                .iter()
                .find(|k| k.key_type().as_str() == "HASH")
                .unwrap();
            (
                i.index_name().unwrap().to_owned(),
                hash.attribute_name().to_owned(),
            )
        })
        .collect();
    indexes.sort();
    assert_eq!(
        indexes,
        [
            ("roomId-index".into(), "roomId".into()),
            ("userId-index".into(), "userId".into())
        ]
    );
    let ttl = client
        .describe_time_to_live()
        .table_name(store.table_name())
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("ttl"));
    assert!(matches!(
        ttl.time_to_live_status(),
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ));
}

#[tokio::test]
async fn missing_table_is_not_found_with_the_sdk_error_kept() {
    let Some(endpoint) =
        common::dynamodb_endpoint("missing_table_is_not_found_with_the_sdk_error_kept")
    else {
        return;
    };
    let store = DynamoDbStore::builder()
        .client(common::dynamodb_client(&endpoint).await)
        .table_name(common::unique_table("absent"))
        .build()
        .unwrap();
    let err = store
        .room_connections(&RoomId::new("r").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("DynamoDbStore(ws-absent-"),
        "{err}"
    );
    let source = std::error::Error::source(&err).expect("SDK error kept as source");
    let chain = format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(source));
    assert!(chain.contains("ResourceNotFoundException"), "{chain}");
}

#[tokio::test]
async fn unknown_index_is_a_validation_error() {
    let Some(endpoint) = common::dynamodb_endpoint("unknown_index_is_a_validation_error") else {
        return;
    };
    let good = store(&endpoint, "badindex", 100).await;
    let store = DynamoDbStore::builder()
        .client(good.client().clone())
        .table_name(good.table_name())
        .room_index("no-such-index")
        .build()
        .unwrap();
    let err = store
        .room_connections(&RoomId::new("r").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation { .. }), "{err:?}");
    assert!(!err.is_retryable());
}

/// Items shaped exactly as the Python version writes them are read by the crate, and items the
/// crate writes carry exactly the attributes (names and types) the Python version reads.
#[tokio::test]
async fn shares_the_table_layout_with_the_python_version() {
    let Some(endpoint) =
        common::dynamodb_endpoint("shares_the_table_layout_with_the_python_version")
    else {
        return;
    };
    let store = store(&endpoint, "layout", 100).await;
    let client = store.client();
    let now = unix_seconds_for_test(SystemTime::now());
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: u64| AttributeValue::N(v.to_string());

    // As Python's boto3 `put_item(Item={...})` writes it.
    client
        .put_item()
        .table_name(store.table_name())
        .item("connectionId", s("PyConn1AbCdE="))
        .item("roomId", s("room#general"))
        .item("userId", s("py-user"))
        .item("connectedAt", n(now))
        .item("ttl", n(now + 7_200))
        .send()
        .await
        .unwrap();
    let general = RoomId::new("general").unwrap();
    let members = store.room_connections(&general).await.unwrap();
    assert_eq!(members.len(), 1);
    let py = &members[0];
    assert_eq!(py.connection_id, "PyConn1AbCdE=");
    assert_eq!(py.user_id.as_ref().unwrap(), "py-user");
    assert_eq!(py.connected_at, Some(now));
    assert_eq!(py.expires_at, Some(now + 7_200));
    assert_eq!(py.endpoint, None, "older records have no endpoint");
    let user = UserId::new("py-user").unwrap();
    assert_eq!(store.user_connections(&user).await.unwrap().len(), 1);

    // As the crate writes it.
    let conn = ConnectionId::new("RsConn2XyZ0=").unwrap();
    store
        .join(
            &Membership::new(conn.clone(), general.clone())
                .with_user(user.clone())
                .with_connected_at(now)
                .with_endpoint("https://abc123.execute-api.us-east-1.amazonaws.com/prod"),
        )
        .await
        .unwrap();
    let item = client
        .get_item()
        .table_name(store.table_name())
        .key("connectionId", s("RsConn2XyZ0="))
        .key("roomId", s("room#general"))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let expected: HashMap<String, AttributeValue> = [
        ("connectionId", s("RsConn2XyZ0=")),
        ("roomId", s("room#general")),
        ("userId", s("py-user")),
        ("connectedAt", n(now)),
        ("ttl", n(now + 7_200)),
        (
            "managementEndpoint",
            s("https://abc123.execute-api.us-east-1.amazonaws.com/prod"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let ttl_written: u64 = item["ttl"].as_n().unwrap().parse().unwrap();
    assert!(
        ttl_written.abs_diff(now + 7_200) <= 2,
        "ttl = join time + 2 h: {ttl_written}"
    );
    let mut item = item;
    item.insert("ttl".into(), n(now + 7_200));
    assert_eq!(item, expected);

    // The Python version's disconnect handler deletes by key; the crate's removes both kinds.
    let removed = store
        .remove_connections(&[ConnectionId::new("PyConn1AbCdE=").unwrap(), conn])
        .await
        .unwrap();
    assert_eq!(removed.len(), 2);
    assert!(store.room_connections(&general).await.unwrap().is_empty());
}

/// Records whose `ttl` has passed stay in the table until DynamoDB's lazy sweep, but are never
/// returned; a record written without `ttl` (older code) never expires.
#[tokio::test]
async fn expiry_is_filtered_on_read_and_missing_ttl_never_expires() {
    let Some(endpoint) =
        common::dynamodb_endpoint("expiry_is_filtered_on_read_and_missing_ttl_never_expires")
    else {
        return;
    };
    let store = store(&endpoint, "expiry", 100).await;
    let client = store.client();
    let room = RoomId::new("lobby").unwrap();
    let s = |v: &str| AttributeValue::S(v.to_owned());
    client
        .put_item()
        .table_name(store.table_name())
        .item("connectionId", s("NoTtl="))
        .item("roomId", s("room#lobby"))
        .send()
        .await
        .unwrap();
    let past = unix_seconds_for_test(SystemTime::now() - Duration::from_secs(60));
    store
        .join(
            &Membership::new(ConnectionId::new("Expired=").unwrap(), room.clone())
                .with_expires_at(past),
        )
        .await
        .unwrap();
    let members = store.room_connections(&room).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].connection_id, "NoTtl=");
    assert_eq!(members[0].expires_at, None);
    assert_eq!(members[0].connected_at, None);
    let removed = store
        .disconnect(&ConnectionId::new("Expired=").unwrap())
        .await
        .unwrap();
    assert_eq!(removed.len(), 1, "expired records are still removed");
}
