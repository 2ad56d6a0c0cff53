//! An optional Lambda REQUEST authorizer for the `$connect` route — **a demo**: it maps static
//! tokens to user ids. Replace the lookup with your identity provider (verify a JWT from Cognito,
//! Auth0, …); keep the shape of the answer.
//!
//! API Gateway calls it with the `$connect` request (query string, headers, `methodArn`); it
//! answers an IAM policy allowing or denying `execute-api:Invoke` and a `principalId`, which API
//! Gateway then passes to every route of the connection as `requestContext.authorizer`. The
//! chat handlers take the user id from there, never from the query string.
//!
//! Environment: `AUTHORIZER_TOKENS` = comma-separated `token:userId` pairs. The token is read
//! from the query string `token` (browsers cannot set headers on a WebSocket) or the
//! `Authorization: Bearer …` header.

use std::collections::HashMap;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

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

fn presented_token(request: &Value) -> Option<&str> {
    if let Some(t) = request["queryStringParameters"]["token"].as_str() {
        return Some(t);
    }
    let headers = request["headers"].as_object()?;
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.as_str())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// The authorizer's answer: an IAM policy on the `$connect` method and the principal.
fn decide(tokens: &Tokens, request: &Value) -> Value {
    let method_arn = request["methodArn"].as_str().unwrap_or("*");
    let user = presented_token(request).and_then(|t| tokens.user_of(t));
    let (effect, principal) = match user {
        Some(user) => ("Allow", user),
        None => ("Deny", "anonymous"),
    };
    json!({
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}]
        },
        "context": {"authenticated": user.is_some()}
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let tokens = Tokens::parse(&std::env::var("AUTHORIZER_TOKENS").unwrap_or_default())?;
    if tokens.0.is_empty() {
        tracing::warn!("AUTHORIZER_TOKENS is empty: every connection will be denied");
    }
    let tokens = &tokens;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(decide(tokens, &event.payload))
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: Value, headers: Value) -> Value {
        json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/$connect",
            "queryStringParameters": query,
            "headers": headers,
            "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "C1="}
        })
    }

    #[test]
    fn allows_known_tokens_and_denies_the_rest() {
        let tokens = Tokens::parse("s3cret:alice, other:bob").unwrap();
        let allow = decide(&tokens, &request(json!({"token": "s3cret"}), Value::Null));
        assert_eq!(allow["principalId"], "alice");
        assert_eq!(allow["policyDocument"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(
            allow["policyDocument"]["Statement"][0]["Resource"],
            "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/$connect"
        );
        let header = decide(
            &tokens,
            &request(Value::Null, json!({"Authorization": "Bearer other"})),
        );
        assert_eq!(header["principalId"], "bob");
        for bad in [
            json!({"token": "s3cre"}),
            json!({"token": "s3cretX"}),
            json!({"userId": "alice"}),
            Value::Null,
        ] {
            let deny = decide(&tokens, &request(bad.clone(), Value::Null));
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
