//! What the verifier accepts: [`JwtConfig`], [`Algorithm`], [`TokenSource`].

use std::fmt;
use std::time::Duration;

use crate::env;
use crate::error::{Error, Result};

/// The longest clock-skew allowance [`JwtConfig::leeway`] may be set to (5 min): a larger one
/// would keep expired tokens alive for longer than most issuers' shortest token lifetime.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// A signature algorithm the verifier may accept. Only public-key algorithms exist here: a
/// shared-secret one (`HS256`, …) cannot be configured, and `none` is no algorithm at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256: Cognito, Auth0 (default), Entra ID, most OIDC issuers.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// The `alg` name in a JOSE header.
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    /// The algorithm named `name` in a JOSE header, if it is one of these (exact case).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::RS256,
            Self::RS384,
            Self::RS512,
            Self::PS256,
            Self::PS384,
            Self::PS512,
            Self::ES256,
            Self::ES384,
            Self::EdDSA,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }

    pub(super) fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Self::RS256 => A::RS256,
            Self::RS384 => A::RS384,
            Self::RS512 => A::RS512,
            Self::PS256 => A::PS256,
            Self::PS384 => A::PS384,
            Self::PS512 => A::PS512,
            Self::ES256 => A::ES256,
            Self::ES384 => A::ES384,
            Self::EdDSA => A::EdDSA,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the token is in the `$connect` request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// A query-string parameter, e.g. `token` in `wss://…/prod?token=…` — what a browser can
    /// send (its WebSocket API sets no headers). Query strings end up in access logs.
    Query(String),
    /// A header, e.g. `Authorization`; a `Bearer ` prefix (any case) is taken off.
    Header(String),
}

impl TokenSource {
    /// Reads `query:NAME` or `header:NAME`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for anything else.
    pub fn parse(text: &str) -> Result<Self> {
        let (kind, name) = text.trim().split_once(':').unwrap_or(("", ""));
        let name = name.trim();
        match kind.trim() {
            "query" if !name.is_empty() => Ok(Self::Query(name.to_owned())),
            "header" if !name.is_empty() => Ok(Self::Header(name.to_owned())),
            _ => Err(Error::config(format!(
                "token source {text:?} is not `query:NAME` or `header:NAME`"
            ))),
        }
    }
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Query(name) => write!(f, "query:{name}"),
            Self::Header(name) => write!(f, "header:{name}"),
        }
    }
}

/// What [`JwtVerifier`](super::JwtVerifier) accepts. [`new`](Self::new) takes the two settings
/// without a default (issuer, audiences); every other field is public, with its default
/// documented.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JwtConfig {
    /// The issuer, compared with the token's `iss` exactly (Cognito:
    /// `https://cognito-idp.{region}.amazonaws.com/{userPoolId}`; Auth0: `https://{tenant}/`
    /// with its trailing slash; Entra ID: `https://login.microsoftonline.com/{tenant}/v2.0`).
    pub issuer: String,
    /// The accepted audiences: a token's `aud` (a string or a list) must hold one of them.
    /// Cognito ID tokens carry the app client id; Auth0 the API identifier; Entra ID the
    /// application (client) id.
    pub audiences: Vec<String>,
    /// The JWKS URL. `None` (the default): OIDC discovery, the `jwks_uri` of
    /// `{issuer}/.well-known/openid-configuration`, fetched once.
    pub jwks_uri: Option<String>,
    /// Accepted algorithms (default RS256, ES256, EdDSA). A token's `alg` must be one of them
    /// *and* fit its key (RSA key: RS*/PS*; EC P-256: ES256; EC P-384: ES384; OKP Ed25519:
    /// EdDSA; and the key's own `alg`, when the JWKS names one).
    pub algorithms: Vec<Algorithm>,
    /// Clock-skew allowance on `exp` and `nbf` (default 60 s, at most [`MAX_LEEWAY`]).
    pub leeway: Duration,
    /// The longest token read, in bytes (default 8 KiB); longer is refused before any parsing.
    pub max_token_bytes: usize,
    /// An unknown `kid` refetches the JWKS at most once per this interval (default 60 s): a
    /// flood of made-up key ids costs the issuer one request a minute, not one per connect.
    pub min_refetch_interval: Duration,
    /// The cached key set is fetched again when it is older than this (default 1 h), so a key
    /// the issuer withdrew stops being trusted within about that long; should that fetch
    /// fail, the cached keys keep serving (retried after `min_refetch_interval`).
    pub max_key_age: Duration,
    /// Claims copied into the authorizer context (default none): strings, numbers and booleans
    /// as they are, lists of those joined with `,` (e.g. `cognito:groups`); objects are left out.
    pub claims: Vec<String>,
    /// Where the token is read, first found wins (default `query:token`, then
    /// `header:Authorization`).
    pub token_sources: Vec<TokenSource>,
    /// Accept a token without `aud` when its `client_id` is one of
    /// [`audiences`](Self::audiences) (default `false`). Cognito *access* tokens carry
    /// `client_id` instead of `aud`; its ID tokens have `aud`.
    pub accept_client_id: bool,
    /// The JWKS and discovery fetch: how long it may take (default 5 s).
    pub fetch_timeout: Duration,
    /// The largest JWKS or discovery document read (default 256 KiB).
    pub max_document_bytes: usize,
    /// The most keys kept from a JWKS (default 64); keys after that are ignored.
    pub max_keys: usize,
}

