//! Exponential backoff with jitter, shared by the DynamoDB store's `UnprocessedItems` retries and
//! the broadcaster's delivery retries.

use std::time::Duration;

/// The delay before retry number `attempt` (1 for the first retry): a random duration between
/// half and all of `base · 2^(attempt-1)`, capped at `cap` ("equal jitter": spreads retries of
/// many callers apart without ever retrying at once).
pub(crate) fn delay(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let ceiling = base.saturating_mul(1 << exp).min(cap);
    let ceiling_us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(fastrand::u64(ceiling_us / 2..=ceiling_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_with_jitter_and_is_capped() {
        let base = Duration::from_millis(50);
        let cap = Duration::from_secs(5);
        for attempt in 1..30 {
            let ceiling = (base * (1 << (attempt - 1).min(20))).min(cap);
            for _ in 0..20 {
                let d = delay(attempt, base, cap);
                assert!(
                    d <= ceiling && d >= ceiling / 2,
                    "attempt {attempt}: {d:?} vs {ceiling:?}"
                );
            }
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| delay(3, base, cap)).collect();
        assert!(spread.len() > 10, "jitter must vary the delay");
    }
}
