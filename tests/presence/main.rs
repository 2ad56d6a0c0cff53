//! `Presence`, in one test binary: the same scenarios on the in-memory store and on
//! `DynamoDbStore` against MiniStack (skipped with a printed reason when `DYNAMODB_ENDPOINT` is
//! unset; `scripts/test.sh` never skips them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod logs;
mod scenarios;

use std::sync::Arc;

use stateless_ws::store::{ConnectionStore, InMemoryStore};

fn memory() -> Arc<dyn ConnectionStore> {
    Arc::new(InMemoryStore::new())
}

#[cfg(feature = "dynamodb")]
async fn ministack(test: &str) -> Option<Arc<dyn ConnectionStore>> {
    Some(Arc::new(
        common::ministack_store(test, "presence", 3).await?,
    ))
}

/// One `#[tokio::test]` per store for each scenario.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod in_memory {
            $(#[tokio::test] async fn $name() { crate::scenarios::$name(crate::memory()).await; })*
        }
        #[cfg(feature = "dynamodb")]
        mod on_ministack {
            $(#[tokio::test] async fn $name() {
                if let Some(store) = crate::ministack(concat!("presence::on_ministack::", stringify!($name))).await {
                    crate::scenarios::$name(store).await;
                }
            })*
        }
    };
}

on_both_stores!(
    two_tabs_are_one_member,
    two_tabs_joining_at_once_announce_once,
    two_tabs_leaving_at_once_never_miss_left,
    gone_cleanup_departures_are_batched_per_room,
    connecting_clients_are_not_cleaned_up,
    max_room_size_turns_announcements_off,
    anonymous_connections_are_members_of_their_own,
    the_snapshot_lists_each_member_once,
    a_user_and_an_anonymous_connection_with_one_id_are_two_members,
);

#[tokio::test]
async fn rooms_above_queue_above_are_announced_through_the_queue() {
    scenarios::queued(memory()).await;
}

/// Issue 17, item 7: an announcement the management API refused (403) is logged at WARN with
/// the service's error code, and never as INFO "presence announced".
#[tokio::test]
async fn a_refused_announcement_logs_warn_with_the_error_code() {
    use stateless_ws::broadcast::{Broadcaster, InjectedFailure, RecordingSender};
    use stateless_ws::presence::Presence;
    use stateless_ws::{ConnectionId, Membership, RoomId, UserId};

    let logs = logs::LogCapture::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());

    let store = memory();
    let sender = RecordingSender::new();
    let presence = Presence::new(Broadcaster::new(
        Arc::clone(&store),
        Arc::new(sender.clone()),
    ));
    let room = RoomId::new("general").unwrap();
    let record = |conn: &str, user: &str| {
        Membership::new(ConnectionId::new(conn).unwrap(), room.clone())
            .with_user(UserId::new(user).unwrap())
            .with_connected_at(1)
    };
    store.join(&record("bob1=", "bob")).await.unwrap();
    store.join(&record("alice1=", "alice")).await.unwrap();
    sender.fail(
        &ConnectionId::new("bob1=").unwrap(),
        InjectedFailure::Forbidden,
        None,
    );
    presence.entered(&record("alice1=", "alice")).await.unwrap();

    let text = logs.text();
    let warn = text
        .lines()
        .find(|l| l.contains("WARN") && l.contains("presence announcement incomplete"))
        .unwrap_or_else(|| panic!("no WARN for the refused announcement:\n{text}"));
    assert!(warn.contains("ForbiddenException"), "{warn}");
    assert!(
        !text.contains("presence announced"),
        "a failed announcement logged as announced:\n{text}"
    );
    let fanout = text
        .lines()
        .find(|l| l.contains("fan-out"))
        .unwrap_or_else(|| panic!("no fan-out line:\n{text}"));
    assert!(
        fanout.contains("WARN") && fanout.contains("ForbiddenException"),
        "{fanout}"
    );
}
