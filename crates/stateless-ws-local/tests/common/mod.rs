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
