//! The adaptive concurrency limit of a fan-out: additive increase, multiplicative decrease
//! (AIMD) over a semaphore, answering throttling of the **account**, not of one connection.
//!
//! - the account counts as throttled when, among the first attempts answered within the
//!   throttle window, at least `throttle_min_connections` were 429s and they are at least
//!   `throttle_share_percent` of the answers. Only first attempts count: each is a distinct
//!   connection, so one connection's repeated 429s (its retries) weigh once, and a few
//!   connections that always answer 429 stay a small share;
//! - a 429 while the account counts as throttled halves the limit, at most once per cooldown
//!   (the posts in flight all see the same burst of 429s, and one cut answers it), never below
//!   the floor;
//! - each window of successes (as many as the current limit) adds one slot back, never above
//!   the configured maximum;
//! - shrinking takes effect as in-flight posts finish: idle permits are retired at once, the
//!   rest when their [`Slot`]s are dropped.
//!
//! Why the distinction: API Gateway "examines the rate and a burst of request submissions
//! against all APIs in your account, per Region" and answers 429 when they are exceeded
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-throttling.html>) —
//! that is what lowering the concurrency helps. But the management API's 429
//! (`LimitExceededException`) also means "the WebSocket client side buffer is full"
//! (<https://docs.aws.amazon.com/botocore/latest/reference/services/apigatewaymanagementapi/client/exceptions/LimitExceededException.html>):
//! one slow client, which posting more slowly to everyone else does not help.

use std::collections::VecDeque;
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
    window: Duration,
    min_throttled: usize,
    share_percent: usize,
}

struct LimiterState {
    limit: usize,
    /// Permits to retire as they come back, after a decrease.
    debt: usize,
    successes: usize,
    last_cut: Option<Instant>,
    /// First attempts answered within the throttle window: when, and whether it was a 429.
    recent: VecDeque<(Instant, bool)>,
    /// The 429s among `recent`.
    recent_throttled: usize,
    /// The account counts as throttled until then: a throttle window after it was last found
    /// so or last answered 429 while it was. Once
    /// the concurrency is cut, new targets' first posts mostly pass and the share of 429s
    /// falls while the retries still meet a throttled account; without this they would be
    /// taken for their connections' own 429s and fail after one retry.
    throttled_until: Option<Instant>,
}

