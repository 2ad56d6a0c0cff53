//! [`SimClock`]: the store's wall clock, moved by Tokio's paused clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stateless_ws::clock::Clock;
use tokio::time::Instant;

/// A [`Clock`] that reads Tokio's (paused) clock: `base` plus the virtual time since the clock
/// was made. The store's expiry, record times and the broadcaster's connect grace then follow
/// simulated time, and runs do not depend on the real date.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    base: SystemTime,
    start: Instant,
}

impl SimClock {
    /// A clock reading `base` now.
    pub fn new(base: SystemTime) -> Self {
        Self {
            base,
            start: Instant::now(),
        }
    }

    /// A clock at a fixed date (2026-01-01T00:00:00Z), for reproducible runs.
    pub fn fixed() -> Self {
        Self::new(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
    }
}

impl Clock for SimClock {
    fn now(&self) -> SystemTime {
        self.base + self.start.elapsed()
    }
}
