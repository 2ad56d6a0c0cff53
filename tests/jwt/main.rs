//! JWT verification for the `$connect` authorizer (feature `jwt`): keys generated here, the
//! discovery document and the JWKS served on loopback by [`server::Issuer`] and fetched by the
//! real HTTP client; time from a `ManualClock`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/child.rs"]
mod child;
mod env;
mod keys;
#[path = "../presence/logs.rs"]
mod logs;
mod server;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use futures_util::future::join_all;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use stateless_ws::Error;
use stateless_ws::clock::ManualClock;
use stateless_ws::jwt::{self, JwtConfig, JwtVerifier, Refusal, VerifyError};
use stateless_ws::lambda::authorizer::{AuthorizerRequest, Decision};

use keys::TestKey;
use logs::LogCapture;
use server::Issuer;

const AUDIENCE: &str = "chat-app-client";
/// The tests' "now": 2027-01-15T08:00:00Z.
const NOW: u64 = 1_799_999_200;

fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(NOW))
}

fn config(issuer: &Issuer) -> JwtConfig {
    let mut config = JwtConfig::new(issuer.url.clone(), [AUDIENCE]);
    config.claims = ["email", "cognito:groups", "email_verified", "age", "absent"]
        .map(String::from)
        .to_vec();
    config
}

fn verifier(config: JwtConfig, clock: &ManualClock) -> JwtVerifier {
    JwtVerifier::new(config).unwrap().with_clock(clock.clone())
}

