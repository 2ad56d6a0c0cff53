//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{SystemTime, UNIX_EPOCH};

/// The MiniStack (DynamoDB-compatible) endpoint from `DYNAMODB_ENDPOINT`, or `None` after printing
/// why the test is skipped. Under `scripts/test.sh` (`STATELESS_WS_REQUIRE_DYNAMODB=1`) a missing
/// endpoint fails the test instead: the README's test command never skips these.
pub(crate) fn dynamodb_endpoint(test: &str) -> Option<String> {
    match std::env::var("DYNAMODB_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => Some(endpoint),
        _ if std::env::var("STATELESS_WS_REQUIRE_DYNAMODB").as_deref() == Ok("1") => {
            panic!("{test}: DYNAMODB_ENDPOINT is not set but STATELESS_WS_REQUIRE_DYNAMODB=1")
        }
        _ => {
            eprintln!(
                "SKIPPED {test}: DYNAMODB_ENDPOINT is not set (run scripts/test.sh, which starts MiniStack)"
            );
            None
        }
    }
}

/// A DynamoDB client for the local endpoint with the fake credentials MiniStack accepts.
pub(crate) async fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

/// A fresh table (named after `tag`) on MiniStack, with room pages of `page_size`; `None` after
/// printing why when there is no endpoint (see [`dynamodb_endpoint`]).
pub(crate) async fn ministack_store(
    test: &str,
    tag: &str,
    page_size: u32,
) -> Option<stateless_ws::store::DynamoDbStore> {
    let endpoint = dynamodb_endpoint(test)?;
    let store = stateless_ws::store::DynamoDbStore::builder()
        .client(dynamodb_client(&endpoint).await)
        .table_name(unique_table(tag))
        .page_size(page_size)
        .build()
        .unwrap();
    store.ensure_table().await.unwrap();
    Some(store)
}

/// A table name no other test run has used.
pub(crate) fn unique_table(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("ws-{tag}-{}-{nanos:x}", std::process::id())
}

/// An `SdkConfig` with the fake credentials and region the local servers accept.
pub(crate) async fn local_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await
}
/// The default broadcaster tuning without the connect grace: for tests whose gone connections
/// stand for clients that joined long ago (their records were written a moment before).
pub(crate) fn without_connect_grace() -> stateless_ws::broadcast::BroadcastConfig {
    let mut config = stateless_ws::broadcast::BroadcastConfig::default();
    config.connect_grace = std::time::Duration::ZERO;
    config
}

/// How long [`eventually`] waits for its condition.
pub(crate) const EVENTUALLY: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits until `condition` holds, checking every 10 ms, and panics naming `what` if it does not
/// within [`EVENTUALLY`]. For effects that land a moment after what the test can wait for (a
/// `$disconnect` handler still running after its event was recorded, an index catching up): a
/// fixed sleep is too short on a loaded machine and wasted time on an idle one.
pub(crate) async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {EVENTUALLY:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
