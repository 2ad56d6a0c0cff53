//! Scenario (a), Centrifugo's published workload, and (d), the same across regions.
//!
//! `connections` clients, each in a personal room (`user-<id>`, one member) and one group room
//! of `group_size` members; publishes arrive as a seeded Poisson stream (`publish_rate` per
//! second, a `personal_share` of them to personal rooms); clients reconnect as a second
//! Poisson stream (`churn_per_minute`: each a disconnect, then a connect).
//!
//! Each publish is the message route's Lambda invocation in the publisher's region: the
//! client's message first passes the region's account throttle (a 429 loses it), then takes a
//! slot of the region's Lambda concurrency (none free: **throttled**, API Gateway answers the
//! client an error and the message is lost — the client is modelled as **not retrying**), starts
//! an instance if none is idle (a cold start), and runs the library's
//! [`Broadcaster::broadcast`](stateless_ws::broadcast::Broadcaster::broadcast) to the room on
//! the instance's own [`SimCore`](crate::core::SimCore), posting through a
//! [`RoutingSender`](crate::regions::RoutingSender) that sends each target to its own region's
//! [`SimApi`](crate::sender::SimApi). A disconnect is the `$disconnect` Lambda removing the
//! connection's records ([`ConnectionStore::remove_connections`]); a connect passes the region's
//! new-connections-per-second limit and the account throttle, then the `$connect` Lambda joins
//! the personal and the group room. All three functions share the region's concurrency.
//!
//! [`ConnectionStore::remove_connections`]: stateless_ws::store::ConnectionStore::remove_connections

mod report;
mod run;
mod tap;

use std::time::Duration;

pub use report::{Bottleneck, render};

use crate::cost::Cost;
use crate::sender::ApiParams;
use crate::store::StoreParams;

/// The scenario's parameters. Quotas are per region.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CentrifugoScenario {
    /// Connections at the start, one per user (default 1,000,000).
    pub connections: usize,
    /// Members of a group room (default 10).
    pub group_size: usize,
    /// Publishes per second offered, all rooms (default 50,000).
    pub publish_rate: f64,
    /// Share of publishes to personal rooms, 0–1 (default 0).
    pub personal_share: f64,
    /// Reconnects per minute, each a disconnect then a connect (default 200,000).
    pub churn_per_minute: f64,
    /// Simulated time of arrivals (default 60 s); invocations in flight then are finished.
    pub duration: Duration,
    /// Regions (APIs), connections split round-robin by user (default 1).
    pub regions: usize,
    /// Seeds every draw (default 1).
    pub seed: u64,
    /// Each region's management API; `rate`/`burst` are the account throttle per region.
    pub api: ApiParams,
    /// The DynamoDB model (one table for every region).
    pub store: StoreParams,
    /// Lambda concurrency per region, shared by the three functions (default 1,000).
    pub lambda_limit: usize,
    /// A cold start (default 250 ms).
    pub cold_start: Duration,
    /// CPU per invocation besides the posts: parsing the event, building the reply (default
    /// 0.2 ms, assumed).
    pub invocation_cpu: Duration,
    /// Memory of the functions, MB, for the cost (default 1,024).
    pub lambda_memory_mb: u64,
    /// Whether the functions run on arm64 (the price; default x86).
    pub arm64: bool,
    /// New WebSocket connections per second per region (default 500, AWS's default quota).
    pub new_connections_per_sec: u64,
    /// The broadcaster's posts in flight (default 64).
    pub concurrency: usize,
    /// Bytes of a published message (default 100).
    pub payload_bytes: usize,
}

impl Default for CentrifugoScenario {
    fn default() -> Self {
        Self {
            connections: 1_000_000,
            group_size: 10,
            publish_rate: 50_000.0,
            personal_share: 0.0,
            churn_per_minute: 200_000.0,
            duration: Duration::from_secs(60),
            regions: 1,
            seed: 1,
            api: ApiParams {
                gone_fraction: 0.0,
                ..ApiParams::default()
            },
            store: StoreParams::default(),
            lambda_limit: 1_000,
            cold_start: Duration::from_millis(250),
            invocation_cpu: Duration::from_micros(200),
            lambda_memory_mb: 1_024,
            arm64: false,
            new_connections_per_sec: 500,
            concurrency: 64,
            payload_bytes: 100,
        }
    }
}

