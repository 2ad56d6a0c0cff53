//! The adaptive concurrency limit of a fan-out: additive increase, multiplicative decrease
//! (AIMD) over a semaphore.
//!
//! - a 429 halves the limit, at most once per cooldown (the posts in flight all see the same
//!   burst of 429s, and one cut answers it), never below the floor;
//! - each window of successes (as many as the current limit) adds one slot back, never above
//!   the configured maximum;
//! - shrinking takes effect as in-flight posts finish: idle permits are retired at once, the
//!   rest when their [`Slot`]s are dropped.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::config::BroadcastConfig;

/// A concurrency limit that can shrink (429s) and grow back (successes).
pub(super) struct Limiter {
    semaphore: Arc<Semaphore>,
    state: Mutex<LimiterState>,
    max: usize,
    min: usize,
    adaptive: bool,
    cooldown: Duration,
}

struct LimiterState {
    limit: usize,
    /// Permits to retire as they come back, after a decrease.
    debt: usize,
    successes: usize,
    last_cut: Option<Instant>,
}

/// One concurrency slot; returning it honours a pending decrease.
pub(super) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    limiter: Arc<Limiter>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let mut state = self.limiter.lock();
        if state.debt > 0 {
            state.debt -= 1;
            permit.forget();
        }
    }
}