/// What a post's answer was, as the throttling rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// 429.
    Throttled,
    /// Any other answer: 200, 410, 5xx, ...
    Other,
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
                recent: VecDeque::new(),
                recent_throttled: 0,
                throttled_until: None,
            }),
            max,
            min: config.min_in_flight(),
            adaptive: config.adaptive,
            cooldown: config.throttle_cooldown(),
            window: config.throttle_window,
            min_throttled: config.throttle_min_connections.max(1),
            share_percent: usize::from(config.throttle_share_percent.min(100)),
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

    /// Records the answer to a post (`first_attempt`: the target's first post) and returns
    /// whether the account counts as throttled now; a 429 then lowers the limit.
    ///
    /// Posts that got no answer (timeouts, cut at the deadline) are not recorded.
    pub(super) fn on_answer(&self, first_attempt: bool, answer: Answer) -> bool {
        let now = Instant::now();
        let throttled = answer == Answer::Throttled;
        let account_throttled = {
            let mut state = self.lock();
            while let Some(&(at, was_throttled)) = state.recent.front() {
                if now.duration_since(at) < self.window {
                    break;
                }
                state.recent.pop_front();
                state.recent_throttled -= usize::from(was_throttled);
            }
            if first_attempt {
                state.recent.push_back((now, throttled));
                state.recent_throttled += usize::from(throttled);
            }
            let by_share = state.recent_throttled >= self.min_throttled
                && state.recent_throttled * 100 >= self.share_percent * state.recent.len();
            let still = state.throttled_until.is_some_and(|until| now < until);
            // Detected by share, or a 429 while the account still counts as throttled: the
            // tail of a broadcast has no first posts left to measure the share by.
            if by_share || (still && throttled) {
                state.throttled_until = Some(now + self.window);
            }
            by_share || still
        };
        if throttled && account_throttled {
            self.decrease();
        }
        account_throttled
    }

    /// Halves the limit, unless it was cut within the cooldown.
    fn decrease(&self) {
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
        tracing::debug!(limit = new_limit, "account throttled: lowering concurrency");
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
        limiter.decrease();
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
        limiter.decrease();
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
        limiter.decrease();
        limiter.decrease();
        assert_eq!(limiter.limit(), 8, "second 429 at the same instant");
        tokio::time::advance(Duration::from_millis(49)).await;
        limiter.decrease();
        assert_eq!(limiter.limit(), 8, "still within the cooldown");
        tokio::time::advance(Duration::from_millis(1)).await;
        limiter.decrease();
        assert_eq!(limiter.limit(), 4, "cooldown over");
        assert_eq!(available(&limiter), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn successes_win_back_one_slot_per_window() {
        let limiter = Limiter::new(&config(8, 1, 50));
        limiter.decrease();
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
        limiter.decrease();
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
            limiter.decrease();
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
        limiter.decrease();
        assert_eq!(limiter.limit(), 1, "a floor of 0 is used as 1");

        let limiter = Limiter::new(&config(4, 10, 50));
        limiter.decrease();
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
        limiter.decrease();
        assert_eq!(limiter.limit(), 8);
        assert_eq!(available(&limiter), 8);
    }

    /// Answers `n` first attempts, `throttled` of them 429s, spread evenly; returns whether
    /// the last one judged the account throttled.
    fn answer_first_attempts(limiter: &Limiter, n: usize, throttled: usize) -> bool {
        let mut verdict = false;
        for i in 0..n {
            // Evenly spread: the i-th answer is a 429 when it crosses a multiple of n/throttled.
            let is_throttled = throttled > 0 && (i + 1) * throttled / n > i * throttled / n;
            let answer = if is_throttled {
                Answer::Throttled
            } else {
                Answer::Other
            };
            verdict = limiter.on_answer(true, answer);
        }
        verdict
    }

    #[tokio::test(start_paused = true)]
    async fn one_connection_answering_429_again_and_again_never_cuts() {
        let limiter = Limiter::new(&config(64, 1, 50));
        assert!(!limiter.on_answer(true, Answer::Throttled));
        for _ in 0..50 {
            assert!(!limiter.on_answer(false, Answer::Throttled), "its retries");
            tokio::time::advance(Duration::from_millis(60)).await;
        }
        assert_eq!(limiter.limit(), 64);
    }

    #[tokio::test(start_paused = true)]
    async fn a_few_connections_always_answering_429_among_many_never_cut() {
        let limiter = Limiter::new(&config(64, 1, 50));
        // 20 of 520 connections throttled (4 %), each retried three times.
        for _ in 0..26 {
            answer_first_attempts(&limiter, 20, 1);
            for _ in 0..3 {
                limiter.on_answer(false, Answer::Throttled);
            }
            tokio::time::advance(Duration::from_millis(20)).await;
        }
        assert_eq!(limiter.limit(), 64);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_across_many_connections_cuts_the_limit() {
        let limiter = Limiter::new(&config(64, 1, 50));
        // Four distinct connections throttled: below the minimum of five, however large a share.
        assert!(!answer_first_attempts(&limiter, 4, 4));
        assert_eq!(limiter.limit(), 64);
        assert!(limiter.on_answer(true, Answer::Throttled), "the fifth");
        assert_eq!(limiter.limit(), 32);
        // Still throttled a cooldown later: a 429 (even a retry's) cuts again.
        tokio::time::advance(Duration::from_millis(50)).await;
        assert!(limiter.on_answer(false, Answer::Throttled));
        assert_eq!(limiter.limit(), 16);
    }

    #[tokio::test(start_paused = true)]
    async fn the_share_of_throttled_answers_decides() {
        let limiter = Limiter::new(&config(64, 1, 50));
        // 10 of 100 (10 %): not the account.
        assert!(!answer_first_attempts(&limiter, 100, 10));
        assert_eq!(limiter.limit(), 64);
        // 20 more 429s of 20 answers: 30 of 120 (25 %), over the 20 % share.
        assert!(answer_first_attempts(&limiter, 20, 20));
        assert_eq!(limiter.limit(), 32);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_older_than_the_window_are_forgotten() {
        let limiter = Limiter::new(&config(64, 1, 50));
        answer_first_attempts(&limiter, 4, 4);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            !limiter.on_answer(true, Answer::Throttled),
            "the four earlier 429s left the 1 s window"
        );
        assert_eq!(limiter.limit(), 64);
        answer_first_attempts(&limiter, 3, 3);
        assert!(
            limiter.on_answer(true, Answer::Throttled),
            "five within the window"
        );
        assert_eq!(limiter.limit(), 32);
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
