//! The [`ConnectionStore`] conformance suite: one scenario per sentence of the
//! [contract](ConnectionStore#contract), run by every backend.
//!
//! Enabled with the `conformance` feature (and always in this crate's own tests). A third-party
//! backend proves itself by running [`run_all`] from its tests:
//!
//! ```no_run
//! # async fn f() {
//! let store = stateless_ws::store::InMemoryStore::new();
//! stateless_ws::conformance::run_all(&store).await;
//! # }
//! ```
//!
//! **Not covered by semver**: scenarios are added as the contract is sharpened, so a backend
//! that passed may fail a later minor release's suite (as object_store does with its
//! integration tests). Pin the crate's version in the backend's dev-dependencies.
//!
//! The [`MessageLog`](crate::history::MessageLog) scenarios are in [`history`].
//!
//! Scenarios panic with a message naming the broken rule, like any test assertion. Each uses
//! fresh, unique ids, so they can share one table with each other and with earlier runs. They
//! assume the store's clock is within a few minutes of the system clock, a TTL of at least one
//! minute, and that secondary indexes are read-your-writes (true of the in-memory store and of
//! MiniStack; real DynamoDB GSIs lag slightly, so run this suite against an emulator).

// Scenarios are test assertions: panicking with a message is how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;

use crate::clock::unix_seconds;
use crate::ids::{ConnectionId, RoomId, UserId};
use crate::store::Membership;
use crate::store::{ConnectionStore, ConnectionStoreExt};

mod expiry;
pub mod history;
mod listing;
mod membership;
mod paging;

pub use expiry::{
    expired_records_are_never_returned, join_sets_expiry_and_refresh_extends_it,
    join_stamps_connected_at_from_the_clock,
};
pub use listing::{
    batch_removal_of_more_than_25, concurrent_joins_are_all_kept, large_room_is_listed_whole,
    user_listing_has_no_duplicates,
};
pub use membership::{
    deletes_are_idempotent, join_leave_disconnect, membership_reads_one_record,
    repeated_join_overwrites, several_rooms_per_connection,
};
pub use paging::{
    expired_records_inside_pages_are_skipped, join_and_leave_during_paging,
    room_page_limit_bounds_each_page, room_pages_cover_the_room_once,
};

/// Runs every scenario against `store`, one after another.
pub async fn run_all(store: &dyn ConnectionStore) {
    join_leave_disconnect(store).await;
    several_rooms_per_connection(store).await;
    user_listing_has_no_duplicates(store).await;
    repeated_join_overwrites(store).await;
    expired_records_are_never_returned(store).await;
    join_sets_expiry_and_refresh_extends_it(store).await;
    join_stamps_connected_at_from_the_clock(store).await;
    deletes_are_idempotent(store).await;
    large_room_is_listed_whole(store).await;
    batch_removal_of_more_than_25(store).await;
    concurrent_joins_are_all_kept(store).await;
    membership_reads_one_record(store).await;
    room_pages_cover_the_room_once(store).await;
    expired_records_inside_pages_are_skipped(store).await;
    join_and_leave_during_paging(store).await;
    room_page_limit_bounds_each_page(store).await;
}

/// A prefix no other scenario run (in this process or an earlier one) has used.
fn unique(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{tag}-{}-{nanos:x}-{n}", std::process::id())
}

fn conn(prefix: &str, i: usize) -> ConnectionId {
    ConnectionId::new(format!("{prefix}-c{i}=")).unwrap()
}

fn room(prefix: &str, name: &str) -> RoomId {
    RoomId::new(format!("{prefix}-{name}")).unwrap()
}

fn ids(records: &[Membership]) -> Vec<ConnectionId> {
    let mut v: Vec<_> = records.iter().map(|c| c.connection_id.clone()).collect();
    v.sort();
    v
}

fn rooms(records: &[Membership]) -> Vec<RoomId> {
    let mut v: Vec<_> = records.iter().map(|c| c.room.clone()).collect();
    v.sort();
    v
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}