impl Limiter {
    /// A limiter at `config`'s (clamped) concurrency, with its floor, `adaptive` switch and
    /// throttle cooldown.
    pub(super) fn new(config: &BroadcastConfig) -> Arc<Self> {
        let max = config.max_in_flight();
        Arc::new(Self {
            semaphore: Arc::new(Semaphore::new(max)),
            state: Mutex::new(LimiterState {
                limit: max,
                debt: 0,
                successes: 0,
                last_cut: None,
            }),
            max,
            min: config.min_in_flight(),
            adaptive: config.adaptive,
            cooldown: config.throttle_cooldown(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current limit.
    pub(super) fn limit(&self) -> usize {
        self.lock().limit
    }

    /// The configured concurrency, which the limit never exceeds.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    /// A slot, or `None` if `deadline` passes first.
    pub(super) async fn acquire_until(self: &Arc<Self>, deadline: Option<Instant>) -> Option<Slot> {
        let acquire = Arc::clone(&self.semaphore).acquire_owned();
        let permit = match deadline {
            None => acquire.await.ok()?,
            Some(d) => {
                if Instant::now() >= d {
                    return None;
                }
                tokio::select! {
                    biased;
                    permit = acquire => permit.ok()?,
                    () = tokio::time::sleep_until(d) => return None,
                }
            }
        };
        Some(Slot {
            permit: Some(permit),
            limiter: Arc::clone(self),
        })
    }

    /// A post succeeded.
    pub(super) fn on_success(&self) {
        if !self.adaptive {
            return;
        }
        let mut state = self.lock();
        if state.limit >= self.max {
            return;
        }
        state.successes += 1;
        // One more slot per "window" of successes at the current limit.
        if state.successes >= state.limit {
            state.successes = 0;
            state.limit += 1;
            if state.debt > 0 {
                state.debt -= 1;
            } else {
                self.semaphore.add_permits(1);
            }
        }
    }

    /// A post was throttled (429).
    pub(super) fn on_throttle(&self) {
        if !self.adaptive {
            return;
        }
        let now = Instant::now();
        let mut state = self.lock();
        // Many posts in flight see the same burst of 429s: cut once per cooldown.
        if state
            .last_cut
            .is_some_and(|t| now.duration_since(t) < self.cooldown)
        {
            return;
        }
        let new_limit = (state.limit / 2).max(self.min);
        // Retire idle permits now; the rest as in-flight posts finish.
        let cut = state.limit - new_limit;
        state.debt += cut - self.semaphore.forget_permits(cut);
        state.limit = new_limit;
        state.successes = 0;
        state.last_cut = Some(now);
        tracing::debug!(limit = new_limit, "throttled: lowering concurrency");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(concurrency: usize, min: usize, cooldown_ms: u64) -> BroadcastConfig {
        BroadcastConfig {
            concurrency,
            min_concurrency: min,
            initial_backoff: Duration::from_millis(cooldown_ms),
            ..BroadcastConfig::default()
        }
    }

    async fn take(limiter: &Arc<Limiter>, n: usize) -> Vec<Slot> {
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            slots.push(limiter.acquire_until(None).await.unwrap());
        }
        slots
    }

    fn available(limiter: &Limiter) -> usize {
        limiter.semaphore.available_permits()
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_halves_the_limit_and_retires_idle_permits_at_once() {
        let limiter = Limiter::new(&config(8, 1, 50));
        let held = take(&limiter, 2).await;
        limiter.on_throttle();
        assert_eq!(limiter.limit(), 4);
        assert_eq!(
            available(&limiter),
            2,
            "4 idle permits retired, 2 left for 4 - 2 held"
        );
        drop(held);
        assert_eq!(available(&limiter), 4, "no debt: held permits come back");
    }

    #[tokio::test(start_paused = true)]
    async fn busy_permits_are_retired_as_their_slots_are_dropped() {
        let limiter = Limiter::new(&config(8, 1, 50));
        let mut held = take(&limiter, 8).await;
        limiter.on_throttle();
        assert_eq!(limiter.limit(), 4);
        assert_eq!(available(&limiter), 0);
        for returned in 1..=4 {
            drop(held.pop());
            assert_eq!(available(&limiter), 0, "slot {returned} retired");
        }
        drop(held);
        assert_eq!(available(&limiter), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_throttles_cuts_once_per_cooldown() {
        let limiter = Limiter::new(&config(16, 1, 50));
        limiter.on_throttle();
        limiter.on_throttle();
        assert_eq!(limiter.limit(), 8, "second 429 at the same instant");
        tokio::time::advance(Duration::from_millis(49)).await;
        limiter.on_throttle();
        assert_eq!(limiter.limit(), 8, "still within the cooldown");
        tokio::time::advance(Duration::from_millis(1)).await;
        limiter.on_throttle();
        assert_eq!(limiter.limit(), 4, "cooldown over");
        assert_eq!(available(&limiter), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn successes_win_back_one_slot_per_window() {
        let limiter = Limiter::new(&config(8, 1, 50));
        limiter.on_throttle();
        assert_eq!(limiter.limit(), 4);
        for _ in 0..3 {
            limiter.on_success();
        }
        assert_eq!(
            limiter.limit(),
            4,
            "a window is as many successes as the limit"
        );
        limiter.on_success();
        assert_eq!(limiter.limit(), 5);
        assert_eq!(available(&limiter), 5);
        for _ in 0..5 {
            limiter.on_success();
        }
        assert_eq!(limiter.limit(), 6);
        assert_eq!(available(&limiter), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn growth_pays_pending_debt_before_adding_permits() {
        let limiter = Limiter::new(&config(8, 1, 50));
        let held = take(&limiter, 8).await;
        limiter.on_throttle();
        for _ in 0..4 {
            limiter.on_success();
        }
        assert_eq!(limiter.limit(), 5);
        assert_eq!(
            available(&limiter),
            0,
            "the new slot cancels one retirement"
        );
        drop(held);
        assert_eq!(available(&limiter), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_stays_between_the_floor_and_the_max() {
        let limiter = Limiter::new(&config(8, 3, 50));
        for _ in 0..100 {
            limiter.on_success();
        }
        assert_eq!(limiter.limit(), 8, "never above the max");
        assert_eq!(available(&limiter), 8);
        for expected in [4, 3, 3] {
            limiter.on_throttle();
            assert_eq!(limiter.limit(), expected);
            tokio::time::advance(Duration::from_millis(50)).await;
        }
        assert_eq!(available(&limiter), 3, "never below the floor");
        for _ in 0..100 {
            limiter.on_success();
        }
        assert_eq!(limiter.limit(), 8);
        assert_eq!(available(&limiter), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_range_bounds_are_clamped() {
        let limiter = Limiter::new(&config(0, 0, 0));
        assert_eq!((limiter.limit(), limiter.max()), (1, 1));
        limiter.on_throttle();
        assert_eq!(limiter.limit(), 1, "a floor of 0 is used as 1");

        let limiter = Limiter::new(&config(4, 10, 50));
        limiter.on_throttle();
        assert_eq!(
            limiter.limit(),
            4,
            "a floor above the max is used as the max"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_adaptive_the_limit_never_moves() {
        let limiter = Limiter::new(&BroadcastConfig {
            adaptive: false,
            ..config(8, 1, 50)
        });
        limiter.on_throttle();
        assert_eq!(limiter.limit(), 8);
        assert_eq!(available(&limiter), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_slots_are_released_and_the_deadline_bounds_the_wait() {
        let limiter = Limiter::new(&config(2, 1, 50));
        let mut held = take(&limiter, 2).await;
        let deadline = Instant::now() + Duration::from_millis(20);
        assert!(limiter.acquire_until(Some(deadline)).await.is_none());
        assert!(
            Instant::now() >= deadline,
            "gave up at the deadline, not before"
        );
        assert!(
            limiter.acquire_until(Some(deadline)).await.is_none(),
            "deadline passed"
        );

        drop(held.pop());
        let deadline = Instant::now() + Duration::from_millis(20);
        assert!(limiter.acquire_until(Some(deadline)).await.is_some());
        assert!(
            Instant::now() < deadline,
            "a free slot is taken without waiting"
        );
    }
}
