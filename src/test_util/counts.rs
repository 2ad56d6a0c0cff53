//! What an [`InstrumentedStore`](super::InstrumentedStore) counts: [`StoreOp`], [`StoreCounts`].

use std::fmt;

#[cfg(doc)]
use crate::store::ConnectionStore;

/// An operation of [`ConnectionStore`]: what an [`InstrumentedStore`](super::InstrumentedStore) counts, fails or slows
/// down. [`Display`](fmt::Display) is the trait method's name (`room_page`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StoreOp {
    /// [`ConnectionStore::join`].
    Join,
    /// [`ConnectionStore::leave`].
    Leave,
    /// [`ConnectionStore::remove_connections`] (also behind
    /// [`ConnectionStoreExt::disconnect`](crate::store::ConnectionStoreExt::disconnect)).
    RemoveConnections,
    /// [`ConnectionStore::room_page`]: one page of a room listing.
    RoomPage,
    /// [`ConnectionStore::room_connections`]: a whole room, read through
    /// [`RoomPage`](Self::RoomPage) calls that are counted (and can fail) on their own.
    RoomConnections,
    /// [`ConnectionStore::user_connections`].
    UserConnections,
    /// [`ConnectionStore::connection_rooms`] (also behind
    /// [`ConnectionStoreExt::rooms_of`](crate::store::ConnectionStoreExt::rooms_of)).
    ConnectionRooms,
    /// [`ConnectionStore::membership`] (also behind
    /// [`ConnectionStoreExt::is_member`](crate::store::ConnectionStoreExt::is_member)).
    Membership,
    /// [`ConnectionStore::refresh`].
    Refresh,
}

pub(super) const OPS: usize = 9;

impl StoreOp {
    /// Every operation, in the trait's order.
    pub const ALL: [StoreOp; OPS] = [
        StoreOp::Join,
        StoreOp::Leave,
        StoreOp::RemoveConnections,
        StoreOp::RoomPage,
        StoreOp::RoomConnections,
        StoreOp::UserConnections,
        StoreOp::ConnectionRooms,
        StoreOp::Membership,
        StoreOp::Refresh,
    ];

    /// The trait method's name, e.g. `"room_page"`.
    pub fn name(self) -> &'static str {
        match self {
            StoreOp::Join => "join",
            StoreOp::Leave => "leave",
            StoreOp::RemoveConnections => "remove_connections",
            StoreOp::RoomPage => "room_page",
            StoreOp::RoomConnections => "room_connections",
            StoreOp::UserConnections => "user_connections",
            StoreOp::ConnectionRooms => "connection_rooms",
            StoreOp::Membership => "membership",
            StoreOp::Refresh => "refresh",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for StoreOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Calls and records counted by an [`InstrumentedStore`](super::InstrumentedStore) ([`counts`](super::InstrumentedStore::counts),
/// [`take_counts`](super::InstrumentedStore::take_counts)). `Display` lists the operations called, e.g.
/// `membership 1 (1 record), room_page 2 (150 records)`, for assertion messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreCounts {
    pub(super) calls: [u64; OPS],
    pub(super) records: [u64; OPS],
}

impl StoreCounts {
    /// Calls of `op`, failed ones included.
    pub fn calls(&self, op: StoreOp) -> u64 {
        self.calls[op.index()]
    }

    /// Records that the successful calls of `op` returned: the records listed or removed, 1 per
    /// [`membership`](ConnectionStore::membership) that found one, and for
    /// [`refresh`](ConnectionStore::refresh) the records refreshed; 0 for `join` and `leave`.
    /// What a `room_connections` returned is also counted under [`StoreOp::RoomPage`].
    pub fn records(&self, op: StoreOp) -> u64 {
        self.records[op.index()]
    }

    /// Calls of every operation (a `room_connections` counts once, and once more per page).
    pub fn total_calls(&self) -> u64 {
        self.calls.iter().sum()
    }
}

impl fmt::Display for StoreCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for op in StoreOp::ALL.into_iter().filter(|op| self.calls(*op) > 0) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            let records = self.records(op);
            let plural = if records == 1 { "" } else { "s" };
            write!(f, "{op} {} ({records} record{plural})", self.calls(op))?;
        }
        if first {
            f.write_str("no calls")?;
        }
        Ok(())
    }
}
