//! Room grant keys from AWS Secrets Manager (feature `secretsmanager`).

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;

use super::{GrantKey, SignedGrants};
use crate::env::{ROOM_GRANT_KEY, ROOM_GRANT_KEY_SECRET_ARN, var};
use crate::error::{Error, Result};

impl SignedGrants {
    /// The rule with the key in the Secrets Manager secret named by
    /// [`ROOM_GRANT_KEY_SECRET_ARN`](crate::env::ROOM_GRANT_KEY_SECRET_ARN)
    /// ([`from_secret`](Self::from_secret)) when it is set, else [`from_env`](Self::from_env)'s.
    /// Read it once, at start-up (a Lambda's cold start).
    ///
    /// # Errors
    ///
    /// [`Error::Config`]: both `ROOM_GRANT_KEY` and `ROOM_GRANT_KEY_SECRET_ARN` set, or
    /// [`from_secret`](Self::from_secret)'s or [`from_env`](Self::from_env)'s errors.
    pub async fn from_env_with(config: &aws_config::SdkConfig) -> Result<Option<Self>> {
        let Some(arn) = var(ROOM_GRANT_KEY_SECRET_ARN)? else {
            return Self::from_env();
        };
        if var(ROOM_GRANT_KEY)?.is_some() {
            return Err(Error::config(format!(
                "both {ROOM_GRANT_KEY} and {ROOM_GRANT_KEY_SECRET_ARN} are set: keep one"
            )));
        }
        Self::from_secret(&Client::new(config), &arn)
            .await
            .map(Some)
    }

    /// The rule with the key in secret `secret_id` (ARN or name): its `AWSCURRENT` version's
    /// `SecretString`, used as written (at least 32 bytes), and — during a rotation of the
    /// secret — its `AWSPREVIOUS` version, accepted too. IAM: `secretsmanager:GetSecretValue` on
    /// the secret (and `kms:Decrypt` on its key, for a customer-managed key).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the secret when it cannot be read, has no `SecretString`, or
    /// holds a key shorter than [`GrantKey::MIN_LEN`].
    pub async fn from_secret(client: &Client, secret_id: &str) -> Result<Self> {
        let current = read_key(client, secret_id, "AWSCURRENT")
            .await?
            .ok_or_else(|| {
                Error::config(format!(
                    "Secrets Manager secret {secret_id} has no AWSCURRENT version"
                ))
            })?;
        let mut rule = Self::new(current);
        if let Some(previous) = read_key(client, secret_id, "AWSPREVIOUS").await? {
            rule = rule.with_previous_key(previous);
        }
        Ok(rule)
    }
}

/// The key in version `stage` of the secret; `None` when there is no such version.
async fn read_key(client: &Client, secret_id: &str, stage: &str) -> Result<Option<GrantKey>> {
    let output = match client
        .get_secret_value()
        .secret_id(secret_id)
        .version_stage(stage)
        .send()
        .await
    {
        Ok(output) => output,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(Error::config(format!(
                "reading the room grant key from Secrets Manager secret {secret_id} ({stage}): {}",
                DisplayErrorContext(&e)
            )));
        }
    };
    let text = output.secret_string().ok_or_else(|| {
        Error::config(format!(
            "Secrets Manager secret {secret_id} ({stage}) has no SecretString: store the key as text"
        ))
    })?;
    GrantKey::new(text.trim()).map(Some).map_err(|_| {
        Error::config(format!(
            "the key in Secrets Manager secret {secret_id} ({stage}) must have at least {} bytes",
            GrantKey::MIN_LEN
        ))
    })
}
