//! Attribute names of the log's table.

pub(super) const ROOM_ID: &str = "roomId";
pub(super) const SEQ: &str = "seq";
pub(super) const OFFSET: &str = "offset";
pub(super) const EPOCH: &str = "epoch";
pub(super) const ID: &str = "id";
pub(super) const AT: &str = "at";
pub(super) const DATA: &str = "data";
pub(super) const TTL: &str = "ttl";
