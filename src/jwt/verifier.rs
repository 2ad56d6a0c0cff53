//! [`JwtVerifier`]: one token in, a [`Verified`] subject or the [`Refusal`] out.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use serde_json::{Map, Value};

use super::config::{Algorithm, JwtConfig, TokenSource};
use super::jwks::{HttpJwks, JwksSource, Key, KeyTable};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, ErrorChain, Result};
use crate::event::ConnectEvent;
use crate::ids::UserId;

/// Why a token was refused. Its `Display` is the reason logged; it never holds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// No token in any of the configured [`TokenSource`]s.
    Missing,
    /// Longer than [`JwtConfig::max_token_bytes`]; refused before any parsing.
    TooLarge {
        /// The token's length in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a JWS in compact form (three base64url parts, a JSON header with `alg`, a JSON
    /// object as payload), or a header this verifier does not support (`crit`).
    Malformed {
        /// What is wrong.
        what: &'static str,
    },
    /// The header's `alg` is not accepted: `none`, any `HS*`, or one left out of
    /// [`JwtConfig::algorithms`].
    AlgorithmNotAllowed {
        /// The header's `alg`.
        alg: String,
    },
    /// The header has no `kid`.
    MissingKeyId,
    /// No key with this `kid` in the issuer's key set, also after a refetch (or the refetch was
    /// not allowed yet, see [`JwtConfig::min_refetch_interval`]).
    UnknownKeyId {
        /// The header's `kid`.
        kid: String,
    },
    /// The key named by `kid` is not one for the header's `alg` (e.g. an RSA key and ES256).
    KeyMismatch {
        /// The header's `kid`.
        kid: String,
        /// The header's `alg`.
        alg: Algorithm,
    },
    /// The signature does not verify: the token was altered or signed by another key.
    BadSignature,
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` is ahead (beyond the leeway).
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` holds none of the configured audiences (nor `client_id`, when accepted).
    WrongAudience,
    /// A required claim is absent: `exp`, `iss`, `sub`, `aud`.
    MissingClaim {
        /// The claim.
        claim: &'static str,
    },
    /// A claim has the wrong type or value (e.g. `exp` not a number, `sub` not a valid user id).
    InvalidClaim {
        /// The claim.
        claim: &'static str,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("no token"),
            Self::TooLarge { size, limit } => {
                write!(f, "token of {size} bytes is over the {limit}-byte limit")
            }
            Self::Malformed { what } => write!(f, "malformed token: {what}"),
            Self::AlgorithmNotAllowed { alg } => write!(f, "algorithm {alg:?} is not accepted"),
            Self::MissingKeyId => f.write_str("no kid in the header"),
            Self::UnknownKeyId { kid } => write!(f, "no key {kid:?} in the issuer's key set"),
            Self::KeyMismatch { kid, alg } => write!(f, "key {kid:?} is not a key for {alg}"),
            Self::BadSignature => f.write_str("signature does not verify"),
            Self::Expired => f.write_str("expired"),
            Self::NotYetValid => f.write_str("not yet valid (nbf)"),
            Self::WrongIssuer => f.write_str("wrong issuer"),
            Self::WrongAudience => f.write_str("wrong audience"),
            Self::MissingClaim { claim } => write!(f, "no {claim} claim"),
            Self::InvalidClaim { claim } => write!(f, "invalid {claim} claim"),
        }
    }
}

/// Why [`JwtVerifier::verify`] did not accept a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is refused: the client's fault (401 when missing, 403 otherwise).
    #[error("token refused: {0}")]
    Refused(Refusal),
    /// The issuer's keys could not be had, so the token could not be judged: not the client's
    /// fault (500).
    #[error("token not checked: the issuer's keys are unavailable")]
    Unavailable(#[source] Error),
}

/// A token that passed: its subject and all of its claims.
#[derive(Clone)]
#[non_exhaustive]
pub struct Verified {
    /// `sub`: the user, a valid [`UserId`].
    pub subject: String,
    /// Every claim of the payload.
    pub claims: Map<String, Value>,
    /// The `kid` of the key that signed it.
    pub key_id: String,
    /// The algorithm it was signed with.
    pub algorithm: Algorithm,
}

impl fmt::Debug for Verified {
    /// The subject, key and algorithm, and the claims' names only (their values may be personal
    /// data).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("subject", &self.subject)
            .field("key_id", &self.key_id)
            .field("algorithm", &self.algorithm)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Default)]
