//! The `$connect` REQUEST authorizer on a [`JwtVerifier`]: [`authorize`].

use serde_json::Value;

use super::verifier::{JwtVerifier, Refusal, Verified, VerifyError};
use crate::error::Result;
use crate::lambda::authorizer::{AuthorizerRequest, Decision};

/// The decision for one `$connect` request:
///
/// | the token | the decision | the client gets |
/// |---|---|---|
/// | valid | [`allow(sub)`](Decision::allow), with the [configured claims](super::JwtConfig::claims) in the context | the connection |
/// | missing | [`unauthorized()`](Decision::unauthorized) | 401 |
/// | refused (any other [`Refusal`]) | [`deny("anonymous")`](Decision::deny) | 403 |
/// | not checkable: the key set could not be fetched | `Err` | 500 |
///
/// A key-set outage is an error, not a deny: the user did nothing wrong, the 500 is logged at
/// ERROR (alarm on it), and the client may simply try again.
///
/// # Errors
///
/// [`Error::Jwks`](crate::Error::Jwks) when the key set was needed and could not be fetched.
pub async fn authorize(verifier: &JwtVerifier, request: &AuthorizerRequest) -> Result<Decision> {
    let Some(token) = verifier.token(&request.connect) else {
        tracing::info!(reason = %Refusal::Missing, "JWT refused");
        return Ok(Decision::unauthorized());
    };
    match verifier.verify(token).await {
        Ok(verified) => Ok(allow(verifier, &verified)),
        Err(VerifyError::Refused(Refusal::Missing)) => Ok(Decision::unauthorized()),
        Err(VerifyError::Refused(_)) => Ok(Decision::deny("anonymous")),
        Err(VerifyError::Unavailable(error)) => Err(error),
    }
}

fn allow(verifier: &JwtVerifier, verified: &Verified) -> Decision {
    let mut decision = Decision::allow(verified.subject.clone());
    for name in &verifier.config().claims {
        let Some(value) = verified.claims.get(name) else {
            continue;
        };
        decision = match value {
            Value::String(s) => decision.with_context(name.clone(), s.clone()),
            Value::Bool(b) => decision.with_context(name.clone(), *b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => decision.with_context(name.clone(), i),
                (None, Some(u)) => decision.with_context(name.clone(), u),
                _ => decision.with_context(name.clone(), n.to_string()),
            },
            Value::Array(items) => match joined(items) {
                Some(text) => decision.with_context(name.clone(), text),
                None => {
                    tracing::debug!(claim = %name, "claim left out of the context: not a list of scalars");
                    decision
                }
            },
            Value::Null | Value::Object(_) => {
                tracing::debug!(claim = %name, "claim left out of the context: not a scalar");
                decision
            }
        };
    }
    decision
}

/// A list of scalars as one string, `,`-joined (`cognito:groups`: `["admins","ops"]` →
/// `admins,ops`).
fn joined(items: &[Value]) -> Option<String> {
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Some(s.clone()),
            Value::Bool(_) | Value::Number(_) => Some(item.to_string()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .map(|parts| parts.join(","))
}
