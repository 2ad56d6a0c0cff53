//! `JwtConfig::from_env` reads `JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_JWKS_URI`, `JWT_CLAIMS`,
//! `JWT_TOKEN_SOURCE` and `JWT_ACCEPT_CLIENT_ID`. The environment cannot be changed safely inside
//! a threaded test binary (and this crate forbids `unsafe`), so each case runs this binary again
//! as a child with the variables set and the case's name in `CHILD_CASE`; the child checks, the
//! parent reads its exit status.

use stateless_ws::Error;
use stateless_ws::jwt::{JwtConfig, TokenSource};

const CHILD_CASE: &str = "STATELESS_WS_ENV_TEST_CASE";
const TEST_NAME: &str = "env::from_env_reads_issuer_audiences_claims_and_sources";
const VARS: [&str; 6] = [
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_JWKS_URI",
    "JWT_CLAIMS",
    "JWT_TOKEN_SOURCE",
    "JWT_ACCEPT_CLIENT_ID",
];

fn config_error(built: Result<JwtConfig, Error>) -> String {
    let Err(Error::Config { message }) = built else {
        panic!("expected a config error, got {built:?}");
    };
    message
}

/// Runs in the child: checks `case` against the variables the parent set.
fn child(case: &str) {
    let built = JwtConfig::from_env();
    match case {
        "everything" => {
            let config = built.expect("valid variables build");
            assert_eq!(
                config.issuer,
                "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_x"
            );
            assert_eq!(config.audiences, ["app-1", "app-2"]);
            assert_eq!(
                config.jwks_uri.as_deref(),
                Some("https://keys.example.com/jwks")
            );
            assert_eq!(config.claims, ["email", "cognito:groups"]);
            assert_eq!(
                config.token_sources,
                [TokenSource::Header("Authorization".into())]
            );
            assert!(config.accept_client_id);
        }
        "defaults" => {
            let config = built.expect("issuer and audience alone build");
            assert_eq!(config.jwks_uri, None);
            assert!(config.claims.is_empty());
            assert_eq!(
                config.token_sources,
                [
                    TokenSource::Query("token".into()),
                    TokenSource::Header("Authorization".into())
                ]
            );
            assert!(!config.accept_client_id);
        }
        "no_issuer" => assert!(config_error(built).contains("JWT_ISSUER")),
        "no_audience" => assert!(config_error(built).contains("JWT_AUDIENCE")),
        "bad_source" => assert!(config_error(built).contains("JWT_TOKEN_SOURCE")),
        "bad_bool" => assert!(config_error(built).contains("JWT_ACCEPT_CLIENT_ID")),
        other => panic!("unknown case {other}"),
    }
}

#[test]
fn from_env_reads_issuer_audiences_claims_and_sources() {
    if let Ok(case) = std::env::var(CHILD_CASE) {
        child(&case);
        return;
    }
    let base = [
        (
            "JWT_ISSUER",
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_x",
        ),
        ("JWT_AUDIENCE", "app-1"),
    ];
    let cases: [(&str, Vec<(&str, &str)>); 6] = [
        (
            "everything",
            vec![
                base[0],
                ("JWT_AUDIENCE", " app-1, app-2 ,"),
                ("JWT_JWKS_URI", "https://keys.example.com/jwks"),
                ("JWT_CLAIMS", "email,cognito:groups"),
                ("JWT_TOKEN_SOURCE", "header:Authorization"),
                ("JWT_ACCEPT_CLIENT_ID", "true"),
            ],
        ),
        ("defaults", base.to_vec()),
        ("no_issuer", vec![base[1]]),
        ("no_audience", vec![base[0], ("JWT_AUDIENCE", " , ")]),
        (
            "bad_source",
            [&base[..], &[("JWT_TOKEN_SOURCE", "cookie:id")]].concat(),
        ),
        (
            "bad_bool",
            [&base[..], &[("JWT_ACCEPT_CLIENT_ID", "yes")]].concat(),
        ),
    ];
    for (case, vars) in cases {
        crate::child::run_case(TEST_NAME, CHILD_CASE, case, &VARS, &vars);
    }
}
