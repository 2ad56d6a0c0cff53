//! An optional Lambda REQUEST authorizer for the `$connect` route — **a demo**: it maps static
//! tokens to user ids. Replace the lookup with your identity provider (verify a JWT from Cognito,
//! Auth0, …); keep the shape of the answer.
//!
//! API Gateway calls it with the `$connect` request (query string, headers, `methodArn`); it
//! answers an IAM policy allowing or denying `execute-api:Invoke` and a `principalId`, which API
//! Gateway then passes to every route of the connection as `requestContext.authorizer`. The
//! chat handlers take the user id from there, never from the query string.
//!
//! Built on `stateless_ws::lambda::authorizer` (no `lambda_runtime` code of its own).
//!
//! Environment: `AUTHORIZER_TOKENS` = comma-separated `token:userId` pairs. The token is read
//! from the query string `token` (browsers cannot set headers on a WebSocket) or the
//! `Authorization: Bearer …` header.

use std::collections::HashMap;

use stateless_ws::lambda::authorizer::{self, AuthorizerRequest, Decision};
use stateless_ws::lambda::{Context, LambdaError};

/// The demo token table, read once at start-up.
#[derive(Debug, Default)]
struct Tokens(HashMap<String, String>);

impl Tokens {
    fn parse(spec: &str) -> Result<Self, String> {
        let mut tokens = HashMap::new();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (token, user) = pair
                .split_once(':')
                .ok_or_else(|| format!("AUTHORIZER_TOKENS entry {pair:?} is not token:userId"))?;
            if token.is_empty() || user.is_empty() {
                return Err(format!(
                    "AUTHORIZER_TOKENS entry {pair:?} has an empty part"
                ));
            }
            tokens.insert(token.to_owned(), user.to_owned());
        }
        Ok(Self(tokens))
    }

    /// The user of `presented`, comparing every known token in constant time.
    fn user_of(&self, presented: &str) -> Option<&str> {
        let mut found = None;
        for (token, user) in &self.0 {
            let same_len = token.len() == presented.len();
            let diff = token
                .bytes()
                .zip(presented.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if same_len && diff == 0 {
                found = Some(user.as_str());
            }
        }
        found
    }
}

fn presented_token(request: &AuthorizerRequest) -> Option<&str> {
    if let Some(t) = request.connect.query("token") {
        return Some(t);
    }
    request
        .connect
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// The decision: allow the token's user, deny anything else (403). API Gateway itself answers
/// 401 to a request with neither identity source, before invoking this.
fn decide(tokens: &Tokens, request: &AuthorizerRequest) -> Decision {
    match presented_token(request).and_then(|t| tokens.user_of(t)) {
        Some(user) => Decision::allow(user).with_context("authenticated", true),
        None => Decision::deny("anonymous"),
    }
}

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    stateless_ws::lambda::init_tracing();
    let tokens = Tokens::parse(&std::env::var("AUTHORIZER_TOKENS").unwrap_or_default())?;
    if tokens.0.is_empty() {
        tracing::warn!("AUTHORIZER_TOKENS is empty: every connection will be denied");
    }
    let tokens = &tokens;
    authorizer::run(move |request: AuthorizerRequest, _: Context| async move {
        Ok::<_, LambdaError>(decide(tokens, &request))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The chat's decision as the function answers it (through the library's glue).
    fn decide_json(tokens: &Tokens, query: Value, headers: Value) -> Value {
        let request = AuthorizerRequest::try_from(json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/$connect",
            "queryStringParameters": query,
            "headers": headers,
            "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "C1="}
        }))
        .unwrap();
        decide(tokens, &request).into_response(&request).unwrap()
    }

    #[test]
    fn allows_known_tokens_and_denies_the_rest() {
        let tokens = Tokens::parse("s3cret:alice, other:bob").unwrap();
        let allow = decide_json(&tokens, json!({"token": "s3cret"}), Value::Null);
        assert_eq!(allow["principalId"], "alice");
        assert_eq!(allow["policyDocument"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(
            allow["policyDocument"]["Statement"][0]["Resource"],
            "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/$connect"
        );
        assert_eq!(allow["context"]["authenticated"], true);
        let header = decide_json(
            &tokens,
            Value::Null,
            json!({"Authorization": "Bearer other"}),
        );
        assert_eq!(header["principalId"], "bob");
        for bad in [
            json!({"token": "s3cre"}),
            json!({"token": "s3cretX"}),
            json!({"userId": "alice"}),
            Value::Null,
        ] {
            let deny = decide_json(&tokens, bad.clone(), Value::Null);
            assert_eq!(
                deny["policyDocument"]["Statement"][0]["Effect"], "Deny",
                "{bad}"
            );
        }
    }

    #[test]
    fn malformed_token_tables_are_start_up_errors() {
        assert!(Tokens::parse("nocolon").unwrap_err().contains("nocolon"));
        assert!(Tokens::parse(":alice").is_err());
        assert!(Tokens::parse("").unwrap().0.is_empty());
    }
}
