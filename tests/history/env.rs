//! `DynamoDbLog::from_env_with` reads `MESSAGES_TABLE`, `MESSAGES_TTL_SECONDS` and
//! `MESSAGES_MAX_PER_ROOM`. The environment cannot be changed safely inside a threaded test
//! binary (and this crate forbids `unsafe`), so each case runs this binary again as a child with
//! the variables set and the case's name in `CHILD_CASE`; the child checks, the parent reads
//! its exit status.

use std::time::Duration;

use stateless_ws::Error;
use stateless_ws::history::{DynamoDbLog, MessageLog};

const CHILD_CASE: &str = "STATELESS_WS_ENV_TEST_CASE";
const TEST_NAME: &str = "env::from_env_with_reads_the_table_and_the_retention";

fn sdk_config() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build()
}

/// Runs in the child: checks `case` against the variables the parent set.
fn child(case: &str) {
    let built = DynamoDbLog::from_env_with(&sdk_config());
    match case {
        "retention" => {
            let log = built.expect("valid variables build");
            assert_eq!(log.config().ttl, Duration::from_secs(3_600));
            assert_eq!(log.config().max_messages, 500);
            assert_eq!(log.to_string(), "DynamoDbLog(chat-messages)");
        }
        "defaults" => {
            let log = built.expect("the table alone builds");
            assert_eq!(log.config().ttl, Duration::from_secs(86_400));
            assert_eq!(log.config().max_messages, 10_000);
        }
        "not_a_number" => {
            let Err(Error::Config { message }) = built else {
                panic!("expected a config error, got {built:?}");
            };
            assert!(
                message.contains("MESSAGES_TTL_SECONDS") && message.contains("\"1h\""),
                "{message}"
            );
        }
        "out_of_range" => {
            let Err(Error::Config { message }) = built else {
                panic!("expected a config error, got {built:?}");
            };
            assert!(message.contains("max_messages"), "{message}");
        }
        "no_table" => {
            let Err(Error::Config { message }) = built else {
                panic!("expected a config error, got {built:?}");
            };
            assert!(message.contains("MESSAGES_TABLE"), "{message}");
        }
        other => panic!("unknown case {other}"),
    }
}

#[test]
fn from_env_with_reads_the_table_and_the_retention() {
    if let Ok(case) = std::env::var(CHILD_CASE) {
        child(&case);
        return;
    }
    let cases: [(&str, &[(&str, &str)]); 5] = [
        (
            "retention",
            &[
                ("MESSAGES_TABLE", "chat-messages"),
                ("MESSAGES_TTL_SECONDS", "3600"),
                ("MESSAGES_MAX_PER_ROOM", " 500 "),
            ],
        ),
        ("defaults", &[("MESSAGES_TABLE", "chat-messages")]),
        (
            "not_a_number",
            &[
                ("MESSAGES_TABLE", "chat-messages"),
                ("MESSAGES_TTL_SECONDS", "1h"),
            ],
        ),
        (
            "out_of_range",
            &[
                ("MESSAGES_TABLE", "chat-messages"),
                ("MESSAGES_MAX_PER_ROOM", "0"),
            ],
        ),
        ("no_table", &[("MESSAGES_TTL_SECONDS", "60")]),
    ];
    for (case, vars) in cases {
        crate::child::run_case(
            TEST_NAME,
            CHILD_CASE,
            case,
            &[
                "MESSAGES_TABLE",
                "MESSAGES_TTL_SECONDS",
                "MESSAGES_MAX_PER_ROOM",
            ],
            vars,
        );
    }
}
