//! AWS prices as dated constants, and the cost of a run's usage: the one price table and the
//! one [`Usage`]/[`Cost`] pair of the plan, scenarios (a)/(d) and the storm.
//!
//! [`US_EAST_1_2026_12`] holds the on-demand list prices of us-east-1 as read in December 2026
//! from AWS's pricing pages (each field names its page). Prices change: a plan states the date
//! of the prices it used, and a newer [`Prices`] constant is the way to update them. Free tiers
//! are not subtracted.
//!
//! Three ways to price a [`Usage`], differing only in API Gateway's message tier (cheaper beyond
//! a billion messages a month):
//!
//! - [`Prices::monthly`]: a month's usage (the capacity plan).
//! - [`Prices::hourly`]: an hour of a load sustained all month — the tier is applied to 730
//!   hours of it (scenarios (a) and (d)).
//! - [`Prices::monthly`] of an hour's usage: an hour that is the month's only such load (the
//!   reconnect storm, a one-off event).

/// Hours in AWS's billing month.
pub const HOURS_PER_MONTH: f64 = 730.0;

/// Seconds in AWS's billing month (730 h).
pub const SECONDS_PER_MONTH: f64 = HOURS_PER_MONTH * 3_600.0;

/// On-demand prices of one region, in US dollars.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Prices {
    /// Region the prices are for.
    pub region: &'static str,
    /// When the prices were read (YYYY-MM).
    pub read: &'static str,
    /// API Gateway WebSocket: per million messages, the first billion of a month
    /// (<https://aws.amazon.com/api-gateway/pricing/>).
    pub apigw_message_per_million: f64,
    /// API Gateway WebSocket: per million messages beyond the first billion of a month.
    pub apigw_message_per_million_over_1b: f64,
    /// API Gateway WebSocket: a message is billed in units of this many bytes (32 KB).
    pub apigw_message_unit_bytes: u64,
    /// API Gateway WebSocket: per million connection minutes.
    pub apigw_connection_minute_per_million: f64,
    /// Lambda: per million requests (<https://aws.amazon.com/lambda/pricing/>).
    pub lambda_request_per_million: f64,
    /// Lambda: per GB-second, x86_64.
    pub lambda_gb_second_x86: f64,
    /// Lambda: per GB-second, arm64.
    pub lambda_gb_second_arm64: f64,
    /// DynamoDB on-demand: per million write request units
    /// (<https://aws.amazon.com/dynamodb/pricing/on-demand/>).
    pub dynamodb_wru_per_million: f64,
    /// DynamoDB on-demand: per million read request units.
    pub dynamodb_rru_per_million: f64,
    /// DynamoDB: storage per GB-month (Standard table class).
    pub dynamodb_storage_gb_month: f64,
    /// SQS standard queue: per million requests (<https://aws.amazon.com/sqs/pricing/>).
    pub sqs_request_per_million: f64,
    /// SQS: a request is billed in units of this many bytes (64 KB).
    pub sqs_request_unit_bytes: u64,
    /// Data transfer out to the internet, per GB, the first 10 TB of a month
    /// (<https://aws.amazon.com/ec2/pricing/on-demand/#Data_Transfer>); later tiers are cheaper,
    /// so beyond 10 TB this is an upper bound.
    pub transfer_out_per_gb: f64,
}

/// us-east-1, read 2026-12.
pub const US_EAST_1_2026_12: Prices = Prices {
    region: "us-east-1",
    read: "2026-12",
    apigw_message_per_million: 1.00,
    apigw_message_per_million_over_1b: 0.80,
    apigw_message_unit_bytes: 32 * 1_024,
    apigw_connection_minute_per_million: 0.25,
    lambda_request_per_million: 0.20,
    lambda_gb_second_x86: 0.000_016_666_7,
    lambda_gb_second_arm64: 0.000_013_333_4,
    dynamodb_wru_per_million: 0.625,
    dynamodb_rru_per_million: 0.125,
    dynamodb_storage_gb_month: 0.25,
    sqs_request_per_million: 0.40,
    sqs_request_unit_bytes: 64 * 1_024,
    transfer_out_per_gb: 0.09,
};

