//! [`SimClock`]: the store's wall clock, moved by Tokio's paused clock; [`run_paused`]: the
//! runtime every scenario runs on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stateless_ws::Result;
use stateless_ws::clock::Clock;
use tokio::time::Instant;

/// `store`'s clock now, in whole seconds since the Unix epoch (a record's `connectedAt`).
pub fn unix_now(store: &dyn stateless_ws::store::ConnectionStore) -> u64 {
    store
        .clock()
        .now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs `run` on a fresh current-thread runtime whose clock is paused (virtual time jumps to
/// the next timer whenever every task waits), with the library's own jitter seeded with `seed`
/// (`fastrand::seed`); returns its output and the real time the run took.
///
/// # Errors
///
/// When the runtime cannot start, or `run`'s error.
pub fn run_paused<T>(
    seed: u64,
    run: impl Future<Output = Result<T>>,
) -> Result<(T, std::time::Duration)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| stateless_ws::Error::Config {
            message: format!("cannot start the runtime: {e}"),
        })?;
    fastrand::seed(seed);
    let wall = std::time::Instant::now();
    let out = runtime.block_on(run)?;
    Ok((out, wall.elapsed()))
}

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
