//! The routing table: which connection is in which room, and whose it is.
//!
//! [`ConnectionStore`] is the seam between the handlers/broadcaster and the storage backend. Two
//! backends ship with the crate and pass the same conformance suite (`stateless_ws::conformance`,
//! feature `conformance`):
//!
//! | backend | feature | for |
//! |---|---|---|
//! | [`InMemoryStore`] | always | tests, local development, the local gateway |
//! | `DynamoDbStore` | `dynamodb` (default) | production: the table shared with every handler and service |
//!
//! Handlers hold an `Arc<dyn ConnectionStore>` so the backend is chosen once, at start-up.
//!
//! # The table
//!
//! In production one DynamoDB table is the routing table, shared by every handler and every
//! service that pushes: one item per (connection, room) — `connectionId` (partition key),
//! `roomId` (sort key, `room#<name>`), `userId`, `connectedAt`, `ttl` and the optional
//! `managementEndpoint` — with a `roomId-index` and a `userId-index`. Its layout is the one the
//! original Python Lambda handlers of this design (boto3) use, so both can run against one table
//! while you move handler by handler. The rustdoc of `DynamoDbStore` (feature `dynamodb`) has the
//! full schema, the `aws dynamodb create-table` command, the IAM actions of each operation, and
//! what is consistent when; `DynamoDbStore::ensure_table()` creates the table for you.
//! [`env`](crate::env) lists the variables `DynamoDbStore::from_env` reads
//! (`CONNECTIONS_TABLE`, the index names, `CONNECTION_TTL_SECONDS`).
//!
//! Every record expires: DynamoDB deletes expired items lazily (often days late), so every read
//! of every backend filters on the expiry; a record written without one never expires.

use std::fmt::{Debug, Display};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::error::Result;
use crate::ids::{ConnectionId, RoomId, UserId};

pub(crate) mod membership;
mod memory;
mod page;
pub use membership::Membership;
pub use memory::{DEFAULT_MEMORY_PAGE_SIZE, InMemoryStore};
pub use page::{Page, PageCursor};

#[cfg(feature = "dynamodb")]
mod dynamodb;
#[cfg(feature = "dynamodb")]
pub use dynamodb::{DynamoDbStore, DynamoDbStoreBuilder};
#[cfg(feature = "dynamodb")]
pub(crate) use dynamodb::{ensure_table, room_key, sdk_error, validate_table_name};

/// How long a record lives when the caller does not say: 2 hours, API Gateway's maximum
/// WebSocket connection duration, so a record outlives any connection it can describe.
pub const DEFAULT_TTL: Duration = Duration::from_secs(2 * 60 * 60);

