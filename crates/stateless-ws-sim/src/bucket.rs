//! [`TokenBucket`]: a rate and a burst, exact on the paused clock.
//!
//! API Gateway throttles with a token bucket per account and region: "API Gateway throttles
//! requests to your API using the token bucket algorithm, where a token counts for a request"
//! (API Gateway developer guide, "Throttle requests to your REST APIs"); the defaults are
//! 10,000 requests/s with a burst of 5,000, shared by every API of the account in the region,
//! the `@connections` callback API included (FACTS.md). DynamoDB's per-partition limits are
//! modelled with the same bucket (3,000 RCU/s and 1,000 WCU/s per partition).

use std::time::Duration;

use tokio::time::Instant;

const NANOS: u128 = 1_000_000_000;

/// A token bucket: `rate` tokens per second, holding at most `burst`, full at the start. Tokens
/// are counted in billionths, so the refill is exact for whole nanoseconds.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    /// Tokens × 10⁹.
    level: u128,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `rate` per second. A rate of 0 never
    /// refills; a burst of 0 is used as 1 (one request must be able to pass).
    pub fn new(rate: u64, burst: u64) -> Self {
        let burst = burst.max(1);
        Self {
            rate,
            burst,
            level: u128::from(burst) * NANOS,
            at: Instant::now(),
        }
    }

    /// Tokens per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The most tokens held.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    fn refill(&mut self, now: Instant) {
        if now > self.at {
            let elapsed = now.duration_since(self.at).as_nanos();
            let cap = u128::from(self.burst) * NANOS;
            self.level = (self.level + elapsed * u128::from(self.rate)).min(cap);
            self.at = now;
        }
    }

    /// Takes `tokens` now if the bucket holds them.
    pub fn try_take(&mut self, tokens: u64) -> bool {
        self.refill(Instant::now());
        let want = u128::from(tokens) * NANOS;
        if self.level >= want {
            self.level -= want;
            true
        } else {
            false
        }
    }

    /// How long until the bucket holds `tokens` (zero if it does now); `None` if it never will
    /// (a rate of 0, or more than the burst).
    pub fn wait_for(&mut self, tokens: u64) -> Option<Duration> {
        self.refill(Instant::now());
        let want = u128::from(tokens) * NANOS;
        if self.level >= want {
            return Some(Duration::ZERO);
        }
        if self.rate == 0 || tokens > self.burst {
            return None;
        }
        let missing = want - self.level;
        let nanos = missing.div_ceil(u128::from(self.rate));
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate_exactly() {
        let mut bucket = TokenBucket::new(10_000, 5_000);
        let burst = (0..20_000).filter(|_| bucket.try_take(1)).count();
        assert_eq!(burst, 5_000);
        tokio::time::advance(Duration::from_millis(100)).await;
        let after = (0..20_000).filter(|_| bucket.try_take(1)).count();
        assert_eq!(after, 1_000);
        // Long idle: refilled to the burst, no more.
        tokio::time::advance(Duration::from_secs(60)).await;
        let full = (0..20_000).filter(|_| bucket.try_take(1)).count();
        assert_eq!(full, 5_000);
        assert_eq!(bucket.wait_for(1), Some(Duration::from_micros(100)));
        assert_eq!(bucket.wait_for(5_001), None);
    }

    #[tokio::test(start_paused = true)]
    async fn one_token_every_period() {
        let mut bucket = TokenBucket::new(3, 1);
        assert!(bucket.try_take(1));
        assert!(!bucket.try_take(1));
        tokio::time::advance(Duration::from_nanos(333_333_333)).await;
        assert!(!bucket.try_take(1));
        tokio::time::advance(Duration::from_nanos(1)).await;
        assert!(bucket.try_take(1));
    }
}
