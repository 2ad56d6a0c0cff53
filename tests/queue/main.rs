//! Queued fan-out, in one test binary: the planner's packing and retries (`planner`), the worker
//! on the in-memory sender and queue (`worker`), a worker killed mid-job against a loopback
//! management API (`kill`), the whole path on SQS and DynamoDB in MiniStack (`ministack`), and
//! the choice between in-line and queued (`dispatch`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod dispatch;
mod kill;
mod memory;
mod ministack;
mod mocks;
mod planner;
mod trust;
mod unknown;
mod worker;

use std::sync::Arc;

use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::{ConnectionId, Membership, RoomId};

pub(crate) fn id(s: &str) -> ConnectionId {
    ConnectionId::new(s).unwrap()
}

/// `c00000=`, `c00001=`, ...: ids that sort in the order they were made.
pub(crate) fn member(i: usize) -> ConnectionId {
    id(&format!("c{i:05}="))
}

/// A room of `n` members in an in-memory store with pages of `page_size` records.
pub(crate) async fn room_of(n: usize, page_size: usize) -> (Arc<InMemoryStore>, RoomId) {
    let store = Arc::new(InMemoryStore::new().with_page_size(page_size));
    let room = RoomId::new("big").unwrap();
    for i in 0..n {
        store
            .join(&Membership::new(member(i), room.clone()))
            .await
            .unwrap();
    }
    (store, room)
}
