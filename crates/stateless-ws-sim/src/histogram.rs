//! [`Histogram`]: delivery latencies in log-sized buckets.
//!
//! Values are microseconds. Below 128 µs each value has its bucket; above, each power of two is
//! split into 64 buckets, so a quantile is within 1/64 (1.6 %) of the true value, in a few
//! kilobytes whatever the count (a million deliveries need no sorted sample).

use std::time::Duration;

const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
const LINEAR: usize = 2 * SUB;

/// A log-bucketed histogram of durations (microsecond resolution).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
}

fn index(us: u64) -> usize {
    if us < LINEAR as u64 {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros(); // ≥ 7
    let sub = ((us >> (exp - SUB_BITS)) as usize) & (SUB - 1);
    LINEAR + (exp as usize - (SUB_BITS as usize + 1)) * SUB + sub
}

/// The smallest value of bucket `i`.
fn lower(i: usize) -> u64 {
    if i < LINEAR {
        return i as u64;
    }
    let j = i - LINEAR;
    let exp = (j / SUB) as u32 + SUB_BITS + 1;
    let sub = (j % SUB) as u64;
    (1u64 << exp) | (sub << (exp - SUB_BITS))
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one value.
    pub fn record(&mut self, value: Duration) {
        let us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        let i = index(us);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value recorded.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }

    /// The `q` quantile (0.0–1.0): the lower bound of the bucket holding it, at most the
    /// largest value; zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_micros(lower(i).min(self.max_us));
            }
        }
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_tight() {
        let mut last = 0;
        for us in (0..2_000_000u64).step_by(7) {
            let i = index(us);
            assert!(i >= last);
            last = i;
            let lo = lower(i);
            assert!(
                lo <= us && us - lo <= us / 64 + 1,
                "{us} in bucket from {lo}"
            );
        }
    }

    #[test]
    fn quantiles_of_a_uniform_sample() {
        let mut h = Histogram::new();
        for ms in 1..=1_000u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).as_secs_f64() * 1e3;
        let p99 = h.quantile(0.99).as_secs_f64() * 1e3;
        assert!((p50 - 500.0).abs() <= 500.0 / 64.0 + 1.0, "{p50}");
        assert!((p99 - 990.0).abs() <= 990.0 / 64.0 + 1.0, "{p99}");
        assert_eq!(h.count(), 1_000);
        assert_eq!(h.max(), Duration::from_secs(1));
    }
}
