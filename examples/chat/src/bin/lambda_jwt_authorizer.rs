//! The chat's `$connect` REQUEST authorizer for real sign-in: a JWT of an OpenID Connect issuer
//! (an Amazon Cognito user pool, Auth0, Entra ID, …) verified against the issuer's key set with
//! `stateless_ws::jwt` (feature `jwt`). The connection's user id (`principalId`) is the token's
//! `sub`; the claims named in `JWT_CLAIMS` go into the authorizer context.
//!
//! | the token | the answer | the client gets |
//! |---|---|---|
//! | valid | allow as `sub` | the connection |
//! | missing | `Unauthorized` | 401 |
//! | refused (expired, wrong issuer or audience, bad signature, …; the reason is logged) | deny | 403 |
//! | not checkable: the key set cannot be fetched (logged at ERROR) | an error | 500 |
//!
//! The token is read from the query string `token` (browsers cannot set headers on a
//! WebSocket: `wss://…/prod?token=<ID token>`) or the `Authorization: Bearer …` header.
//!
//! Environment, read once at start (`stateless_ws::env` lists them): `JWT_ISSUER` (e.g.
//! `https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123`), `JWT_AUDIENCE` (the app
//! client id; comma-separated for several), optional `JWT_JWKS_URI` (default: OIDC discovery),
//! `JWT_CLAIMS` (e.g. `email,cognito:groups`), `JWT_TOKEN_SOURCE` (default
//! `query:token,header:Authorization`), `JWT_ACCEPT_CLIENT_ID` (`true` for Cognito access
//! tokens). IAM: nothing beyond its logs — the key set is public. It needs outbound HTTPS to
//! the issuer (outside a VPC, or through a NAT gateway).
//!
//! The verifier is built once, before the runtime loop: the issuer's keys it fetches stay
//! cached for every invocation of this execution environment.

use stateless_ws::jwt::{self, JwtVerifier};
use stateless_ws::lambda::authorizer::{self, AuthorizerRequest, Decision};
use stateless_ws::lambda::{Context, LambdaError};

/// One `$connect`: the decision of the verifier.
async fn handle(
    verifier: &JwtVerifier,
    request: AuthorizerRequest,
) -> Result<Decision, LambdaError> {
    Ok(jwt::authorize(verifier, &request).await?)
}

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    stateless_ws::lambda::init_tracing();
    let verifier = JwtVerifier::from_env()?;
    tracing::info!(?verifier, "JWT authorizer ready");
    let verifier = &verifier;
    authorizer::run(move |request: AuthorizerRequest, _: Context| async move {
        handle(verifier, request).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use stateless_ws::jwt::JwtConfig;
    use stateless_ws::lambda::LambdaEvent;

    fn event(query: Value) -> LambdaEvent<Value> {
        LambdaEvent::new(
            json!({
                "type": "REQUEST",
                "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/$connect",
                "queryStringParameters": query,
                "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "C1="}
            }),
            Context::default(),
        )
    }

    /// Refusals that need no key (so no network): the function's answers through the
    /// library's glue. Valid tokens, key fetches and every other refusal are covered by the
    /// library's tests (`tests/jwt`), against an issuer on loopback.
    #[tokio::test]
    async fn no_token_is_401_and_a_malformed_or_unsigned_one_403() {
        let verifier = JwtVerifier::new(JwtConfig::new(
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123",
            ["app-client-id"],
        ))
        .unwrap();
        let verifier = &verifier;
        let run = |query| async move {
            authorizer::handle(
                &|request, _| async move { handle(verifier, request).await },
                event(query),
            )
            .await
        };
        let missing = run(Value::Null).await.unwrap_err();
        assert_eq!(missing.to_string(), "Unauthorized");
        // {"alg":"none"} . {"sub":"alice"} . (no signature)
        let unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.";
        for token in ["garbage", unsigned] {
            let answer = run(json!({ "token": token })).await.unwrap();
            assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Deny");
            assert_eq!(answer["principalId"], "anonymous");
        }
    }
}
