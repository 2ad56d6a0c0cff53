//! The cost of a reconnect storm, from AWS's published on-demand prices (us-east-1).
//!
//! The prices are constants **read on the date [`PRICES_READ`]** from the pages named on each;
//! they change, so check them before relying on a figure:
//!
//! | price | value | source |
//! |---|---|---|
//! | API Gateway WebSocket messages | $1.00 per million (first billion; 32 KB increments) | <https://aws.amazon.com/api-gateway/pricing/> |
//! | API Gateway WebSocket connection minutes | $0.25 per million | <https://aws.amazon.com/api-gateway/pricing/> |
//! | Lambda requests | $0.20 per million | <https://aws.amazon.com/lambda/pricing/> |
//! | Lambda duration (x86) | $0.0000166667 per GB-second | <https://aws.amazon.com/lambda/pricing/> |
//! | DynamoDB on-demand writes | $0.625 per million write request units | <https://aws.amazon.com/dynamodb/pricing/on-demand/> |
//! | DynamoDB on-demand reads | $0.125 per million read request units | <https://aws.amazon.com/dynamodb/pricing/on-demand/> |
//!
//! Free tiers are not subtracted.

/// When the prices below were read.
pub const PRICES_READ: &str = "2026-12";

/// US dollars per million API Gateway WebSocket messages (<https://aws.amazon.com/api-gateway/pricing/>).
pub const APIGW_PER_MILLION_MESSAGES: f64 = 1.00;
/// US dollars per million connection minutes (<https://aws.amazon.com/api-gateway/pricing/>).
pub const APIGW_PER_MILLION_CONNECTION_MINUTES: f64 = 0.25;
/// US dollars per million Lambda requests (<https://aws.amazon.com/lambda/pricing/>).
pub const LAMBDA_PER_MILLION_REQUESTS: f64 = 0.20;
/// US dollars per GB-second of Lambda duration, x86 (<https://aws.amazon.com/lambda/pricing/>).
pub const LAMBDA_PER_GB_SECOND: f64 = 0.000_016_666_7;
/// US dollars per million DynamoDB on-demand write request units
/// (<https://aws.amazon.com/dynamodb/pricing/on-demand/>).
pub const DDB_PER_MILLION_WRU: f64 = 0.625;
/// US dollars per million DynamoDB on-demand read request units
/// (<https://aws.amazon.com/dynamodb/pricing/on-demand/>).
pub const DDB_PER_MILLION_RRU: f64 = 0.125;

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
        Self {
            messages: per_million(usage.messages as f64, APIGW_PER_MILLION_MESSAGES),
            connection_minutes: per_million(
                usage.connection_minutes,
                APIGW_PER_MILLION_CONNECTION_MINUTES,
            ),
            lambda_requests: per_million(usage.lambda_requests as f64, LAMBDA_PER_MILLION_REQUESTS),
            lambda_duration: usage.lambda_gb_seconds * LAMBDA_PER_GB_SECOND,
            writes: per_million(usage.wru as f64, DDB_PER_MILLION_WRU),
            reads: per_million(usage.rru as f64, DDB_PER_MILLION_RRU),
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
