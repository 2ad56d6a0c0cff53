//! AWS prices as dated constants, and the cost of a run's usage per hour.
//!
//! The prices are us-east-1's, read 2026-12 from AWS's public pricing pages (the URLs are in
//! [`Prices`]' fields' docs and in [`US_EAST_1_2026_12`]). They change: keep the date with them.

/// One region's prices for the services the simulator models (US dollars).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Prices {
    /// When the prices were read (`YYYY-MM`).
    pub read_on: &'static str,
    /// The region.
    pub region: &'static str,
    /// API Gateway WebSocket messages, per million, for the first billion of a month
    /// (<https://aws.amazon.com/api-gateway/pricing/>). Messages are metered in 32 KB units.
    pub apigw_message_per_million: f64,
    /// API Gateway WebSocket messages beyond the first billion of a month, per million.
    pub apigw_message_per_million_over_1b: f64,
    /// The size of one metered message unit, bytes (32 KB).
    pub apigw_message_unit_bytes: u64,
    /// API Gateway WebSocket connection minutes, per million.
    pub apigw_connection_minutes_per_million: f64,
    /// Lambda requests, per million (<https://aws.amazon.com/lambda/pricing/>).
    pub lambda_requests_per_million: f64,
    /// Lambda duration, per GB-second, x86.
    pub lambda_gb_second_x86: f64,
    /// Lambda duration, per GB-second, arm64.
    pub lambda_gb_second_arm64: f64,
    /// DynamoDB on-demand write request units, per million
    /// (<https://aws.amazon.com/dynamodb/pricing/on-demand/>).
    pub dynamodb_write_per_million: f64,
    /// DynamoDB on-demand read request units, per million.
    pub dynamodb_read_per_million: f64,
    /// SQS standard requests, per million, metered in 64 KB units
    /// (<https://aws.amazon.com/sqs/pricing/>).
    pub sqs_request_per_million: f64,
}

/// us-east-1, read 2026-12.
pub const US_EAST_1_2026_12: Prices = Prices {
    read_on: "2026-12",
    region: "us-east-1",
    apigw_message_per_million: 1.00,
    apigw_message_per_million_over_1b: 0.80,
    apigw_message_unit_bytes: 32 * 1024,
    apigw_connection_minutes_per_million: 0.25,
    lambda_requests_per_million: 0.20,
    lambda_gb_second_x86: 0.000_016_666_7,
    lambda_gb_second_arm64: 0.000_013_333_4,
    dynamodb_write_per_million: 0.625,
    dynamodb_read_per_million: 0.125,
    sqs_request_per_million: 0.40,
};

/// Hours in a month as AWS bills them (730).
pub const HOURS_PER_MONTH: f64 = 730.0;

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
                    self.apigw_connection_minutes_per_million,
                ),
            lambda: per_million(usage.lambda_requests, self.lambda_requests_per_million)
                + usage.lambda_gb_seconds * gb_second,
            dynamodb: per_million(usage.dynamodb_writes, self.dynamodb_write_per_million)
                + per_million(usage.dynamodb_reads, self.dynamodb_read_per_million),
            sqs: per_million(usage.sqs_requests, self.sqs_request_per_million),
        }
    }

    /// Metered API Gateway message units of one message of `bytes` (32 KB units, at least 1).
    pub fn apigw_units(&self, bytes: u64) -> u64 {
        bytes.div_ceil(self.apigw_message_unit_bytes.max(1)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
