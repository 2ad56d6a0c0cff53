//! Helpers shared by the gateway's tests and benches.
#![allow(dead_code)]

/// An `SdkConfig` with the fake credentials and region the local servers accept (the gateway's
/// management API checks that requests are signed, not by whom).
pub(crate) async fn local_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await
}

/// The MiniStack endpoint from `DYNAMODB_ENDPOINT`, or `None` after printing why the test is
/// skipped. With `STATELESS_WS_REQUIRE_DYNAMODB=1` (`scripts/test.sh`) a missing endpoint fails
/// the test instead: the README's test command never skips these.
#[allow(clippy::panic)]
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
