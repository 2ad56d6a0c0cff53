//! Signing keys generated in the test (aws-lc-rs), their JWKs, and tokens signed with them.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A private key, the `kid` and `alg` it signs with, and its public JWK.
pub(crate) struct TestKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    pub(crate) encoding: EncodingKey,
    pub(crate) jwk: Value,
    /// The public key's bytes (RSA: the modulus), for the HS256 confusion attempt.
    pub(crate) public_bytes: Vec<u8>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RSA 2048, RS256.
pub(crate) fn rsa(kid: &str) -> TestKey {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let pkcs8 = pair.as_der().unwrap();
    let public = pair.public_key();
    let n = public.modulus().big_endian_without_leading_zero().to_vec();
    let e = public.exponent().big_endian_without_leading_zero().to_vec();
    TestKey {
        kid: kid.to_owned(),
        alg: Algorithm::RS256,
        // jsonwebtoken's aws-lc-rs signer reads PKCS#1 (RFC 8017) DER.
        encoding: EncodingKey::from_rsa_der(&pkcs1_of(pkcs8.as_ref())),
        jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(&n), "e": b64(&e)}),
        public_bytes: n,
    }
}

/// ECDSA P-256, ES256.
pub(crate) fn ec(kid: &str) -> TestKey {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref().to_vec(); // 0x04 || x || y
    TestKey {
        kid: kid.to_owned(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&point[1..33]), "y": b64(&point[33..])}),
        public_bytes: point,
    }
}

/// Ed25519, EdDSA.
pub(crate) fn ed(kid: &str) -> TestKey {
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let x = pair.public_key().as_ref().to_vec();
    TestKey {
        kid: kid.to_owned(),
        alg: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(&x)}),
        public_bytes: x,
    }
}

impl TestKey {
    /// `claims` signed with this key, `kid` and `alg` in the header.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// A token whose header and payload are `header` and `claims`, and whose signature is `sig`.
pub(crate) fn forge(header: &Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(sig)
    )
}

/// `token` with its payload replaced by `claims` (header and signature kept).
pub(crate) fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    )
}

/// The RSAPrivateKey inside a PKCS#8 PrivateKeyInfo: SEQUENCE { INTEGER version,
/// AlgorithmIdentifier, OCTET STRING { RSAPrivateKey } }.
fn pkcs1_of(pkcs8: &[u8]) -> Vec<u8> {
    fn length(der: &[u8], at: &mut usize) -> usize {
        let first = der[*at];
        *at += 1;
        if first < 0x80 {
            return usize::from(first);
        }
        let mut len = 0;
        for _ in 0..(first & 0x7f) {
            len = (len << 8) | usize::from(der[*at]);
            *at += 1;
        }
        len
    }
    let mut at = 0;
    assert_eq!(pkcs8[at], 0x30);
    at += 1;
    length(pkcs8, &mut at);
    for tag in [0x02, 0x30] {
        assert_eq!(pkcs8[at], tag);
        at += 1;
        let skip = length(pkcs8, &mut at);
        at += skip;
    }
    assert_eq!(pkcs8[at], 0x04);
    at += 1;
    let len = length(pkcs8, &mut at);
    pkcs8[at..at + len].to_vec()
}
