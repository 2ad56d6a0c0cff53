//! Where the keys come from: [`JwksSource`], its HTTP implementation [`HttpJwks`] (OIDC
//! discovery, bounded fetches), and the key table the verifier looks `kid`s up in.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::Uri;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::body::Bytes;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use serde_json::Value;

use super::config::{Algorithm, JwtConfig};
use crate::error::{BoxError, Error, Result};

/// Where the verifier gets the issuer's JSON Web Key Set. [`HttpJwks`] fetches it over HTTPS;
/// a test or an application with keys of its own can hand in another. Its `Display` names
/// where the keys come from (a URL), for errors and logs.
#[async_trait::async_trait]
pub trait JwksSource: Send + Sync + fmt::Debug + fmt::Display + 'static {
    /// The current key set document, `{"keys": [JWK, …]}`.
    ///
    /// # Errors
    ///
    /// [`Error::Jwks`] when it cannot be had; the verifier answers such a failure as an error
    /// (500), not as a refusal of the token.
    async fn fetch(&self) -> Result<Value>;
}

type HttpClient = crate::http::HttpsClient<Empty<Bytes>>;

/// The key set over HTTP: from [`JwtConfig::jwks_uri`], or found once by OIDC discovery
/// (`{issuer}/.well-known/openid-configuration` → `jwks_uri`; the discovery document's `issuer`
/// must be the configured one).
///
/// `https://` only, trusting the system's root certificates; `http://` is accepted for a
/// loopback host (`127.0.0.0/8`, `::1`, `localhost`) only, for tests and local runs. Each
/// request is bounded: [`JwtConfig::fetch_timeout`] (5 s) for the whole answer,
/// [`JwtConfig::max_document_bytes`] (256 KiB) for its body; only a 200 counts; redirects are not
/// followed.
pub struct HttpJwks {
    issuer: String,
    jwks_uri: Mutex<Option<Uri>>,
    client: HttpClient,
    timeout: Duration,
    max_bytes: usize,
}

impl fmt::Debug for HttpJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpJwks")
            .field("issuer", &self.issuer)
            .field("jwks_uri", &self.resolved().map(|u| u.to_string()))
            .finish_non_exhaustive()
    }
}

impl fmt::Display for HttpJwks {
    /// The JWKS URL, or the discovery URL while the JWKS URL is not known yet.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.resolved() {
            Some(uri) => write!(f, "{uri}"),
            None => f.write_str(&discovery_url(&self.issuer)),
        }
    }
}

impl HttpJwks {
    /// The source `config` describes (its issuer, JWKS URL, timeout and size limit).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the JWKS URL or the issuer (used for discovery) is not an
    /// `https://` URL (or `http://` to a loopback host).
    pub fn new(config: &JwtConfig) -> Result<Self> {
        let jwks_uri = match &config.jwks_uri {
            Some(uri) => Some(checked_uri(uri, "the JWKS URI")?),
            None => {
                checked_uri(&discovery_url(&config.issuer), "the issuer")?;
                None
            }
        };
        Ok(Self {
            issuer: config.issuer.clone(),
            jwks_uri: Mutex::new(jwks_uri),
            client: crate::http::client("JWKS client", None)?,
            timeout: config.fetch_timeout,
            max_bytes: config.max_document_bytes,
        })
    }

    fn resolved(&self) -> Option<Uri> {
        self.jwks_uri
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The JWKS URL: configured, or found by discovery (once; a failed discovery is tried
    /// again on the next fetch).
    async fn jwks_uri(&self) -> Result<Uri> {
        if let Some(uri) = self.resolved() {
            return Ok(uri);
        }
        let url = discovery_url(&self.issuer);
        let discovery_uri = checked_uri(&url, "the issuer")?;
        let document = self.get_json(&discovery_uri).await?;
        let bad = |reason: String| Error::Jwks {
            uri: url.clone(),
            reason: reason.into(),
            source: None,
        };
        match document.get("issuer").and_then(Value::as_str) {
            Some(issuer) if issuer == self.issuer => {}
            other => {
                return Err(bad(format!(
                    "discovery names issuer {other:?}, not the configured {:?}",
                    self.issuer
                )));
            }
        }
        let Some(jwks) = document.get("jwks_uri").and_then(Value::as_str) else {
            return Err(bad("discovery document has no jwks_uri".to_owned()));
        };
        let uri = checked_uri(jwks, "the discovered jwks_uri").map_err(|e| bad(e.to_string()))?;
        *self.jwks_uri.lock().unwrap_or_else(PoisonError::into_inner) = Some(uri.clone());
        Ok(uri)
    }

    async fn get_json(&self, uri: &Uri) -> Result<Value> {
        let failed = |reason: String, source: Option<BoxError>| Error::Jwks {
            uri: uri.to_string(),
            reason: reason.into(),
            source,
        };
        let request = http::Request::get(uri.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| failed("cannot build the request".to_owned(), Some(e.into())))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| failed("request failed".to_owned(), Some(e.into())))?;
            if response.status() != http::StatusCode::OK {
                return Err(failed(format!("answered {}", response.status()), None));
            }
            let body = Limited::new(response.into_body(), self.max_bytes)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<LengthLimitError>().is_some() {
                        failed(format!("document over {} bytes", self.max_bytes), None)
                    } else {
                        failed("reading the answer failed".to_owned(), Some(e))
                    }
                })?
                .to_bytes();
            serde_json::from_slice::<Value>(&body)
                .map_err(|e| failed("answer is not JSON".to_owned(), Some(e.into())))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                failed(
                    format!("no complete answer within {:?}", self.timeout),
                    None,
                )
            })?
    }
}