/// The routing table of a stateless WebSocket application.
///
/// Each record ([`Membership`]) says "connection C is in room R (and belongs to user U)". A
/// connection in several rooms has one record per room. The first [`join`](Self::join) of a
/// connection is its connect; [`remove_connections`](Self::remove_connections) (or
/// [`ConnectionStoreExt::disconnect`]) is its disconnect.
///
/// # Contract
///
/// Every backend upholds these rules; each has a scenario in `stateless_ws::conformance`
/// (feature `conformance`).
///
/// 1. **Results are unordered.** Listings return records in no particular order.
/// 2. **Expired records are never returned.** A record whose `expires_at` is at or before the
///    store's clock is invisible to every listing, even while the backend still holds it (DynamoDB
///    deletes TTL'd items lazily, up to days later). Records without an expiry never expire.
/// 3. **A repeated join overwrites.** Joining a room the connection is already in replaces the
///    record (user, expiry, endpoint); there is never more than one record per (connection, room).
/// 4. **Deletes are idempotent.** Leaving a room one is not in, and removing a connection that
///    has no records (or was already removed), succeed and do nothing.
/// 5. **A user's connections are listed once each**, however many rooms each is in.
/// 6. **Listings are complete**: a room larger than one backend page is returned whole.
/// 7. **Joining sets the expiry**: a record joined with `expires_at: None` expires the store's
///    TTL after the store's clock; [`refresh`](Self::refresh) moves every record of a connection
///    to that same horizon.
/// 8. **Concurrent joins are all kept**: joins of different connections, or of one connection to
///    different rooms, racing each other, all end up in the table.
/// 9. **A membership check reads one record.** [`membership`](Self::membership) returns the
///    (connection, room) record — `None` when there is none or it has expired (rule 2) — and
///    reads that one record only (a `GetItem` in DynamoDB), whatever the number of rooms the
///    connection is in: it is the check a handler makes on every message.
/// 10. **Room pages follow connection ids.** [`room_page`](Self::room_page) returns records
///     ordered by connection id, and the next page starts strictly after the cursor: reading
///     every page lists each connection of the room once, expired records are skipped inside a
///     page (which may leave a page empty with a `next`), and a connection that joins or leaves
///     during the reading is listed once or not at all — never twice. Pages are bounded by the
///     backend's page size, so a reader's memory does not grow with the room.
/// 12. **A page limit bounds the read.** With `limit: Some(n)`, `room_page` evaluates at most
///     `n` records of the room (`Some(0)` reads as 1) — a DynamoDB `Limit`, a slice in memory —
///     so it returns at most `n` records, possibly fewer or none with a `next` (expired records
///     count as evaluated), and the next page starts after the last record evaluated. A caller
///     that needs only the first few records of a huge room reads those, not a backend page of
///     thousands.
/// 11. **Joining without `connectedAt` stamps it**: a record joined with `connected_at: None`
///     is stored with the store's [`clock`](Self::clock)'s now (Unix seconds).
///
/// Writes are per record, not transactional across records: a `remove_connections` racing a
/// `join` of the same connection can leave the joined record behind (its TTL still expires it).
///
/// Listings of rooms and users may read a secondary index that is eventually consistent
/// (DynamoDB GSIs are): a join may take a moment to appear there. Reads by connection id are
/// strongly consistent.
///
/// The trait is object-safe; handlers hold `Arc<dyn ConnectionStore>`. `Display` names the
/// backend and its resource (`DynamoDbStore(ws-connections)`): logs and errors use it.
#[async_trait]
pub trait ConnectionStore: Send + Sync + Debug + Display + 'static {
    /// Adds `connection` to its room, or overwrites its record there. When
    /// `connection.expires_at` is `None` the store sets it to its TTL from now.
    async fn join(&self, connection: &Membership) -> Result<()>;

    /// Removes `connection` from `room`. Succeeds when it was not there.
    async fn leave(&self, connection: &ConnectionId, room: &RoomId) -> Result<()>;

    /// Removes every record of every connection in `connections` (all their rooms, expired
    /// records included) and returns the records removed. Succeeds for unknown connections.
    /// Used for `$disconnect` and for cleaning connections the management API reported gone.
    async fn remove_connections(&self, connections: &[ConnectionId]) -> Result<Vec<Membership>>;

    /// One page of the connections in `room`, starting after `cursor` (from the start when
    /// `None`), of at most `limit` records when given (else a backend page). Follow
    /// [`Page::next`] until it is `None` to read the whole room; memory stays bounded by the
    /// page size whatever the room's size. See contract rules 10 and 12.
    async fn room_page(
        &self,
        room: &RoomId,
        cursor: Option<&PageCursor>,
        limit: Option<usize>,
    ) -> Result<Page>;

    /// The connections in `room`, one record each: every [`room_page`](Self::room_page), read
    /// one after another and collected. Use `room_page` (or
    /// [`Broadcaster::broadcast`](crate::broadcast::Broadcaster::broadcast), which streams
    /// it) when the room may be large.
    async fn room_connections(&self, room: &RoomId) -> Result<Vec<Membership>> {
        let mut records = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.room_page(room, cursor.as_ref(), None).await?;
            records.extend(page.records);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(records),
            }
        }
    }

    /// The connections of `user`, one record per connection even when a connection is in several
    /// rooms (which of its records is returned is unspecified).
    async fn user_connections(&self, user: &UserId) -> Result<Vec<Membership>>;

    /// The records of `connection`: one per room it is in.
    async fn connection_rooms(&self, connection: &ConnectionId) -> Result<Vec<Membership>>;

    /// The record of `connection` in `room`, or `None` when it is not there or the record has
    /// expired. Reads that one record (a strongly consistent `GetItem` in DynamoDB), so its
    /// cost does not grow with the number of rooms the connection is in.
    async fn membership(
        &self,
        connection: &ConnectionId,
        room: &RoomId,
    ) -> Result<Option<Membership>>;

    /// Extends the expiry of every record of `connection` to the store's TTL from now and
    /// returns how many records were refreshed (0 for an unknown connection; expired records
    /// are not revived).
    async fn refresh(&self, connection: &ConnectionId) -> Result<usize>;

    /// The store's clock: what "now" means for its expiry (rules 2 and 7) and for the
    /// `connectedAt` of records joined without one (rule 11). The broadcaster's connect grace,
    /// presence and the queue planner read the time from here too, so one
    /// [`ManualClock`](crate::clock::ManualClock) given to the store moves all of them in tests.
    fn clock(&self) -> &Arc<dyn Clock>;
}

