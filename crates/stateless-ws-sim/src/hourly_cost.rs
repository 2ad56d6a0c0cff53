//! The cost of a run's usage per hour, at the dated prices of [`crate::cost`].

use crate::cost::{HOURS_PER_MONTH, Prices};

/// Usage over one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct HourlyUsage {
    /// API Gateway messages (in and out), in 32 KB units.
    pub apigw_messages: f64,
    /// Connection minutes.
    pub connection_minutes: f64,
    /// Lambda invocations.
    pub lambda_requests: f64,
    /// Lambda GB-seconds.
    pub lambda_gb_seconds: f64,
    /// Whether the functions run on arm64 (else x86).
    pub arm64: bool,
    /// DynamoDB write request units.
    pub dynamodb_writes: f64,
    /// DynamoDB read request units.
    pub dynamodb_reads: f64,
    /// SQS requests (64 KB units).
    pub sqs_requests: f64,
}

/// Cost per hour, by service (US dollars).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct HourlyCost {
    /// API Gateway messages and connection minutes.
    pub api_gateway: f64,
    /// Lambda requests and duration.
    pub lambda: f64,
    /// DynamoDB reads and writes.
    pub dynamodb: f64,
    /// SQS requests.
    pub sqs: f64,
}

impl HourlyCost {
    /// The sum.
    pub fn total(&self) -> f64 {
        self.api_gateway + self.lambda + self.dynamodb + self.sqs
    }
}

impl Prices {
    /// The cost of one hour of `usage`, sustained for a month: the message tier is applied to
    /// the month's volume (730 hours of this hour), then divided back to an hour.
    pub fn hourly(&self, usage: &HourlyUsage) -> HourlyCost {
        let per_million = |n: f64, price: f64| n / 1e6 * price;
        let monthly = usage.apigw_messages * HOURS_PER_MONTH;
        let first = monthly.min(1e9);
        let messages = (per_million(first, self.apigw_message_per_million)
            + per_million(
                (monthly - first).max(0.0),
                self.apigw_message_per_million_over_1b,
            ))
            / HOURS_PER_MONTH;
        let gb_second = if usage.arm64 {
            self.lambda_gb_second_arm64
        } else {
            self.lambda_gb_second_x86
        };
        HourlyCost {
            api_gateway: messages
                + per_million(
                    usage.connection_minutes,
                    self.apigw_connection_minute_per_million,
                ),
            lambda: per_million(usage.lambda_requests, self.lambda_request_per_million)
                + usage.lambda_gb_seconds * gb_second,
            dynamodb: per_million(usage.dynamodb_writes, self.dynamodb_wru_per_million)
                + per_million(usage.dynamodb_reads, self.dynamodb_rru_per_million),
            sqs: per_million(usage.sqs_requests, self.sqs_request_per_million),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::US_EAST_1_2026_12;

    #[test]
    fn the_message_tier_applies_to_the_month() {
        let p = US_EAST_1_2026_12;
        // 1,000,000 messages an hour: 730 M a month, all in the first tier.
        let small = p.hourly(&HourlyUsage {
            apigw_messages: 1e6,
            ..HourlyUsage::default()
        });
        assert!((small.api_gateway - 1.0).abs() < 1e-9);
        // 10 B a month: 1 B at $1, 9 B at $0.80 → $8,200 a month.
        let big = p.hourly(&HourlyUsage {
            apigw_messages: 1e10 / HOURS_PER_MONTH,
            ..HourlyUsage::default()
        });
        assert!((big.api_gateway * HOURS_PER_MONTH - 8_200.0).abs() < 1e-6);
        assert_eq!(p.apigw_units(100), 1);
        assert_eq!(p.apigw_units(32 * 1024 + 1), 2);
    }
}
