//! `Presence`, in one test binary: the same scenarios on the in-memory store and on
//! `DynamoDbStore` against MiniStack (skipped with a printed reason when `DYNAMODB_ENDPOINT` is
//! unset; `scripts/test.sh` never skips them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod scenarios;

use std::sync::Arc;

use stateless_ws::store::{ConnectionStore, InMemoryStore};

fn memory() -> Arc<dyn ConnectionStore> {
    Arc::new(InMemoryStore::new())
}

#[cfg(feature = "dynamodb")]
async fn ministack(test: &str) -> Option<Arc<dyn ConnectionStore>> {
    let endpoint = common::dynamodb_endpoint(test)?;
    let store = stateless_ws::store::DynamoDbStore::builder()
        .client(common::dynamodb_client(&endpoint).await)
        .table_name(common::unique_table("presence"))
        .page_size(3)
        .build()
        .unwrap();
    store.ensure_table().await.unwrap();
    Some(Arc::new(store))
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
