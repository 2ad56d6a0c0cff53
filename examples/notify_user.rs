//! The billing-service pattern: a backend service with no WebSocket context pushes a JSON
//! payload to every connection of a user, and prints the delivery report.
//!
//! Run with:
//!
//! ```text
//! CONNECTIONS_TABLE=ws-connections \
//! APIGW_MANAGEMENT_URL=https://{api-id}.execute-api.{region}.amazonaws.com/{stage} \
//!   cargo run --example notify_user -- --user alice --message '{"type":"invoice.paid","amount":42}'
//! ```
//!
//! Connections are found through the `userId-index` (each connection once, however many rooms it
//! is in); a connection that answers 410 Gone is removed from every room. Set
//! `AWS_ENDPOINT_URL_DYNAMODB` to use a local DynamoDB-compatible server. The exit status is 0
//! when every connection was delivered or found gone, 1 otherwise, 2 on bad arguments.

use std::process::ExitCode;
use std::sync::Arc;

use serde::Serialize;
use stateless_ws::UserId;
use stateless_ws::broadcast::{ApiGatewaySender, BroadcastReport, Broadcaster, Payload};
use stateless_ws::store::DynamoDbStore;

/// The library call: push `event` (any `Serialize`) to every connection of `user`.
///
/// # Errors
///
/// The payload is not serializable or too large, or the user's connections cannot be listed.
/// Delivery failures are in the report, never hidden.
pub async fn notify_user(
    broadcaster: &Broadcaster,
    user: &UserId,
    event: &(impl Serialize + Sync),
) -> stateless_ws::Result<BroadcastReport> {
    let payload = Payload::json(event)?;
    broadcaster.notify_user(user, &payload).await
}

#[derive(Debug, PartialEq)]
struct Args {
    user: UserId,
    message: serde_json::Value,
}

const USAGE: &str = "usage: notify_user --user USER_ID --message JSON_OR_TEXT";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let (mut user, mut message) = (None, None);
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--user" => user = Some(value()?),
            "--message" => message = Some(value()?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let user = user.ok_or_else(|| format!("--user is required\n{USAGE}"))?;
    let user = UserId::new(user).map_err(|e| format!("--user: {e}"))?;
    let message = message.ok_or_else(|| format!("--message is required\n{USAGE}"))?;
    // JSON when it parses as JSON, otherwise a plain text notice.
    let message = serde_json::from_str(&message)
        .unwrap_or_else(|_| serde_json::json!({"type": "notice", "message": message}));
    Ok(Args { user, message })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let broadcaster = match build().await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match notify_user(&broadcaster, &args.user, &args.message).await {
        Ok(report) => {
            println!("notify {}: {report}", args.user);
            for failure in &report.failed {
                println!(
                    "  failed {}: {} ({} attempt(s))",
                    failure.connection_id, failure.error, failure.attempts
                );
            }
            if let Some(e) = &report.cleanup_error {
                println!("  cleanup of gone connections failed: {e}");
            }
            if report.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("notify failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// The store and sender from the environment (`CONNECTIONS_TABLE`, `APIGW_MANAGEMENT_URL`).
async fn build() -> stateless_ws::Result<Broadcaster> {
    let store = DynamoDbStore::from_env().await?;
    let sender = ApiGatewaySender::from_env().await?;
    Ok(Broadcaster::new(Arc::new(store), Arc::new(sender)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateless_ws::broadcast::RecordingSender;
    use stateless_ws::store::{ConnectionStore, InMemoryStore};
    use stateless_ws::{ConnectionId, Membership, RoomId};

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn arguments() {
        let a = args(&["--user", "alice", "--message", r#"{"type":"x"}"#]).unwrap();
        assert_eq!(a.user, "alice");
        assert_eq!(a.message["type"], "x");
        let text = args(&["--message", "hello", "--user", "bob"]).unwrap();
        assert_eq!(
            text.message,
            serde_json::json!({"type": "notice", "message": "hello"})
        );
        assert!(
            args(&["--user", "alice"])
                .unwrap_err()
                .contains("--message is required")
        );
        assert!(
            args(&["--user"])
                .unwrap_err()
                .contains("--user needs a value")
        );
        assert!(
            args(&["--user", "", "--message", "x"])
                .unwrap_err()
                .contains("--user")
        );
        assert!(args(&["--bogus"]).unwrap_err().contains("unknown argument"));
    }

    #[tokio::test]
    async fn notifies_each_connection_once_and_cleans_gone_ones() {
        let store = Arc::new(InMemoryStore::new());
        let sender = RecordingSender::new();
        let alice = UserId::new("alice").unwrap();
        for (c, room) in [
            ("phone=", "a"),
            ("phone=", "b"),
            ("laptop=", "a"),
            ("old-tab=", "b"),
        ] {
            store
                .join(
                    &Membership::new(ConnectionId::new(c).unwrap(), RoomId::new(room).unwrap())
                        .with_user(alice.clone())
                        // Connected long ago: older than the broadcaster's connect grace.
                        .with_connected_at(1_764_000_000),
                )
                .await
                .unwrap();
        }
        sender.set_gone(&ConnectionId::new("old-tab=").unwrap());
        let broadcaster = Broadcaster::new(store.clone(), Arc::new(sender.clone()));
        let report = notify_user(
            &broadcaster,
            &alice,
            &serde_json::json!({"type": "invoice.paid"}),
        )
        .await
        .unwrap();
        assert_eq!(report.delivered.len(), 2);
        assert_eq!(report.gone.len(), 1);
        assert_eq!(
            sender.messages(&ConnectionId::new("phone=").unwrap()).len(),
            1,
            "once, though in two rooms"
        );
        assert_eq!(
            store.user_connections(&alice).await.unwrap().len(),
            2,
            "the gone tab was cleaned"
        );
    }
}