struct RefreshState {
    last_attempt: Option<SystemTime>,
    last_failure: Option<String>,
}

/// Verifies JWTs of one issuer against its key set. Build it once per process (in `main`,
/// before the Lambda runtime loop): the keys it fetched stay cached across invocations.
///
/// The key set is fetched on the first token, and again when a token names a `kid` not in
/// the cache (the issuer rotated its keys) — at most once per
/// [`min_refetch_interval`](JwtConfig::min_refetch_interval); concurrent callers wait for one
/// fetch. A refetch replaces the cache: keys the issuer dropped stop being trusted. A cache
/// older than [`max_key_age`](JwtConfig::max_key_age) is refetched too (and kept, should that
/// fail).
pub struct JwtVerifier {
    config: JwtConfig,
    source: Arc<dyn JwksSource>,
    clock: Arc<dyn Clock>,
    keys: RwLock<Arc<KeyTable>>,
    refresh: tokio::sync::Mutex<RefreshState>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.config.issuer)
            .field("audiences", &self.config.audiences)
            .field("source", &self.source)
            .field("keys", &*self.table())
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for `config`, fetching keys over HTTPS ([`HttpJwks`]).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a configuration that would weaken the check (no audience, no
    /// algorithm, a leeway over [`MAX_LEEWAY`](super::MAX_LEEWAY), a zero limit) or a JWKS URL
    /// or issuer that is not `https://`.
    pub fn new(config: JwtConfig) -> Result<Self> {
        let source = Arc::new(HttpJwks::new(&config)?);
        Self::with_source(config, source)
    }

    /// [`new`](Self::new) on [`JwtConfig::from_env`].
    ///
    /// # Errors
    ///
    /// As both.
    pub fn from_env() -> Result<Self> {
        Self::new(JwtConfig::from_env()?)
    }

    /// A verifier for `config` that gets its keys from `source`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] as for [`new`](Self::new).
    pub fn with_source(config: JwtConfig, source: Arc<dyn JwksSource>) -> Result<Self> {
        config.validate()?;
        // jsonwebtoken picks its crypto provider from its features; should another crate in
        // the build turn on its second provider, pick aws-lc-rs here rather than panic later.
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        }
        Ok(Self {
            config,
            source,
            clock: Arc::new(SystemClock),
            keys: RwLock::new(Arc::new(KeyTable::default())),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        })
    }

    /// Reads "now" (token times and the refetch interval) from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// The token in `request`, from the first [`TokenSource`] that has one (a header's
    /// `Bearer ` prefix taken off); `None` when none has.
    pub fn token<'a>(&self, request: &'a ConnectEvent) -> Option<&'a str> {
        self.config.token_sources.iter().find_map(|source| {
            let value = match source {
                TokenSource::Query(name) => request.query(name),
                TokenSource::Header(name) => request.header(name).map(strip_bearer),
            }?
            .trim();
            (!value.is_empty()).then_some(value)
        })
    }

    /// Checks `token`: size, header (`alg` accepted, `kid` known, key fits `alg`), signature,
    /// then `iss`, `aud`, `exp`, `nbf` (with the leeway) and `sub`. Every refusal is logged
    /// with its reason — an ordinary expiry at INFO, the rest at WARN — and never the token.
    ///
    /// # Errors
    ///
    /// [`VerifyError::Refused`] with the reason; [`VerifyError::Unavailable`] when the key set
    /// was needed and could not be fetched (logged at ERROR).
    pub async fn verify(&self, token: &str) -> std::result::Result<Verified, VerifyError> {
        let outcome = self.check(token).await;
        match &outcome {
            Ok(verified) => tracing::debug!(
                subject = %verified.subject,
                kid = %verified.key_id,
                "JWT verified"
            ),
            // Expiry is what every client with an old token meets; WARN is kept for what may
            // be an attack or a misconfiguration.
            Err(VerifyError::Refused(reason @ Refusal::Expired)) => {
                tracing::info!(%reason, "JWT refused");
            }
            Err(VerifyError::Refused(reason)) => tracing::warn!(%reason, "JWT refused"),
            Err(VerifyError::Unavailable(error)) => {
                tracing::error!(error = %error.chain(), "JWT not checked: no keys");
            }
        }
        outcome
    }

    async fn check(&self, token: &str) -> std::result::Result<Verified, VerifyError> {
        let refused = |r| Err(VerifyError::Refused(r));
        let limit = self.config.max_token_bytes;
        if token.len() > limit {
            return refused(Refusal::TooLarge {
                size: token.len(),
                limit,
            });
        }
        let header = match read_header(token) {
            Ok(header) => header,
            Err(what) => return refused(Refusal::Malformed { what }),
        };
        let Some(alg) =
            Algorithm::from_name(&header.alg).filter(|a| self.config.algorithms.contains(a))
        else {
            return refused(Refusal::AlgorithmNotAllowed { alg: header.alg });
        };
        let Some(kid) = header.kid else {
            return refused(Refusal::MissingKeyId);
        };
        let key = self.key(&kid).await?;
        if !key.algorithms.contains(&alg) {
            return refused(Refusal::KeyMismatch { kid, alg });
        }

        // Claims are checked below with the crate's clock; jsonwebtoken checks the signature
        // with exactly `alg` (its own header parse must agree).
        let mut validation = jsonwebtoken::Validation::new(alg.to_jsonwebtoken());
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims =
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation) {
                Ok(data) => data.claims,
                Err(error) => {
                    return refused(match error.kind() {
                        ErrorKind::InvalidSignature => Refusal::BadSignature,
                        ErrorKind::InvalidAlgorithm
                        | ErrorKind::InvalidRsaKey(_)
                        | ErrorKind::InvalidEcdsaKey
                        | ErrorKind::InvalidEddsaKey
                        | ErrorKind::InvalidKeyFormat => Refusal::KeyMismatch { kid, alg },
                        _ => Refusal::Malformed {
                            what: "signature or payload is not base64url JSON",
                        },
                    });
                }
            };
        let subject = self.check_claims(&claims).map_err(VerifyError::Refused)?;
        Ok(Verified {
            subject,
            claims,
            key_id: kid,
            algorithm: alg,
        })
    }

    /// The registered claims of a signature-checked payload; the subject when they pass.
    fn check_claims(&self, claims: &Map<String, Value>) -> std::result::Result<String, Refusal> {
        match claims.get("iss") {
            None => return Err(Refusal::MissingClaim { claim: "iss" }),
            Some(Value::String(iss)) if *iss == self.config.issuer => {}
            Some(_) => return Err(Refusal::WrongIssuer),
        }
        let now = self
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        let leeway = self.config.leeway.as_secs_f64();
        match claims.get("exp") {
            None => return Err(Refusal::MissingClaim { claim: "exp" }),
            Some(exp) => match exp.as_f64() {
                Some(exp) if now > exp + leeway => return Err(Refusal::Expired),
                Some(_) => {}
                None => return Err(Refusal::InvalidClaim { claim: "exp" }),
            },
        }
        if let Some(nbf) = claims.get("nbf") {
            match nbf.as_f64() {
                Some(nbf) if nbf > now + leeway => return Err(Refusal::NotYetValid),
                Some(_) => {}
                None => return Err(Refusal::InvalidClaim { claim: "nbf" }),
            }
        }
        let accepted = |v: &Value| {
            v.as_str()
                .is_some_and(|a| self.config.audiences.iter().any(|x| x == a))
        };
        match claims.get("aud") {
            Some(Value::Array(list)) if list.iter().any(accepted) => {}
            Some(aud @ Value::String(_)) if accepted(aud) => {}
            Some(_) => return Err(Refusal::WrongAudience),
            None if self.config.accept_client_id => match claims.get("client_id") {
                Some(id) if accepted(id) => {}
                Some(_) => return Err(Refusal::WrongAudience),
                None => return Err(Refusal::MissingClaim { claim: "aud" }),
            },
            None => return Err(Refusal::MissingClaim { claim: "aud" }),
        }
        match claims.get("sub") {
            None => Err(Refusal::MissingClaim { claim: "sub" }),
            Some(Value::String(sub)) if UserId::new(sub.as_str()).is_ok() => Ok(sub.clone()),
            Some(_) => Err(Refusal::InvalidClaim { claim: "sub" }),
        }
    }

    fn table(&self) -> Arc<KeyTable> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The key `kid`, from the cache or, when it is not there or the cache is older than
    /// [`max_key_age`](JwtConfig::max_key_age), from a refetch (rate-limited, one at a time).
    async fn key(&self, kid: &str) -> std::result::Result<Arc<Key>, VerifyError> {
        if let Some(key) = self.fresh_key(kid) {
            return Ok(key);
        }
        let mut state = self.refresh.lock().await;
        // Whoever held the lock before may have fetched the key this caller waits for.
        if let Some(key) = self.fresh_key(kid) {
            return Ok(key);
        }
        // A stale cache still serves, when no fetch is allowed or the fetch fails.
        let stale = self.table().keys.get(kid).cloned();
        let unknown = || {
            VerifyError::Refused(Refusal::UnknownKeyId {
                kid: kid.to_owned(),
            })
        };
        let now = self.clock.now();
        if let Some(last) = state.last_attempt {
            let since = now.duration_since(last).unwrap_or(Duration::ZERO);
            if since < self.config.min_refetch_interval {
                if let Some(key) = stale {
                    return Ok(key);
                }
                if let Some(failure) = &state.last_failure
                    && self.table().keys.is_empty()
                {
                    return Err(VerifyError::Unavailable(Error::Jwks {
                        uri: self.source.to_string(),
                        reason: format!(
                            "no keys; not fetched again within {:?} of the last failure ({failure})",
                            self.config.min_refetch_interval
                        )
                        .into(),
                        source: None,
                    }));
                }
                return Err(unknown());
            }
        }
        state.last_attempt = Some(now);
        let fetched = match self.source.fetch().await {
            Ok(document) => {
                KeyTable::from_document(&document, &self.config.algorithms, self.config.max_keys)
                    .map_err(|reason| Error::Jwks {
                        uri: self.source.to_string(),
                        reason: reason.into(),
                        source: None,
                    })
            }
            Err(error) => Err(error),
        };
        let mut table = match fetched {
            Ok(table) => table,
            Err(error) => {
                state.last_failure = Some(ErrorChain::new(&error).to_string());
                if let Some(key) = stale {
                    tracing::warn!(
                        error = %error.chain(),
                        "JWKS refetch failed; the cached keys serve until the next attempt"
                    );
                    return Ok(key);
                }
                return Err(VerifyError::Unavailable(error));
            }
        };
        state.last_failure = None;
        table.fetched_at = Some(now);
        tracing::info!(keys = ?table, "JWKS fetched");
        let found = table.keys.get(kid).cloned();
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
        found.ok_or_else(unknown)
    }

    /// `kid` from the cache, unless the cache is older than `max_key_age`.
    fn fresh_key(&self, kid: &str) -> Option<Arc<Key>> {
        let table = self.table();
        let age = table.fetched_at.map(|at| {
            self.clock
                .now()
                .duration_since(at)
                .unwrap_or(Duration::ZERO)
        });
        match age {
            Some(age) if age < self.config.max_key_age => table.keys.get(kid).cloned(),
            _ => None,
        }
    }
}