#[async_trait::async_trait]
impl JwksSource for HttpJwks {
    async fn fetch(&self) -> Result<Value> {
        let uri = self.jwks_uri().await?;
        self.get_json(&uri).await
    }
}

fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// `text` as a URL the key set may come from: `https://`, or `http://` to a loopback host.
fn checked_uri(text: &str, what: &str) -> Result<Uri> {
    let uri: Uri = text
        .parse()
        .map_err(|e| Error::config(format!("{what} {text:?} is not a URL: {e}")))?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(uri),
        Some("http") if is_loopback(host) => Ok(uri),
        _ => Err(Error::config(format!(
            "{what} {text:?} must be an https:// URL (http:// only to a loopback host)"
        ))),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A verification key from the JWKS, with the algorithms it may be used with.
pub(super) struct Key {
    pub(super) algorithms: Vec<Algorithm>,
    pub(super) decoding: DecodingKey,
}

/// The usable signing keys of a JWKS by `kid`.
#[derive(Default)]
pub(super) struct KeyTable {
    pub(super) keys: HashMap<String, Arc<Key>>,
    /// When they were fetched (`None`: never).
    pub(super) fetched_at: Option<std::time::SystemTime>,
}

impl fmt::Debug for KeyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.keys.keys()).finish()
    }
}

impl KeyTable {
    /// The signing keys of `document` usable with `allowed` algorithms, at most `max_keys`.
    /// Keys that are not for signatures, have no `kid`, are symmetric (`oct`), of an unknown
    /// type or curve, or fit none of `allowed`, are left out (logged at DEBUG).
    pub(super) fn from_document(
        document: &Value,
        allowed: &[Algorithm],
        max_keys: usize,
    ) -> std::result::Result<Self, &'static str> {
        let Some(entries) = document.get("keys").and_then(Value::as_array) else {
            return Err("the document has no `keys` list");
        };
        let mut table = Self::default();
        for entry in entries {
            if table.keys.len() >= max_keys {
                tracing::warn!(max_keys, "JWKS: more keys than kept; the rest are ignored");
                break;
            }
            match usable_key(entry, allowed) {
                Ok((kid, key)) => {
                    table.keys.entry(kid).or_insert_with(|| Arc::new(key));
                }
                Err(reason) => tracing::debug!(
                    kid = ?entry.get("kid").and_then(|v| v.as_str()),
                    reason,
                    "JWKS: key left out"
                ),
            }
        }
        Ok(table)
    }
}

fn usable_key(
    entry: &Value,
    allowed: &[Algorithm],
) -> std::result::Result<(String, Key), &'static str> {
    let jwk: Jwk = serde_json::from_value(entry.clone()).map_err(|_| "not a JWK")?;
    let kid = jwk.common.key_id.clone().ok_or("no kid")?;
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return Err("not a signature key (`use`)"),
    }
    use Algorithm as A;
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {
            &[A::RS256, A::RS384, A::RS512, A::PS256, A::PS384, A::PS512]
        }
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[A::ES256],
            EllipticCurve::P384 => &[A::ES384],
            _ => return Err("unsupported EC curve"),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => &[A::EdDSA],
            _ => return Err("unsupported OKP curve"),
        },
        // A shared secret in a public key set is never a verification key here: accepting it
        // would let anyone who read the JWKS sign tokens.
        AlgorithmParameters::OctetKey(_) => return Err("symmetric key (`oct`)"),
        _ => return Err("unknown key type"),
    };
    let mut algorithms: Vec<Algorithm> = family
        .iter()
        .copied()
        .filter(|a| allowed.contains(a))
        .collect();
    if let Some(named) = jwk.common.key_algorithm {
        // The key's own `alg` pins it to that one algorithm.
        let named = Algorithm::from_name(&named.to_string());
        algorithms.retain(|a| Some(*a) == named);
    }
    if algorithms.is_empty() {
        return Err("fits no accepted algorithm");
    }
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| "unreadable key material")?;
    Ok((
        kid,
        Key {
            algorithms,
            decoding,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_https_or_loopback_http() {
        assert!(checked_uri("https://cognito-idp.eu-west-1.amazonaws.com/x", "u").is_ok());
        assert!(checked_uri("http://127.0.0.1:8080/jwks", "u").is_ok());
        assert!(checked_uri("http://127.9.9.9/jwks", "u").is_ok());
        assert!(checked_uri("http://localhost:1/jwks", "u").is_ok());
        assert!(checked_uri("http://[::1]:1/jwks", "u").is_ok());
        assert!(checked_uri("http://example.com/jwks", "u").is_err());
        assert!(checked_uri("http://10.0.0.1/jwks", "u").is_err());
        assert!(checked_uri("ftp://example.com/jwks", "u").is_err());
        assert!(checked_uri("not a url", "u").is_err());
    }

    #[test]
    fn discovery_url_is_under_the_issuer() {
        assert_eq!(
            discovery_url("https://tenant.auth0.com/"),
            "https://tenant.auth0.com/.well-known/openid-configuration"
        );
    }

    #[test]
    fn symmetric_encryption_and_kidless_keys_are_left_out() {
        let doc = json!({"keys": [
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "weird", "kid": "w"}
        ]});
        let all = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
        let table = KeyTable::from_document(&doc, &all, 10).unwrap();
        assert_eq!(table.keys.keys().collect::<Vec<_>>(), ["ed"]);
        let table = KeyTable::from_document(&doc, &[Algorithm::RS256], 10).unwrap();
        assert!(table.keys.is_empty());
        assert!(KeyTable::from_document(&json!({}), &all, 10).is_err());
    }
}