/// First virtual time (from the start) each limit refused something in a region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Saturation {
    /// The account throttle (a message, a connect or a post answered 429).
    pub api: Option<Duration>,
    /// Lambda concurrency (an invocation throttled).
    pub lambda: Option<Duration>,
    /// New connections per second (a connect refused).
    pub connects: Option<Duration>,
}

/// One region's figures (or their sum).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RegionResult {
    /// Region index (`usize::MAX` for the total).
    pub region: usize,
    /// Publishes offered (from clients of this region).
    pub offered: u64,
    /// Messages the offered publishes would deliver: the rooms' nominal sizes.
    pub offered_messages: u64,
    /// Publishes answered 429 by the account throttle (lost).
    pub inbound_429: u64,
    /// Publishes whose invocation was throttled by Lambda concurrency (lost).
    pub lambda_throttled: u64,
    /// Publishes whose broadcast ran.
    pub invoked: u64,
    /// Broadcasts that could not list their room (an error of the call).
    pub broadcast_errors: u64,
    /// Targets of the broadcasts that ran (members of the room when it was read); each is
    /// delivered, gone, failed or not attempted.
    pub targets: u64,
    /// Messages delivered (from this region's publishes).
    pub delivered: u64,
    /// Targets found gone (disconnected after the room was read).
    pub gone: u64,
    /// Targets failed for good (retries spent).
    pub failed: u64,
    /// Targets not attempted.
    pub not_attempted: u64,
    /// Deliveries the sender saw to this region's connections (must equal the sum of the
    /// broadcasts' `delivered_count` over all regions).
    pub received: u64,
    /// Of `received`, those within the arrival window (the delivered rate's numerator; the
    /// rest were delivered while the backlog drained).
    pub received_in_window: u64,
    /// Posts to this region's API answered 429.
    pub post_429: u64,
    /// Posts made to this region's API (retries included).
    pub posts: u64,
    /// Lambda invocations of all three functions.
    pub invocations: u64,
    /// Invocations throttled, all functions.
    pub lambda_throttles: u64,
    /// Invocations running at once, at most.
    pub peak_concurrency: usize,
    /// Instances started.
    pub cold_starts: u64,
    /// Sum of invocation durations (cold starts included).
    pub lambda_time: Duration,
    /// Connects completed.
    pub connects: u64,
    /// Connects refused by the new-connections limit.
    pub connects_refused: u64,
    /// Connects answered 429 by the account throttle.
    pub connects_429: u64,
    /// Connects whose `$connect` invocation was throttled.
    pub connects_throttled: u64,
    /// Disconnects handled by `$disconnect`.
    pub disconnects: u64,
    /// Disconnects whose `$disconnect` was throttled (records left stale).
    pub disconnects_throttled: u64,
    /// Connections at the end.
    pub online_end: u64,
    /// Median publish → delivery latency (deliveries to this region's connections).
    pub p50: Duration,
    /// 99th percentile publish → delivery latency.
    pub p99: Duration,
    /// When each limit first refused something.
    pub saturation: Saturation,
}

/// A run's figures.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CentrifugoResult {
    /// The parameters run.
    pub scenario: CentrifugoScenario,
    /// Per region.
    pub regions: Vec<RegionResult>,
    /// The sum (latency over all deliveries).
    pub total: RegionResult,
    /// DynamoDB read capacity consumed.
    pub rcu: u64,
    /// DynamoDB write capacity consumed.
    pub wcu: u64,
    /// Reads throttled by a partition.
    pub read_throttles: u64,
    /// Writes throttled by a partition.
    pub write_throttles: u64,
    /// When a partition first throttled.
    pub dynamodb_saturated: Option<Duration>,
    /// The limit that refused first.
    pub bottleneck: Bottleneck,
    /// Cost per hour of this load (prices of [`US_EAST_1_2026_12`](crate::cost::US_EAST_1_2026_12)).
    pub cost: Cost,
    /// Virtual time until the last invocation ended.
    pub simulated: Duration,
    /// Real time of the run.
    pub wall: Duration,
}

impl CentrifugoResult {
    /// Messages delivered within the arrival window, per second of it.
    pub fn delivered_per_sec(&self) -> f64 {
        self.total.received_in_window as f64 / self.scenario.duration.as_secs_f64().max(1e-9)
    }

    /// Offered messages per second.
    pub fn offered_per_sec(&self) -> f64 {
        self.total.offered_messages as f64 / self.scenario.duration.as_secs_f64().max(1e-9)
    }
}