struct Header {
    alg: String,
    kid: Option<String>,
}

/// The parts of the header the key lookup needs, read before any key is touched.
fn read_header(token: &str) -> std::result::Result<Header, &'static str> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not three dot-separated parts");
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| "header is not base64url")?;
    let Ok(Value::Object(header)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err("header is not a JSON object");
    };
    if header.contains_key("crit") {
        return Err("critical header extensions (crit) are not supported");
    }
    let Some(Value::String(alg)) = header.get("alg") else {
        return Err("header has no alg");
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("kid is not a string"),
    };
    Ok(Header {
        alg: alg.clone(),
        kid,
    })
}

fn strip_bearer(value: &str) -> &str {
    let value = value.trim();
    match value.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => &value[7..],
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_prefix_is_taken_off_in_any_case() {
        assert_eq!(strip_bearer("Bearer abc"), "abc");
        assert_eq!(strip_bearer("bearer abc"), "abc");
        assert_eq!(strip_bearer("abc"), "abc");
        assert_eq!(strip_bearer("Bear"), "Bear");
    }

    #[test]
    fn header_needs_three_parts_alg_and_no_crit() {
        let enc = |v: &str| URL_SAFE_NO_PAD.encode(v);
        assert!(read_header("a.b").is_err());
        assert!(read_header("a.b.c.d").is_err());
        assert!(read_header(&format!("{}.e30.", enc(r#"{"typ":"JWT"}"#))).is_err());
        assert!(
            read_header(&format!(
                "{}.e30.",
                enc(r#"{"alg":"RS256","crit":["b64"]}"#)
            ))
            .is_err()
        );
        let h = read_header(&format!("{}.e30.", enc(r#"{"alg":"none"}"#))).unwrap();
        assert_eq!((h.alg.as_str(), h.kid), ("none", None));
    }
}