/// The source pages of [`US_EAST_1_2026_12`], for a plan's footnote.
pub const SOURCES: [&str; 5] = [
    "https://aws.amazon.com/api-gateway/pricing/",
    "https://aws.amazon.com/lambda/pricing/",
    "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    "https://aws.amazon.com/sqs/pricing/",
    "https://aws.amazon.com/ec2/pricing/on-demand/#Data_Transfer",
];

/// Lambda's instruction set architecture (its GB-second price).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// x86_64.
    X86,
    /// arm64 (Graviton).
    Arm64,
}

/// Usage of each billed dimension over a period (a month for [`Prices::monthly`], an hour for
/// [`Prices::hourly`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Usage {
    /// API Gateway messages, in billed units (32 KB each), both directions.
    pub apigw_messages: f64,
    /// API Gateway connection minutes.
    pub connection_minutes: f64,
    /// Lambda requests.
    pub lambda_requests: f64,
    /// Lambda GB-seconds.
    pub lambda_gb_seconds: f64,
    /// DynamoDB write request units.
    pub wru: f64,
    /// DynamoDB read request units.
    pub rru: f64,
    /// DynamoDB storage, GB (held all month).
    pub storage_gb: f64,
    /// SQS requests, in billed units (64 KB each).
    pub sqs_requests: f64,
    /// Bytes sent to clients, GB.
    pub transfer_out_gb: f64,
}

/// Cost by service over the [`Usage`]'s period, US dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Cost {
    /// API Gateway messages.
    pub apigw_messages: f64,
    /// API Gateway connection minutes.
    pub connection_minutes: f64,
    /// Lambda requests and GB-seconds.
    pub lambda: f64,
    /// DynamoDB reads, writes and storage.
    pub dynamodb: f64,
    /// SQS requests.
    pub sqs: f64,
    /// Data transfer out.
    pub transfer_out: f64,
}

impl Usage {
    /// Every dimension times `factor` (to turn a run's usage into an hour's, or an hour's into
    /// a month's).
    pub fn scaled(&self, factor: f64) -> Self {
        Self {
            apigw_messages: self.apigw_messages * factor,
            connection_minutes: self.connection_minutes * factor,
            lambda_requests: self.lambda_requests * factor,
            lambda_gb_seconds: self.lambda_gb_seconds * factor,
            wru: self.wru * factor,
            rru: self.rru * factor,
            storage_gb: self.storage_gb * factor,
            sqs_requests: self.sqs_requests * factor,
            transfer_out_gb: self.transfer_out_gb * factor,
        }
    }
}

impl Cost {
    /// API Gateway: messages and connection minutes.
    pub fn api_gateway(&self) -> f64 {
        self.apigw_messages + self.connection_minutes
    }

    /// Every item times `factor`.
    pub fn scaled(&self, factor: f64) -> Self {
        Self {
            apigw_messages: self.apigw_messages * factor,
            connection_minutes: self.connection_minutes * factor,
            lambda: self.lambda * factor,
            dynamodb: self.dynamodb * factor,
            sqs: self.sqs * factor,
            transfer_out: self.transfer_out * factor,
        }
    }

    /// The total.
    pub fn total(&self) -> f64 {
        self.apigw_messages
            + self.connection_minutes
            + self.lambda
            + self.dynamodb
            + self.sqs
            + self.transfer_out
    }
}

impl Prices {
    /// The month's cost of `usage` on `arch`.
    pub fn monthly(&self, usage: &Usage, arch: Arch) -> Cost {
        let million = 1e6;
        let billion = 1e9;
        let first = usage.apigw_messages.min(billion);
        let rest = (usage.apigw_messages - billion).max(0.0);
        let gb_second = match arch {
            Arch::X86 => self.lambda_gb_second_x86,
            Arch::Arm64 => self.lambda_gb_second_arm64,
        };
        Cost {
            apigw_messages: first / million * self.apigw_message_per_million
                + rest / million * self.apigw_message_per_million_over_1b,
            connection_minutes: usage.connection_minutes / million
                * self.apigw_connection_minute_per_million,
            lambda: usage.lambda_requests / million * self.lambda_request_per_million
                + usage.lambda_gb_seconds * gb_second,
            dynamodb: usage.wru / million * self.dynamodb_wru_per_million
                + usage.rru / million * self.dynamodb_rru_per_million
                + usage.storage_gb * self.dynamodb_storage_gb_month,
            sqs: usage.sqs_requests / million * self.sqs_request_per_million,
            transfer_out: usage.transfer_out_gb * self.transfer_out_per_gb,
        }
    }

