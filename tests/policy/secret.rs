//! The room grant key from AWS Secrets Manager, at the SDK boundary (aws-smithy-mocks): the
//! current version signs, the previous one is still accepted, errors name the secret.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::error::ErrorMetadata;
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use aws_sdk_secretsmanager::types::error::{InternalServiceError, ResourceNotFoundException};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use stateless_ws::policy::{GrantError, GrantKey, RoomGrant, SignedGrants};
use stateless_ws::{Error, RoomId, UserId};

const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:chat/room-grant-key-AbCdEf";
const CURRENT: &str = "the current key, the current key, 32+";
const PREVIOUS: &str = "the previous key, the previous key!!";

fn not_found() -> GetSecretValueError {
    GetSecretValueError::ResourceNotFoundException(
        ResourceNotFoundException::builder()
            .message("no such version")
            .meta(
                ErrorMetadata::builder()
                    .code("ResourceNotFoundException")
                    .build(),
            )
            .build(),
    )
}

/// A client whose secret has `current` and, if given, `previous`.
fn client(current: &'static str, previous: Option<&'static str>) -> Client {
    let stage = |s: &'static str| {
        move |r: &aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueInput| {
            r.secret_id() == Some(ARN) && r.version_stage() == Some(s)
        }
    };
    let current = mock!(Client::get_secret_value)
        .match_requests(stage("AWSCURRENT"))
        .then_output(move || {
            GetSecretValueOutput::builder()
                .secret_string(current)
                .build()
        });
    let previous = match previous {
        Some(key) => mock!(Client::get_secret_value)
            .match_requests(stage("AWSPREVIOUS"))
            .then_output(move || GetSecretValueOutput::builder().secret_string(key).build()),
        None => mock!(Client::get_secret_value)
            .match_requests(stage("AWSPREVIOUS"))
            .then_error(not_found),
    };
    mock_client!(
        aws_sdk_secretsmanager,
        RuleMode::MatchAny,
        [&current, &previous],
        |c| c.retry_config(RetryConfig::disabled())
    )
}

fn grant(key: &str) -> String {
    RoomGrant::issue(
        &GrantKey::new(key).unwrap(),
        &UserId::new("alice").unwrap(),
        &RoomId::new("private-x").unwrap(),
        std::time::Duration::from_secs(60),
    )
    .unwrap()
}

fn verify(rule: &SignedGrants, token: &str) -> Result<(), GrantError> {
    rule.verify(
        token,
        Some(&UserId::new("alice").unwrap()),
        &RoomId::new("private-x").unwrap(),
    )
    .map(|_| ())
}

#[tokio::test]
async fn the_current_version_is_the_key_and_the_previous_one_is_still_accepted() {
    let rule = SignedGrants::from_secret(&client(CURRENT, Some(PREVIOUS)), ARN)
        .await
        .unwrap();
    assert_eq!(verify(&rule, &grant(CURRENT)), Ok(()));
    assert_eq!(verify(&rule, &grant(PREVIOUS)), Ok(()));
    assert_eq!(
        verify(&rule, &grant("some other key, some other key, !!!")),
        Err(GrantError::BadSignature)
    );

    // No previous version: only the current key.
    let rule = SignedGrants::from_secret(&client(CURRENT, None), ARN)
        .await
        .unwrap();
    assert_eq!(verify(&rule, &grant(CURRENT)), Ok(()));
    assert_eq!(
        verify(&rule, &grant(PREVIOUS)),
        Err(GrantError::BadSignature)
    );
}

#[tokio::test]
async fn a_short_key_or_an_unreadable_secret_is_a_config_error_naming_it() {
    let err = SignedGrants::from_secret(&client("short", None), ARN)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { message } if message.contains(ARN) && message.contains("32 bytes")),
        "{err:?}"
    );

    let failing = mock!(Client::get_secret_value).then_error(|| {
        GetSecretValueError::InternalServiceError(
            InternalServiceError::builder()
                .message("try later")
                .meta(
                    ErrorMetadata::builder()
                        .code("InternalServiceError")
                        .build(),
                )
                .build(),
        )
    });
    let client = mock_client!(
        aws_sdk_secretsmanager,
        RuleMode::MatchAny,
        [&failing],
        |c| c.retry_config(RetryConfig::disabled())
    );
    let err = SignedGrants::from_secret(&client, ARN).await.unwrap_err();
    assert!(
        matches!(&err, Error::Config { message } if message.contains(ARN) && message.contains("InternalServiceError")),
        "{err:?}"
    );
}