/// Conveniences on every [`ConnectionStore`] (including `dyn ConnectionStore`), built on its
/// required methods. A blanket implementation, so wrappers cannot lose an override.
#[async_trait]
pub trait ConnectionStoreExt: ConnectionStore {
    /// Removes `connection` from every room (the `$disconnect` handler) and returns the records
    /// removed. Idempotent.
    async fn disconnect(&self, connection: &ConnectionId) -> Result<Vec<Membership>> {
        self.remove_connections(std::slice::from_ref(connection))
            .await
    }

    /// The rooms `connection` is in.
    async fn rooms_of(&self, connection: &ConnectionId) -> Result<Vec<RoomId>> {
        Ok(self
            .connection_rooms(connection)
            .await?
            .into_iter()
            .map(|c| c.room)
            .collect())
    }

    /// Whether `connection` is in `room` (and the record has not expired): one record read,
    /// through [`membership`](ConnectionStore::membership).
    async fn is_member(&self, connection: &ConnectionId, room: &RoomId) -> Result<bool> {
        Ok(self.membership(connection, room).await?.is_some())
    }
}

impl<T: ConnectionStore + ?Sized> ConnectionStoreExt for T {}

#[async_trait]
impl<T: ConnectionStore + ?Sized> ConnectionStore for Arc<T> {
    async fn join(&self, connection: &Membership) -> Result<()> {
        (**self).join(connection).await
    }
    async fn leave(&self, connection: &ConnectionId, room: &RoomId) -> Result<()> {
        (**self).leave(connection, room).await
    }
    async fn remove_connections(&self, connections: &[ConnectionId]) -> Result<Vec<Membership>> {
        (**self).remove_connections(connections).await
    }
    async fn room_page(
        &self,
        room: &RoomId,
        cursor: Option<&PageCursor>,
        limit: Option<usize>,
    ) -> Result<Page> {
        (**self).room_page(room, cursor, limit).await
    }
    async fn room_connections(&self, room: &RoomId) -> Result<Vec<Membership>> {
        (**self).room_connections(room).await
    }
    async fn user_connections(&self, user: &UserId) -> Result<Vec<Membership>> {
        (**self).user_connections(user).await
    }
    async fn connection_rooms(&self, connection: &ConnectionId) -> Result<Vec<Membership>> {
        (**self).connection_rooms(connection).await
    }
    async fn membership(
        &self,
        connection: &ConnectionId,
        room: &RoomId,
    ) -> Result<Option<Membership>> {
        (**self).membership(connection, room).await
    }
    async fn refresh(&self, connection: &ConnectionId) -> Result<usize> {
        (**self).refresh(connection).await
    }
    fn clock(&self) -> &Arc<dyn Clock> {
        (**self).clock()
    }
}