    /// The cost of one hour of `usage` sustained for a month: the message tier is applied to
    /// the month's volume (730 hours of this hour), then divided back to an hour.
    pub fn hourly(&self, usage: &Usage, arch: Arch) -> Cost {
        self.monthly(&usage.scaled(HOURS_PER_MONTH), arch)
            .scaled(1.0 / HOURS_PER_MONTH)
    }

    /// Billed API Gateway message units of one message of `bytes` (at least 1).
    pub fn apigw_units(&self, bytes: u64) -> u64 {
        bytes.div_ceil(self.apigw_message_unit_bytes.max(1)).max(1)
    }

    /// Billed SQS request units of one request of `bytes` (at least 1).
    pub fn sqs_units(&self, bytes: u64) -> u64 {
        bytes.div_ceil(self.sqs_request_unit_bytes.max(1)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_billion_messages_cost_more() {
        let p = US_EAST_1_2026_12;
        let usage = Usage {
            apigw_messages: 2e9,
            ..Usage::default()
        };
        let c = p.monthly(&usage, Arch::X86);
        assert!((c.apigw_messages - 1_800.0).abs() < 1e-6, "{c:?}");
        assert!((c.total() - 1_800.0).abs() < 1e-6);
    }

    #[test]
    fn messages_are_billed_in_32_kb_and_sqs_in_64_kb() {
        let p = US_EAST_1_2026_12;
        assert_eq!(p.apigw_units(1), 1);
        assert_eq!(p.apigw_units(32_768), 1);
        assert_eq!(p.apigw_units(32_769), 2);
        assert_eq!(p.sqs_units(65_537), 2);
    }

    #[test]
    fn arm64_gb_seconds_are_cheaper() {
        let p = US_EAST_1_2026_12;
        let usage = Usage {
            lambda_gb_seconds: 1e6,
            ..Usage::default()
        };
        assert!(p.monthly(&usage, Arch::Arm64).lambda < p.monthly(&usage, Arch::X86).lambda);
    }

    #[test]
    fn a_million_of_each_costs_the_list_prices() {
        let usage = Usage {
            apigw_messages: 1e6,
            connection_minutes: 1e6,
            lambda_requests: 1e6,
            lambda_gb_seconds: 1e6,
            wru: 1e6,
            rru: 1e6,
            storage_gb: 1.0,
            sqs_requests: 1e6,
            transfer_out_gb: 1.0,
        };
        let cost = US_EAST_1_2026_12.monthly(&usage, Arch::X86);
        let list = 1.0 + 0.25 + 0.2 + 16.6667 + 0.625 + 0.125 + 0.25 + 0.40 + 0.09;
        assert!((cost.total() - list).abs() < 1e-3, "{cost:?}");
        assert!((cost.api_gateway() - 1.25).abs() < 1e-9);
    }

    #[test]
    fn an_hour_sustained_gets_the_months_message_tier() {
        let p = US_EAST_1_2026_12;
        // 1,000,000 messages an hour: 730 M a month, all in the first tier.
        let small = p.hourly(
            &Usage {
                apigw_messages: 1e6,
                ..Usage::default()
            },
            Arch::X86,
        );
        assert!((small.api_gateway() - 1.0).abs() < 1e-9);
        // 10 B a month: 1 B at $1, 9 B at $0.80 → $8,200 a month.
        let hour = Usage {
            apigw_messages: 1e10 / HOURS_PER_MONTH,
            ..Usage::default()
        };
        let big = p.hourly(&hour, Arch::X86);
        assert!((big.api_gateway() * HOURS_PER_MONTH - 8_200.0).abs() < 1e-6);
        // The same hour as the month's only load stays in the first tier.
        let once = p.monthly(&hour, Arch::X86);
        assert!((once.api_gateway() - 1e10 / HOURS_PER_MONTH / 1e6).abs() < 1e-6);
    }
}
