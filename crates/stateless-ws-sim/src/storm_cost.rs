//! The cost of a reconnect storm, from AWS's published on-demand prices (us-east-1).
//!
//! The prices are [`crate::cost::US_EAST_1_2026_12`]'s (us-east-1, read 2026-12, each with its
//! source page there); they change, so check them before relying on a figure. Free tiers are not
//! subtracted.

use crate::cost::US_EAST_1_2026_12;

/// What a storm used.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Usage {
    /// WebSocket messages, both directions (posts delivered, client messages, route replies).
    pub messages: u64,
    /// Connection minutes.
    pub connection_minutes: f64,
    /// Lambda invocations.
    pub lambda_requests: u64,
    /// Lambda GB-seconds.
    pub lambda_gb_seconds: f64,
    /// DynamoDB write request units.
    pub wru: u64,
    /// DynamoDB read request units.
    pub rru: u64,
}

/// The cost of a [`Usage`], US dollars, by item.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Cost {
    /// API Gateway messages.
    pub messages: f64,
    /// API Gateway connection minutes.
    pub connection_minutes: f64,
    /// Lambda requests.
    pub lambda_requests: f64,
    /// Lambda duration.
    pub lambda_duration: f64,
    /// DynamoDB writes.
    pub writes: f64,
    /// DynamoDB reads.
    pub reads: f64,
}

impl Cost {
    /// The cost of `usage` at the prices above.
    pub fn of(usage: &Usage) -> Self {
        let per_million = |n: f64, price: f64| n / 1e6 * price;
        let p = US_EAST_1_2026_12;
        Self {
            messages: per_million(usage.messages as f64, p.apigw_message_per_million),
            connection_minutes: per_million(
                usage.connection_minutes,
                p.apigw_connection_minute_per_million,
            ),
            lambda_requests: per_million(
                usage.lambda_requests as f64,
                p.lambda_request_per_million,
            ),
            lambda_duration: usage.lambda_gb_seconds * p.lambda_gb_second_x86,
            writes: per_million(usage.wru as f64, p.dynamodb_wru_per_million),
            reads: per_million(usage.rru as f64, p.dynamodb_rru_per_million),
        }
    }

    /// The sum of the items.
    pub fn total(&self) -> f64 {
        self.messages
            + self.connection_minutes
            + self.lambda_requests
            + self.lambda_duration
            + self.writes
            + self.reads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_of_each_costs_the_list_prices() {
        let usage = Usage {
            messages: 1_000_000,
            connection_minutes: 1e6,
            lambda_requests: 1_000_000,
            lambda_gb_seconds: 1e6,
            wru: 1_000_000,
            rru: 1_000_000,
        };
        let cost = Cost::of(&usage);
        assert!((cost.total() - (1.0 + 0.25 + 0.2 + 16.6667 + 0.625 + 0.125)).abs() < 1e-3);
    }
}
