//! The bottleneck, the cost and the table of a [`CentrifugoResult`].

use std::fmt::{self, Write as _};
use std::time::Duration;

use super::{CentrifugoResult, RegionResult};
use crate::cost::US_EAST_1_2026_12;
use crate::cost::{Arch, Cost, Usage};

/// The limit that refused something first (the one to raise first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bottleneck {
    /// A region's API Gateway account throttle.
    ApiThrottle {
        /// The region.
        region: usize,
    },
    /// A region's Lambda concurrency.
    LambdaConcurrency {
        /// The region.
        region: usize,
    },
    /// A region's new connections per second.
    NewConnections {
        /// The region.
        region: usize,
    },
    /// A DynamoDB partition's capacity.
    DynamoDbPartition,
    /// Nothing refused anything.
    None,
}

impl fmt::Display for Bottleneck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bottleneck::ApiThrottle { region } => {
                write!(f, "API Gateway account throttle (region {region})")
            }
            Bottleneck::LambdaConcurrency { region } => {
                write!(f, "Lambda concurrency (region {region})")
            }
            Bottleneck::NewConnections { region } => {
                write!(f, "new connections per second (region {region})")
            }
            Bottleneck::DynamoDbPartition => f.write_str("DynamoDB partition capacity"),
            Bottleneck::None => f.write_str("none (no limit refused anything)"),
        }
    }
}

/// The earliest first refusal over every region's limits and DynamoDB's partitions; ties go
/// to the API throttle, then Lambda, then connects, then DynamoDB.
pub(super) fn bottleneck(result: &CentrifugoResult) -> Bottleneck {
    let mut candidates: Vec<(Duration, u8, Bottleneck)> = Vec::new();
    for r in &result.regions {
        let region = r.region;
        let s = r.saturation;
        candidates.extend(s.api.map(|t| (t, 0, Bottleneck::ApiThrottle { region })));
        candidates.extend(
            s.lambda
                .map(|t| (t, 1, Bottleneck::LambdaConcurrency { region })),
        );
        candidates.extend(
            s.connects
                .map(|t| (t, 2, Bottleneck::NewConnections { region })),
        );
    }
    candidates.extend(
        result
            .dynamodb_saturated
            .map(|t| (t, 3, Bottleneck::DynamoDbPartition)),
    );
    candidates
        .into_iter()
        .min_by_key(|(t, rank, _)| (*t, *rank))
        .map_or(Bottleneck::None, |(_, _, b)| b)
}

/// The run's usage scaled to an hour, priced with [`US_EAST_1_2026_12`].
pub(super) fn hourly_cost(result: &CentrifugoResult) -> Cost {
    let s = &result.scenario;
    let secs = s.duration.as_secs_f64().max(1e-9);
    let t = &result.total;
    let prices = US_EAST_1_2026_12;
    let units = prices.apigw_units(s.payload_bytes as u64) as f64;
    let messages = (t.offered - t.inbound_429) as f64 + (t.posts - t.post_429) as f64;
    // The run's usage, then an hour of it (connection minutes are an hour's already).
    let run = Usage {
        apigw_messages: messages * units,
        lambda_requests: t.invocations as f64,
        lambda_gb_seconds: t.lambda_time.as_secs_f64() * s.lambda_memory_mb as f64 / 1_024.0,
        wru: result.wcu as f64,
        rru: result.rcu as f64,
        ..Usage::default()
    };
    let hour = Usage {
        connection_minutes: s.connections as f64 * 60.0,
        ..run.scaled(3_600.0 / secs)
    };
    let arch = if s.arm64 { Arch::Arm64 } else { Arch::X86 };
    prices.hourly(&hour, arch)
}

