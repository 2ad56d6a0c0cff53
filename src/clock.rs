//! One time source. A [`ConnectionStore`](crate::store::ConnectionStore) owns a [`Clock`]
//! ([`ConnectionStore::clock`](crate::store::ConnectionStore::clock)); everything that needs
//! "now" next to the table reads it from there: the store (expiry, `connectedAt` of new
//! records), the broadcaster's connect grace, presence's event times, the queue planner's job
//! times. Production uses [`SystemClock`]; a test gives the store a [`ManualClock`] and moves all
//! of them at once:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use stateless_ws::broadcast::{BroadcastConfig, Broadcaster, Payload, RecordingSender};
//! use stateless_ws::clock::ManualClock;
//! use stateless_ws::store::{ConnectionStore, InMemoryStore};
//! use stateless_ws::{ConnectionId, Membership, RoomId};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let clock = ManualClock::new(std::time::SystemTime::now());
//! let store = Arc::new(InMemoryStore::new().with_clock(clock.clone()));
//! let sender = RecordingSender::new();
//! let room = RoomId::new("lobby")?;
//! let id = ConnectionId::new("gone=")?;
//! store.join(&Membership::new(id.clone(), room.clone())).await?; // connected now
//! sender.set_gone(&id);
//!
//! // A minute later the connect grace (30 s) is over: the gone record is removed.
//! clock.advance(Duration::from_secs(60));
//! let broadcaster = Broadcaster::new(store.clone(), Arc::new(sender));
//! let report = broadcaster.broadcast(&room, &Payload::text("hi")?, None).await?;
//! assert_eq!(report.removed.len(), 1);
//! # Ok::<(), stateless_ws::Error>(())
//! # }).unwrap();
//! ```

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where "now" comes from: the system clock in production, a [`ManualClock`] in tests that need
/// to move time (expiry, TTL refresh, the connect grace).
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to; share it (it is cheap to clone) between the test and
/// the store.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use stateless_ws::clock::{Clock, ManualClock};
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_005));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<std::sync::Mutex<SystemTime>>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self(Arc::new(std::sync::Mutex::new(start)))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut t = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *t += by;
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: SystemTime) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `t` in Unix seconds (0 before the epoch).
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `t` in Unix milliseconds (0 before the epoch).
pub(crate) fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