/// The claims of a valid ID token of `alice`, issued now for ten minutes.
fn claims(issuer: &Issuer) -> Value {
    json!({
        "iss": issuer.url,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": NOW,
        "exp": NOW + 600,
        "email": "alice@example.com",
        "cognito:groups": ["admins", "ops"],
        "email_verified": true,
        "age": 42,
        "address": {"country": "FR"}
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn request(query: Value, headers: Value) -> AuthorizerRequest {
    AuthorizerRequest::try_from(json!({
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/$connect",
        "queryStringParameters": query,
        "headers": headers,
        "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "C1="}
    }))
    .unwrap()
}

fn by_query(token: &str) -> AuthorizerRequest {
    request(json!({ "token": token }), Value::Null)
}

/// Every test of this binary logs into a capture of its own: `tracing` caches per call site
/// whether anyone listens, and a test thread without a subscriber racing the one that asserts
/// on the log could have a call site cached as unheard.
fn capture() -> (LogCapture, tracing::subscriber::DefaultGuard) {
    let capture = LogCapture::default();
    let guard = tracing::subscriber::set_default(capture.subscriber());
    (capture, guard)
}

async fn refusal(verifier: &JwtVerifier, token: &str) -> Refusal {
    match verifier.verify(token).await {
        Err(VerifyError::Refused(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn valid_tokens_of_each_algorithm_are_allowed_as_their_subject_with_the_claims() {
    let (_capture, _guard) = capture();
    let (rsa, ec, ed) = (keys::rsa("rsa-1"), keys::ec("ec-1"), keys::ed("ed-1"));
    let issuer = Issuer::start(vec![rsa.jwk.clone(), ec.jwk.clone(), ed.jwk.clone()]).await;
    let clock = clock();
    let verifier = verifier(config(&issuer), &clock);

    for key in [&rsa, &ec, &ed] {
        let token = key.sign(&claims(&issuer));
        let verified = verifier.verify(&token).await.unwrap();
        assert_eq!(
            (verified.subject.as_str(), verified.key_id.as_str()),
            ("alice", key.kid.as_str())
        );
        let decision = jwt::authorize(&verifier, &by_query(&token)).await.unwrap();
        let Decision::Allow {
            principal_id,
            context,
        } = &decision
        else {
            panic!("{:?}: {decision:?}", key.alg);
        };
        assert_eq!(principal_id, "alice");
        assert_eq!(
            Value::Object(context.clone()),
            json!({
                "email": "alice@example.com",
                "cognito:groups": "admins,ops",
                "email_verified": true,
                "age": 42
            }),
            "scalars as they are, lists joined, objects and absent claims left out"
        );
    }

    // The Authorization header, Bearer prefix taken off.
    let token = rsa.sign(&claims(&issuer));
    let by_header = request(
        Value::Null,
        json!({ "Authorization": format!("Bearer {token}") }),
    );
    let decision = jwt::authorize(&verifier, &by_header).await.unwrap();
    assert!(matches!(decision, Decision::Allow { .. }), "{decision:?}");

    // Within the leeway (60 s) an expired token still passes.
    let late = rsa.sign(&with(claims(&issuer), "exp", json!(NOW - 30)));
    assert!(verifier.verify(&late).await.is_ok());

    // Discovery once, the key set once: cached for every later token.
    assert_eq!((issuer.discovery_hits(), issuer.jwks_hits()), (1, 1));
}

#[tokio::test]
async fn refused_tokens_are_denied_with_the_reason_logged_and_nothing_handed_on() {
    let (capture, _guard) = capture();
    let (rsa, ec) = (keys::rsa("rsa-1"), keys::ec("ec-1"));
    let issuer = Issuer::start(vec![rsa.jwk.clone(), ec.jwk.clone()]).await;
    let clock = clock();
    let verifier = verifier(config(&issuer), &clock);
    let good = claims(&issuer);
    assert!(verifier.verify(&rsa.sign(&good)).await.is_ok());

    let stranger = keys::rsa("rsa-unknown");
    let valid = rsa.sign(&good);
    let hs256_with_the_public_key = {
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("rsa-1".into());
        jsonwebtoken::encode(
            &header,
            &good,
            &EncodingKey::from_secret(&rsa.public_bytes).unwrap(),
        )
        .unwrap()
    };
    let es256_on_the_rsa_key = TestKey {
        kid: "rsa-1".into(),
        ..keys::ec("x")
    }
    .sign(&good);
    let cases: Vec<(&str, String, Refusal)> = vec![
        (
            "expired",
            rsa.sign(&with(good.clone(), "exp", json!(NOW - 61))),
            Refusal::Expired,
        ),
        (
            "not yet valid",
            rsa.sign(&with(good.clone(), "nbf", json!(NOW + 600))),
            Refusal::NotYetValid,
        ),
        (
            "wrong issuer",
            rsa.sign(&with(good.clone(), "iss", json!("https://evil.example"))),
            Refusal::WrongIssuer,
        ),
        (
            "wrong audience",
            rsa.sign(&with(good.clone(), "aud", json!(["another-app"]))),
            Refusal::WrongAudience,
        ),
        (
            "unknown kid",
            stranger.sign(&good),
            Refusal::UnknownKeyId {
                kid: "rsa-unknown".into(),
            },
        ),
        (
            "alg none",
            keys::forge(&json!({"alg": "none", "kid": "rsa-1"}), &good, b""),
            Refusal::AlgorithmNotAllowed { alg: "none".into() },
        ),
        (
            "HS256 keyed with the RSA public key",
            hs256_with_the_public_key,
            Refusal::AlgorithmNotAllowed {
                alg: "HS256".into(),
            },
        ),
        (
            "ES256 naming the RSA key",
            es256_on_the_rsa_key,
            Refusal::KeyMismatch {
                kid: "rsa-1".into(),
                alg: jwt::Algorithm::ES256,
            },
        ),
        (
            "tampered payload",
            keys::with_payload(&valid, &with(good.clone(), "sub", json!("mallory"))),
            Refusal::BadSignature,
        ),
        (
            "oversized",
            rsa.sign(&with(good.clone(), "pad", json!("x".repeat(9 * 1024)))),
            Refusal::TooLarge {
                size: 0,
                limit: 8 * 1024,
            },
        ),
        (
            "no kid",
            keys::forge(&json!({"alg": "RS256"}), &good, b"sig"),
            Refusal::MissingKeyId,
        ),
        (
            "no sub",
            rsa.sign(&with(good.clone(), "sub", Value::Null)),
            Refusal::InvalidClaim { claim: "sub" },
        ),
        (
            "not a JWT",
            "not-a-jwt".to_owned(),
            Refusal::Malformed {
                what: "not three dot-separated parts",
            },
        ),
    ];
    for (name, token, expected) in &cases {
        let mut got = refusal(&verifier, token).await;
        if let Refusal::TooLarge { size, .. } = &mut got {
            assert!(*size > 8 * 1024, "{name}");
            *size = 0;
        }
        assert_eq!(&got, expected, "{name}");
        let request = by_query(token);
        let decision = jwt::authorize(&verifier, &request).await.unwrap();
        assert_eq!(decision, Decision::deny("anonymous"), "{name}");
        let answer = decision.into_response(&request).unwrap();
        assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Deny");
        assert!(answer.get("context").is_none(), "{name}: nothing handed on");
    }
    let missing = request(json!({ "other": "x" }), Value::Null);
    let decision = jwt::authorize(&verifier, &missing).await.unwrap();
    assert_eq!(decision, Decision::unauthorized());
    assert!(decision.into_response(&missing).is_err(), "401: the error");

    let log = capture.text();
    for (name, token, _) in &cases {
        assert!(!log.contains(token.as_str()), "{name}: token logged");
    }
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains("JWT refused") && l.contains(needle))
            .unwrap_or_else(|| panic!("no refusal logged with {needle:?}:\n{log}"))
            .to_owned()
    };
    assert!(
        line("reason=expired").contains(" INFO "),
        "ordinary expiry: INFO"
    );
    for reason in [
        "not yet valid",
        "wrong issuer",
        "wrong audience",
        "no key \"rsa-unknown\"",
        "algorithm \"none\"",
        "algorithm \"HS256\"",
        "is not a key for ES256",
        "signature does not verify",
        "over the 8192-byte limit",
        "no kid",
        "invalid sub claim",
        "malformed token",
    ] {
        assert!(line(reason).contains(" WARN "), "{reason}");
    }
    assert!(line("reason=no token").contains(" INFO "));
    // The unknown kid came within a minute of the first fetch: no refetch for it.
    assert_eq!(issuer.jwks_hits(), 1);
}

#[tokio::test]
async fn a_new_kid_is_picked_up_with_exactly_one_fetch_and_a_dropped_key_stops_counting() {
    let (_capture, _guard) = capture();
    let (old, new) = (keys::rsa("2026-12"), keys::ec("2027-01"));
    let issuer = Issuer::start(vec![old.jwk.clone()]).await;
    let clock = clock();
    let verifier = verifier(config(&issuer), &clock);
    assert!(verifier.verify(&old.sign(&claims(&issuer))).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 1);

    // The issuer publishes a new key and, later, signs with it.
    issuer.set_keys(vec![old.jwk.clone(), new.jwk.clone()]);
    clock.advance(Duration::from_secs(600));
    let later = with(claims(&issuer), "exp", json!(NOW + 7200));
    assert!(verifier.verify(&new.sign(&later)).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 2, "one fetch for the new kid");
    for key in [&new, &old, &new] {
        assert!(verifier.verify(&key.sign(&later)).await.is_ok());
    }
    assert_eq!(issuer.jwks_hits(), 2, "both keys cached");

    // The old key is withdrawn; the next refetch (for some unknown kid) forgets it.
    issuer.set_keys(vec![new.jwk.clone()]);
    clock.advance(Duration::from_secs(61));
    let unknown = refusal(&verifier, &keys::ed("2027-02").sign(&later)).await;
    assert!(
        matches!(unknown, Refusal::UnknownKeyId { .. }),
        "{unknown:?}"
    );
    assert_eq!(issuer.jwks_hits(), 3);
    assert_eq!(
        refusal(&verifier, &old.sign(&later)).await,
        Refusal::UnknownKeyId {
            kid: "2026-12".into()
        }
    );
    assert!(verifier.verify(&new.sign(&later)).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 3, "no fetch: within the interval");
}

#[tokio::test]
async fn keys_older_than_max_key_age_are_fetched_again_and_kept_when_that_fails() {
    let (capture, _guard) = capture();
    let (old, new) = (keys::rsa("old"), keys::ed("new"));
    let issuer = Issuer::start(vec![old.jwk.clone(), new.jwk.clone()]).await;
    let clock = clock();
    let verifier = verifier(config(&issuer), &clock);
    let lasting = with(claims(&issuer), "exp", json!(NOW + 86_400));
    assert!(verifier.verify(&old.sign(&lasting)).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 1);

    // The issuer withdraws `old`; an hour on, the cache is stale and fetched again.
    issuer.set_keys(vec![new.jwk.clone()]);
    clock.advance(Duration::from_secs(3599));
    assert!(
        verifier.verify(&old.sign(&lasting)).await.is_ok(),
        "not stale yet"
    );
    assert_eq!(issuer.jwks_hits(), 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        refusal(&verifier, &old.sign(&lasting)).await,
        Refusal::UnknownKeyId { kid: "old".into() }
    );
    assert_eq!(issuer.jwks_hits(), 2);

    // Stale again while the issuer fails: the cached keys keep serving, one attempt per interval.
    issuer.set_failing(true);
    clock.advance(Duration::from_secs(3600));
    for _ in 0..3 {
        assert!(verifier.verify(&new.sign(&lasting)).await.is_ok());
    }
    assert_eq!(issuer.jwks_hits(), 3);
    assert!(capture.text().contains("JWKS refetch failed"));
    issuer.set_failing(false);
    clock.advance(Duration::from_secs(61));
    assert!(verifier.verify(&new.sign(&lasting)).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 4);
    assert!(verifier.verify(&new.sign(&lasting)).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 4, "fresh again");
}

#[tokio::test]
async fn a_flood_of_unknown_kids_refetches_at_most_once_per_interval() {
    let (_capture, _guard) = capture();
    let rsa = keys::rsa("rsa-1");
    let issuer = Issuer::start(vec![rsa.jwk.clone()]).await;
    let clock = clock();
    let verifier = Arc::new(verifier(config(&issuer), &clock));
    assert!(verifier.verify(&rsa.sign(&claims(&issuer))).await.is_ok());
    let good = claims(&issuer);
    let flood = |round: usize| {
        let tokens: Vec<String> = (0..50)
            .map(|i| {
                TestKey {
                    kid: format!("made-up-{round}-{i}"),
                    ..keys::ec("x")
                }
                .sign(&good)
            })
            .collect();
        let verifier = verifier.clone();
        async move {
            let results = join_all(tokens.iter().map(|t| verifier.verify(t))).await;
            for result in results {
                assert!(
                    matches!(
                        result,
                        Err(VerifyError::Refused(Refusal::UnknownKeyId { .. }))
                    ),
                    "{result:?}"
                );
            }
        }
    };
    // The first fetch was just now: 50 concurrent unknown kids fetch nothing.
    flood(0).await;
    assert_eq!(issuer.jwks_hits(), 1);
    clock.advance(Duration::from_secs(61));
    flood(1).await;
    assert_eq!(
        issuer.jwks_hits(),
        2,
        "one fetch for 50 concurrent unknown kids"
    );
    flood(2).await;
    clock.advance(Duration::from_secs(30));
    flood(3).await;
    assert_eq!(issuer.jwks_hits(), 2, "none within the interval");
    clock.advance(Duration::from_secs(31));
    flood(4).await;
    assert_eq!(issuer.jwks_hits(), 3, "one more after it");
}

#[tokio::test]
async fn concurrent_first_tokens_share_one_discovery_and_one_fetch() {
    let (_capture, _guard) = capture();
    let rsa = keys::rsa("rsa-1");
    let issuer = Issuer::start(vec![rsa.jwk.clone()]).await;
    let clock = clock();
    let verifier = verifier(config(&issuer), &clock);
    let tokens: Vec<String> = (0..20).map(|_| rsa.sign(&claims(&issuer))).collect();
    for result in join_all(tokens.iter().map(|t| verifier.verify(t))).await {
        assert!(result.is_ok(), "{result:?}");
    }
    assert_eq!((issuer.discovery_hits(), issuer.jwks_hits()), (1, 1));
}

#[tokio::test]
async fn cognito_access_tokens_pass_on_client_id_only_when_asked() {
    let (_capture, _guard) = capture();
    let rsa = keys::rsa("rsa-1");
    let issuer = Issuer::start(vec![rsa.jwk.clone()]).await;
    let clock = clock();
    let mut access = claims(&issuer);
    access.as_object_mut().unwrap().remove("aud");
    access["client_id"] = json!(AUDIENCE);
    access["token_use"] = json!("access");
    let token = rsa.sign(&access);

    let strict = verifier(config(&issuer), &clock);
    assert_eq!(
        refusal(&strict, &token).await,
        Refusal::MissingClaim { claim: "aud" }
    );
    let mut config = config(&issuer);
    config.accept_client_id = true;
    let lenient = verifier(config, &clock);
    assert_eq!(lenient.verify(&token).await.unwrap().subject, "alice");
    let other = rsa.sign(&with(access, "client_id", json!("another-app")));
    assert_eq!(refusal(&lenient, &other).await, Refusal::WrongAudience);
}

#[tokio::test]
async fn a_key_set_that_cannot_be_had_is_an_error_not_a_refusal() {
    let (_capture, _guard) = capture();
    let rsa = keys::rsa("rsa-1");
    let issuer = Issuer::start(vec![rsa.jwk.clone()]).await;
    let clock = clock();
    let token = rsa.sign(&claims(&issuer));
    for (path, reason) in [("/nowhere", "404"), ("/big", "over 262144 bytes")] {
        let mut config = config(&issuer);
        config.jwks_uri = Some(format!("{}{path}", issuer.url));
        let verifier = verifier(config, &clock);
        let error = jwt::authorize(&verifier, &by_query(&token))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Jwks { .. }), "{error:?}");
        assert!(error.to_string().contains(reason), "{error}");
        // Not fetched again at once: still an error, from the remembered failure.
        let again = jwt::authorize(&verifier, &by_query(&token))
            .await
            .unwrap_err();
        assert!(again.to_string().contains("not fetched again"), "{again}");
    }
    // An issuer that accepts and never answers: the fetch gives up after `fetch_timeout`.
    let mut hanging = config(&issuer);
    hanging.jwks_uri = Some(format!("{}/hang", issuer.url));
    hanging.fetch_timeout = Duration::from_millis(200);
    let started = std::time::Instant::now();
    let error = jwt::authorize(&verifier(hanging, &clock), &by_query(&token))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no complete answer within 200ms"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = config(&issuer);
    config.jwks_uri = Some(format!("http://{}/keys", closed.local_addr().unwrap()));
    drop(closed);
    let error = verifier(config, &clock).verify(&token).await.unwrap_err();
    assert!(matches!(error, VerifyError::Unavailable(_)), "{error:?}");
}

#[test]
fn key_sets_come_over_https_or_from_loopback_only() {
    for (issuer, jwks) in [
        ("http://issuer.example.com", None),
        (
            "https://issuer.example.com",
            Some("http://keys.example.com/jwks"),
        ),
        ("https://issuer.example.com", Some("not a url")),
    ] {
        let mut config = JwtConfig::new(issuer, [AUDIENCE]);
        config.jwks_uri = jwks.map(String::from);
        let error = JwtVerifier::new(config).unwrap_err();
        assert!(matches!(error, Error::Config { .. }), "{error:?}");
    }
}

/// Keys from elsewhere: the verifier takes any `JwksSource` (here a fixed set, no HTTP).
#[tokio::test]
async fn an_injected_key_source_is_used_as_is() {
    let (_capture, _guard) = capture();
    #[derive(Debug)]
    struct Fixed(Value);
    impl std::fmt::Display for Fixed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("fixed keys")
        }
    }
    #[async_trait::async_trait]
    impl jwt::JwksSource for Fixed {
        async fn fetch(&self) -> stateless_ws::Result<Value> {
            Ok(self.0.clone())
        }
    }
    let ed = keys::ed("ed-1");
    let issuer = "https://issuer.example.com";
    let source: Arc<dyn jwt::JwksSource> = Arc::new(Fixed(json!({ "keys": [ed.jwk] })));
    let verifier = JwtVerifier::with_source(JwtConfig::new(issuer, [AUDIENCE]), source)
        .unwrap()
        .with_clock(clock());
    let claims = json!({"iss": issuer, "aud": AUDIENCE, "sub": "bob", "exp": NOW + 60});
    assert_eq!(
        verifier.verify(&ed.sign(&claims)).await.unwrap().subject,
        "bob"
    );
    let empty = JwtVerifier::with_source(
        JwtConfig::new(issuer, [AUDIENCE]),
        Arc::new(Fixed(json!({"no": "keys"}))),
    )
    .unwrap()
    .with_clock(clock());
    let Err(VerifyError::Unavailable(error)) = empty.verify(&ed.sign(&claims)).await else {
        panic!("a document without `keys` is an error");
    };
    assert_eq!(
        error.to_string(),
        "JWKS fixed keys: the document has no `keys` list"
    );
}