impl RegionResult {
    /// Adds `other`'s counts to these (the latency quantiles are not summed).
    pub fn add(&mut self, other: &RegionResult) {
        self.offered += other.offered;
        self.offered_messages += other.offered_messages;
        self.inbound_429 += other.inbound_429;
        self.lambda_throttled += other.lambda_throttled;
        self.invoked += other.invoked;
        self.broadcast_errors += other.broadcast_errors;
        self.targets += other.targets;
        self.delivered += other.delivered;
        self.gone += other.gone;
        self.failed += other.failed;
        self.not_attempted += other.not_attempted;
        self.received += other.received;
        self.received_in_window += other.received_in_window;
        self.post_429 += other.post_429;
        self.posts += other.posts;
        self.invocations += other.invocations;
        self.lambda_throttles += other.lambda_throttles;
        self.peak_concurrency += other.peak_concurrency;
        self.cold_starts += other.cold_starts;
        self.lambda_time += other.lambda_time;
        self.connects += other.connects;
        self.connects_refused += other.connects_refused;
        self.connects_429 += other.connects_429;
        self.connects_throttled += other.connects_throttled;
        self.disconnects += other.disconnects;
        self.disconnects_throttled += other.disconnects_throttled;
        self.online_end += other.online_end;
        let earliest = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        self.saturation.api = earliest(self.saturation.api, other.saturation.api);
        self.saturation.lambda = earliest(self.saturation.lambda, other.saturation.lambda);
        self.saturation.connects = earliest(self.saturation.connects, other.saturation.connects);
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn at(d: Option<Duration>) -> String {
    d.map_or_else(
        || "never".to_owned(),
        |d| format!("{:.3} s", d.as_secs_f64()),
    )
}

/// Markdown tables of `result`: one row per region and the total, then the store, the
/// bottleneck and the cost.
pub fn render(result: &CentrifugoResult) -> String {
    let secs = result.scenario.duration.as_secs_f64().max(1e-9);
    let mut out = String::from(
        "| region | offered msg/s | delivered msg/s (in window) | delivered/offered (all) | p50 | p99 | publishes lost: 429 / Lambda throttled | post 429s | Lambda throttles (all functions) | peak conc. | cold starts | GB-s | connects ok / refused (rate) / 429 / throttled | disconnects / throttled | first refusal: API / Lambda / connects |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mem_gb = result.scenario.lambda_memory_mb as f64 / 1_024.0;
    let rows = result.regions.iter().chain(std::iter::once(&result.total));
    for r in rows {
        let name = if r.region == usize::MAX {
            "total".to_owned()
        } else {
            r.region.to_string()
        };
        let _ = writeln!(
            out,
            "| {name} | {:.0} | {:.0} | {:.3} | {} | {} | {} / {} | {} | {} | {} | {} | {:.0} | {} / {} / {} / {} | {} / {} | {} / {} / {} |",
            r.offered_messages as f64 / secs,
            r.received_in_window as f64 / secs,
            r.delivered as f64 / (r.offered_messages.max(1)) as f64,
            ms(r.p50),
            ms(r.p99),
            r.inbound_429,
            r.lambda_throttled,
            r.post_429,
            r.lambda_throttles,
            r.peak_concurrency,
            r.cold_starts,
            r.lambda_time.as_secs_f64() * mem_gb,
            r.connects,
            r.connects_refused,
            r.connects_429,
            r.connects_throttled,
            r.disconnects,
            r.disconnects_throttled,
            at(r.saturation.api),
            at(r.saturation.lambda),
            at(r.saturation.connects),
        );
    }
    let c = &result.cost;
    let _ = writeln!(
        out,
        "\n| DDB RCU/s | DDB WCU/s | read / write throttles | first DDB throttle | bottleneck | cost/h API GW | Lambda | DynamoDB | total | simulated | wall |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n\
         | {:.0} | {:.0} | {} / {} | {} | {} | ${:.2} | ${:.2} | ${:.2} | ${:.2} | {:.2} s | {:.1} s |",
        result.rcu as f64 / secs,
        result.wcu as f64 / secs,
        result.read_throttles,
        result.write_throttles,
        at(result.dynamodb_saturated),
        result.bottleneck,
        c.api_gateway(),
        c.lambda,
        c.dynamodb,
        c.total(),
        result.simulated.as_secs_f64(),
        result.wall.as_secs_f64(),
    );
    out
}
