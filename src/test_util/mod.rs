//! Helpers for testing code built on this crate (feature `test-util`).
//!
//! [`InstrumentedStore`] wraps any [`ConnectionStore`](crate::store::ConnectionStore) and counts
//! its calls, and on demand makes chosen operations fail, wait, or return smaller room pages:
//! what a test needs to check that a handler reads one record per message, that a broadcast
//! reports a page it could not read, or that a deadline cuts a slow listing — without mocking
//! the trait, and on any backend (the in-memory store, or `DynamoDbStore` on a local endpoint).
//!
//! The counterpart for delivery is [`RecordingSender`](crate::broadcast::RecordingSender), which
//! is always compiled.

mod counts;
mod store;

pub use counts::{StoreCounts, StoreOp};
pub use store::InstrumentedStore;
