//! Sign-in for `$connect`: JWTs of an OpenID Connect issuer (Amazon Cognito user pools, Auth0,
//! Microsoft Entra ID, Keycloak, …) verified against the issuer's JSON Web Key Set (feature
//! `jwt`; [`authorize`] also needs `lambda`).
//!
//! [`JwtVerifier`] checks a token: its size, its header (`alg` in an allow-list of public-key
//! algorithms and fitting the key, a known `kid`), its signature (with
//! [`jsonwebtoken`](https://docs.rs/jsonwebtoken) on aws-lc-rs — no cryptography of this crate's
//! own), then `iss`, `aud`, `exp` and `nbf` (with a small leeway) and `sub`. [`authorize`] turns
//! a REQUEST-authorizer event into the [`Decision`](crate::lambda::authorizer::Decision): allow
//! as `sub` with selected claims in the context, 401 without a token, 403 for a refused one,
//! 500 when the keys cannot be fetched.
//!
//! ```no_run
//! use std::sync::Arc;
//! use stateless_ws::jwt::{self, JwtVerifier};
//! use stateless_ws::lambda::authorizer::{self, AuthorizerRequest};
//! use stateless_ws::lambda::{Context, LambdaError};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), LambdaError> {
//!     stateless_ws::lambda::init_tracing();
//!     // Once per process: the keys it fetches are cached across invocations.
//!     let verifier = Arc::new(JwtVerifier::from_env()?);
//!     authorizer::run(move |request: AuthorizerRequest, _: Context| {
//!         let verifier = verifier.clone();
//!         async move { jwt::authorize(&verifier, &request).await }
//!     })
//!     .await
//! }
//! ```
//!
//! # Keys
//!
//! The key set comes from [`JwtConfig::jwks_uri`] or, by default, from OIDC discovery:
//! `{issuer}/.well-known/openid-configuration` names its `jwks_uri` (Entra ID's keys are not
//! under the issuer's path, so discovery is the safe default). It is fetched on the first token,
//! kept, and fetched again when a token names a `kid` the cache lacks — the issuer rotated its
//! keys — at most once per [`min_refetch_interval`](JwtConfig::min_refetch_interval) (60 s), one
//! fetch at a time however many connects wait. A refetch replaces the cache, so a key the issuer
//! withdrew stops counting; the cache is also refetched when older than
//! [`max_key_age`](JwtConfig::max_key_age) (1 h) — should that fail, the cached keys keep
//! serving and the fetch is tried again a minute later. Fetches are
//! `https://` only (`http://` to a loopback host for tests), bounded to 5 s and 256 KiB, and keep
//! at most 64 keys. [`JwksSource`] is the seam for keys from elsewhere.
//!
//! # Amazon Cognito
//!
//! The issuer is `https://cognito-idp.{region}.amazonaws.com/{userPoolId}`, the audience the app
//! client id. Cognito signs with RS256. Send the **ID token**: it carries `aud` (the app client
//! id), `email` and `cognito:groups`. An access token has no `aud` but `client_id` and
//! `token_use: access`; to accept those, set `JWT_ACCEPT_CLIENT_ID=true`
//! ([`JwtConfig::accept_client_id`]). The authorizer function needs no IAM permission beyond
//! its logs: the JWKS is public.
//!
//! ```yaml
//! JwtAuthorizerFunction:
//!   Type: AWS::Serverless::Function
//!   Properties:
//!     CodeUri: ../../target/lambda/lambda_jwt_authorizer/
//!     Handler: bootstrap
//!     Runtime: provided.al2023
//!     Environment:
//!       Variables:
//!         JWT_ISSUER: !Sub "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"
//!         JWT_AUDIENCE: !Ref UserPoolClient
//!         JWT_CLAIMS: "email,cognito:groups"
//! ConnectAuthorizer:
//!   Type: AWS::ApiGatewayV2::Authorizer
//!   Properties:
//!     ApiId: !Ref WebSocketApi
//!     Name: jwt
//!     AuthorizerType: REQUEST
//!     AuthorizerUri: !Sub "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${JwtAuthorizerFunction.Arn}/invocations"
//!     IdentitySource: [route.request.querystring.token]
//! ```
//!
//! plus an `AWS::Lambda::Permission` letting `apigateway.amazonaws.com` invoke the function,
//! and `AuthorizationType: CUSTOM` with `AuthorizerId` on the `$connect` route. The browser
//! connects to `wss://…/prod?token=<id token>`. Other issuers: Auth0 — issuer
//! `https://{tenant}.auth0.com/` (with the trailing slash, as in its tokens), audience the API
//! identifier, RS256 by default; Entra ID — issuer
//! `https://login.microsoftonline.com/{tenant}/v2.0` (v2 tokens), audience the application id.
//!
//! # Threat model
//!
//! Trusted: the issuer's key set, fetched over TLS (system roots) from the issuer's own
//! discovery document, and the function's configuration. Not trusted: everything in the token
//! until its signature checks out — its `alg` is matched against an allow-list that holds
//! public-key algorithms only (`none` and `HS*` cannot be configured, so a token "signed" with
//! HMAC over the public key is refused) and against the type and curve of the key its `kid`
//! names; `jku`, `x5u` and embedded `jwk` headers are ignored (keys never come from the token);
//! `crit` is refused. Claims are read only after the signature verifies. A client can make the
//! verifier fetch the key set by sending unknown `kid`s, at most once a minute. Tokens in query
//! strings end up in logs (API Gateway access logs, proxies, browser history), where a bearer
//! token can be replayed until it expires: keep tokens short-lived (Cognito's ID token
//! lifetime can be set down to 5 minutes) and prefer the `Authorization` header where the
//! client can set it. A valid token's connection outlives the token (API Gateway checks only at
//! `$connect`, up to 2 h) — close it from your backend (`DELETE @connections/{id}`) when you
//! revoke a session. (`AuthorizerResultTtlInSeconds`, API Gateway's authorizer result cache,
//! applies to HTTP APIs only: a WebSocket API has none to configure.) A key the issuer withdraws stays
//! trusted until the next refetch: a new `kid`, or [`max_key_age`](JwtConfig::max_key_age) (1 h).
//!
//! # Limits
//!
//! Tokens over 8 KiB are refused before parsing; the leeway is 60 s by default and at most
//! [`MAX_LEEWAY`] (5 min); tokens without `kid` are refused (every issuer above sets it);
//! encrypted tokens (JWE) are not supported.

#[cfg(feature = "lambda")]
mod authorize;
mod config;
mod jwks;
mod verifier;

#[cfg(feature = "lambda")]
#[cfg_attr(docsrs, doc(cfg(feature = "lambda")))]
pub use authorize::authorize;
pub use config::{Algorithm, JwtConfig, MAX_LEEWAY, TokenSource};
pub use jwks::{HttpJwks, JwksSource};
pub use verifier::{JwtVerifier, Refusal, Verified, VerifyError};