impl JwtConfig {
    /// Tokens of `issuer` for one of `audiences`; the rest default.
    pub fn new<A: Into<String>>(
        issuer: impl Into<String>,
        audiences: impl IntoIterator<Item = A>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: audiences.into_iter().map(Into::into).collect(),
            jwks_uri: None,
            algorithms: vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
            leeway: Duration::from_secs(60),
            max_token_bytes: 8 * 1024,
            min_refetch_interval: Duration::from_secs(60),
            max_key_age: Duration::from_secs(3600),
            claims: Vec::new(),
            token_sources: vec![
                TokenSource::Query("token".to_owned()),
                TokenSource::Header("Authorization".to_owned()),
            ],
            accept_client_id: false,
            fetch_timeout: Duration::from_secs(5),
            max_document_bytes: 256 * 1024,
            max_keys: 64,
        }
    }

    /// The configuration in the environment: `JWT_ISSUER`, `JWT_AUDIENCE` (required),
    /// `JWT_JWKS_URI`, `JWT_CLAIMS`, `JWT_TOKEN_SOURCE`, `JWT_ACCEPT_CLIENT_ID` (see
    /// [`env`](crate::env)); the rest default.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable that is missing or does not parse.
    pub fn from_env() -> Result<Self> {
        let required = |name: &str| {
            env::var(name)?
                .ok_or_else(|| Error::config(format!("environment variable {name} is not set")))
        };
        let list = |name: &str| -> Result<Option<Vec<String>>> {
            Ok(env::var(name)?.map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }))
        };
        let issuer = required(env::JWT_ISSUER)?;
        let audiences = list(env::JWT_AUDIENCE)?.unwrap_or_default();
        if audiences.is_empty() {
            return Err(Error::config(format!(
                "environment variable {} is not set (a comma-separated list of audiences)",
                env::JWT_AUDIENCE
            )));
        }
        let mut config = Self::new(issuer, audiences);
        config.jwks_uri = env::var(env::JWT_JWKS_URI)?;
        config.claims = list(env::JWT_CLAIMS)?.unwrap_or_default();
        if let Some(sources) = list(env::JWT_TOKEN_SOURCE)? {
            config.token_sources = sources
                .iter()
                .map(|s| TokenSource::parse(s))
                .collect::<Result<_>>()
                .map_err(|e| {
                    Error::config(format!(
                        "environment variable {}: {e}",
                        env::JWT_TOKEN_SOURCE
                    ))
                })?;
        }
        config.accept_client_id = match env::var(env::JWT_ACCEPT_CLIENT_ID)?.as_deref() {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
            Some(v) => {
                return Err(Error::config(format!(
                    "environment variable {} must be true or false, got {v:?}",
                    env::JWT_ACCEPT_CLIENT_ID
                )));
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the settings [`JwtVerifier::new`](super::JwtVerifier::new) relies on.
    pub(super) fn validate(&self) -> Result<()> {
        let problem = if self.issuer.trim().is_empty() {
            Some("the issuer is empty".to_owned())
        } else if self.audiences.iter().all(|a| a.trim().is_empty()) {
            Some("no audience: a token for any client of the issuer would pass".to_owned())
        } else if self.algorithms.is_empty() {
            Some("no algorithm is accepted".to_owned())
        } else if self.leeway > MAX_LEEWAY {
            Some(format!(
                "leeway {:?} is over the maximum {MAX_LEEWAY:?}",
                self.leeway
            ))
        } else if self.token_sources.is_empty() {
            Some("no token source".to_owned())
        } else if self.max_token_bytes == 0 || self.max_document_bytes == 0 || self.max_keys == 0 {
            Some("a limit (max_token_bytes, max_document_bytes, max_keys) is 0".to_owned())
        } else {
            None
        };
        match problem {
            Some(p) => Err(Error::config(format!("JWT verifier: {p}"))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_sources_parse() {
        assert_eq!(
            TokenSource::parse("query:token").unwrap(),
            TokenSource::Query("token".into())
        );
        assert_eq!(
            TokenSource::parse(" header: Authorization ").unwrap(),
            TokenSource::Header("Authorization".into())
        );
        for bad in ["token", "query:", "cookie:x", ""] {
            assert!(TokenSource::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn algorithms_round_trip_and_none_is_not_one() {
        for a in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            assert_eq!(Algorithm::from_name(a.name()), Some(a));
        }
        for bad in ["none", "HS256", "rs256", ""] {
            assert_eq!(Algorithm::from_name(bad), None);
        }
    }

    #[test]
    fn validation_refuses_what_would_weaken_the_check() {
        assert!(JwtConfig::new("https://issuer", ["app"]).validate().is_ok());
        assert!(
            JwtConfig::new("https://issuer", Vec::<String>::new())
                .validate()
                .is_err()
        );
        let mut c = JwtConfig::new("https://issuer", ["app"]);
        c.leeway = Duration::from_secs(3600);
        assert!(c.validate().is_err());
        let mut c = JwtConfig::new("https://issuer", ["app"]);
        c.algorithms.clear();
        assert!(c.validate().is_err());
    }
}
