//! Paged room listings: [`Page`] and its [`PageCursor`].

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Membership;
use crate::ids::ConnectionId;

/// One page of a room's listing ([`ConnectionStore::room_page`](super::ConnectionStore::room_page)).
///
/// `records` may be empty while `next` is `Some` (a backend page whose records had all
/// expired): keep reading until `next` is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page {
    /// The page's live records, one per connection, ordered by connection id.
    pub records: Vec<Membership>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageCursor>,
}

impl Page {
    /// A page of `records`, followed by `next`.
    pub fn new(records: Vec<Membership>, next: Option<PageCursor>) -> Self {
        Self { records, next }
    }
}

/// Where a room listing resumes: "after connection C".
///
/// Room listings are ordered by connection id on every backend (the DynamoDB `roomId-index`
/// has `connectionId` as its range key), so the cursor is the last connection id the previous
/// page evaluated, and the same cursor means the same thing to every backend. It serializes as
/// that id, so a queued job can carry it; it is validated like any [`ConnectionId`] when read
/// back, and it never names a room, so it cannot steer a listing to another room.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PageCursor {
    after: ConnectionId,
}

impl PageCursor {
    /// A cursor resuming after `connection`.
    pub fn after(connection: ConnectionId) -> Self {
        Self { after: connection }
    }

    /// The last connection id the previous page evaluated; the next page starts after it.
    pub fn last_evaluated(&self) -> &ConnectionId {
        &self.after
    }
}

impl fmt::Debug for PageCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PageCursor(after {})", self.after)
    }
}

impl fmt::Display for PageCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "after {}", self.after)
    }
}
