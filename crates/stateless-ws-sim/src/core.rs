//! [`SimCore`]: one CPU core in virtual time.
//!
//! A Lambda function instance has one vCPU's worth of CPU up to 1,769 MB of memory (AWS Lambda
//! developer guide, "Memory and computing power"), so everything one instance computes — signing
//! and sending posts, parsing jobs — runs one piece after another. A `SimCore` serialises those
//! pieces: each [`run`](SimCore::run) starts when the core is free (`busy_until`) and keeps it
//! busy for its cost, and the caller sleeps until its piece is done. Work that waits on the
//! network does not hold the core.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// One core: CPU work queued on it finishes one piece after another in virtual time. Cheap to
/// clone; clones share the core.
#[derive(Debug, Clone, Default)]
pub struct SimCore {
    state: Arc<Mutex<CoreState>>,
}

#[derive(Debug, Default)]
struct CoreState {
    busy_until: Option<Instant>,
    busy: Duration,
}

impl SimCore {
    /// A free core.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `cost` of CPU work on this core: waits (in virtual time) until the work queued
    /// before it and this piece are done. A zero cost returns at once.
    pub async fn run(&self, cost: Duration) {
        if cost.is_zero() {
            return;
        }
        let done = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let start = state.busy_until.map_or(now, |b| b.max(now));
            let done = start + cost;
            state.busy_until = Some(done);
            state.busy += cost;
            done
        };
        tokio::time::sleep_until(done).await;
    }

    /// The CPU time charged to this core so far.
    pub fn busy(&self) -> Duration {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_on_one_core_is_serialised() {
        let core = SimCore::new();
        let start = Instant::now();
        let a = core.clone();
        let b = core.clone();
        tokio::join!(
            a.run(Duration::from_millis(10)),
            b.run(Duration::from_millis(10))
        );
        assert_eq!(start.elapsed(), Duration::from_millis(20));
        assert_eq!(core.busy(), Duration::from_millis(20));
    }
}
