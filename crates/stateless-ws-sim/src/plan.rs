//! The capacity plan: an analytic model of a workload under AWS's quotas.
//!
//! Given connections, rooms, message rates and quotas, [`PlanParams::evaluate`] finds each
//! resource's utilisation at the requested workload, the delivery rate each one allows
//! (requested deliveries ÷ utilisation), the achievable rate (the least of them, at most the
//! requested rate), the bottleneck (the most utilised), the delivery latency, the worker
//! concurrency of queued fan-out, DynamoDB's capacity and the monthly cost
//! ([`cost`](crate::cost)). It is a closed formula: fast at any size. `stateless-ws-sim plan
//! --check` runs scenario (b)'s engine ([`crate::scenario`]) at a small size to cross-check
//! the per-broadcast rate the formulas give ([`broadcast_rate`]).
//!
//! The model, in one place:
//!
//! - **Deliveries** per second: group publishes × room size + personal publishes + large-room
//!   publishes × large-room size. Every delivery is one `POST @connections` (gone connections
//!   are not modelled here).
//! - **API Gateway's account throttle** (per region): deliveries + clients' inbound messages
//!   (the publishes) + `$connect`s.
//! - **Lambda concurrency** (per region), by Little's law: Σ invocations/s × duration. A
//!   publish to a room of up to [`PlanParams::queued_above`] members is one invocation that
//!   lists the room (one `Query` page) and broadcasts in-line ([`inline_time`]); a larger room's
//!   publish lists and enqueues jobs of [`PlanParams::targets_per_job`] targets that workers
//!   deliver; `$connect` writes one record per room, `$disconnect` reads and deletes them.
//! - **CPU**: posts × CPU per post (`--sender`) over the instances' vCPUs (a function of
//!   1,769 MB has one; less memory, a share). Durations already include the CPU, so this row is
//!   the floor under the concurrency row.
//! - **DynamoDB**: the hottest room's GSI partition — its listings' read units per second
//!   against 3,000 RCU/s, its joins against 1,000 WCU/s.
//! - **New connections** per second (per region).
//! - **Latency** of a delivery in a group room: the listing, the member's place in the
//!   broadcast (CPU and waves of posts in flight), and one post's latency (p50 or p99 of the
//!   log-normal model); plus queueing at the bottleneck by an M/D/1 approximation
//!   (`s·u/(2(1−u))` mean, ×4.6 for the 99th percentile), where `s` is what a rejected request
//!   costs (the broadcaster's 50 ms backoff after a 429; an invocation's duration; a page).
//!   Above a limit the backlog grows without bound by (requested − achievable) deliveries a
//!   second.

use std::time::Duration;

use crate::cost::{Arch, SECONDS_PER_MONTH, Usage};
use crate::store::{PAGE_BYTES, StoreParams};

/// The CPU of one signed post, by sender: measured by `benches/posts_per_core.rs` on this
/// machine (2 cores; 2026-12): the lean `SigV4Sender` 26.3 µs, the SDK's `ApiGatewaySender`
/// 81.8 µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderKind {
    /// `SigV4Sender` (aws-sigv4 over one pooled hyper client): 26.3 µs per post.
    Lean,
    /// `ApiGatewaySender` (aws-sdk-apigatewaymanagement): 81.8 µs per post.
    Sdk,
}

impl SenderKind {
    /// CPU per post on one core.
    pub fn post_cpu(self) -> Duration {
        match self {
            SenderKind::Lean => Duration::from_nanos(26_300),
            SenderKind::Sdk => Duration::from_nanos(81_800),
        }
    }
}

/// Memory of a Lambda function with one full vCPU (AWS Lambda developer guide).
pub const MB_PER_VCPU: f64 = 1_769.0;

/// z of the 99th percentile of the standard normal.
const Z99: f64 = 2.326_347_874;

/// The workload and the quotas.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PlanParams {
    /// Connections open at once.
    pub connections: u64,
    /// Members of a group room.
    pub room_size: u64,
    /// Group rooms each connection is in.
    pub rooms_per_connection: u64,
    /// Whether each connection also has a room of its own.
    pub personal_room: bool,
    /// Publishes per second to group rooms (each delivered to `room_size` members).
    pub publishes_per_second: f64,
    /// Publishes per second to personal rooms (each delivered to one connection).
    pub personal_publishes_per_second: f64,
    /// Large rooms (delivered by queued fan-out above [`queued_above`](Self::queued_above)).
    pub large_rooms: u64,
    /// Members of a large room.
    pub large_room_size: u64,
    /// Publishes per second to large rooms, all of them together.
    pub large_room_publishes_per_second: f64,
    /// Bytes of one message.
    pub message_bytes: u64,
    /// `$connect`s (and as many `$disconnect`s) per second.
    pub connects_per_second: f64,
    /// The hottest group room's publish rate over the average room's (1: uniform).
    pub hot_room_factor: f64,
    /// API Gateway's account throttle per region, requests/s.
    pub api_rate: u64,
    /// API Gateway's burst per region.
    pub api_burst: u64,
    /// New WebSocket connections per second per region.
    pub new_connections_per_second: u64,
    /// Lambda concurrency per region.
    pub lambda_concurrency: u64,
    /// Regions (or accounts) the connections are split across, evenly.
    pub regions: u64,
    /// The management API sender (its CPU per post).
    pub sender: SenderKind,
    /// Median latency of one post.
    pub latency_p50: Duration,
    /// 99th percentile latency of one post.
    pub latency_p99: Duration,
    /// Lambda memory, MB (1,769 = one vCPU).
    pub lambda_mb: u64,
    /// Lambda architecture (its GB-second price).
    pub arch: Arch,
    /// Posts in flight per broadcaster (the crate's default 64).
    pub concurrency: u64,
    /// Rooms larger than this are delivered by queued fan-out.
    pub queued_above: u64,
    /// Targets per fan-out job (the crate's default 500).
    pub targets_per_job: u64,
    /// The DynamoDB model: record size, partition limits, latencies.
    pub store: StoreParams,
}

impl Default for PlanParams {
    /// The Centrifugo workload of issue 22 under AWS's default quotas, the lean sender.
    fn default() -> Self {
        Self {
            connections: 1_000_000,
            room_size: 10,
            rooms_per_connection: 1,
            personal_room: true,
            publishes_per_second: 50_000.0,
            personal_publishes_per_second: 0.0,
            large_rooms: 0,
            large_room_size: 0,
            large_room_publishes_per_second: 0.0,
            message_bytes: 100,
            connects_per_second: 200_000.0 / 60.0,
            hot_room_factor: 1.0,
            api_rate: 10_000,
            api_burst: 5_000,
            new_connections_per_second: 500,
            lambda_concurrency: 1_000,
            regions: 1,
            sender: SenderKind::Lean,
            latency_p50: Duration::from_millis(12),
            latency_p99: Duration::from_millis(40),
            lambda_mb: 1_769,
            arch: Arch::X86,
            concurrency: 64,
            queued_above: 5_000,
            targets_per_job: 500,
            store: StoreParams::default(),
        }
    }
}

/// One resource's row of the plan.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Resource {
    /// Its name.
    pub name: &'static str,
    /// Demand at the requested workload, in `unit`.
    pub demand: f64,
    /// Capacity, in `unit`.
    pub capacity: f64,
    /// The unit of demand and capacity.
    pub unit: &'static str,
    /// What a request rejected or queued by it costs in time (the queueing model's `s`).
    pub service: Duration,
}

impl Resource {
    /// Demand over capacity.
    pub fn utilisation(&self) -> f64 {
        self.demand / self.capacity.max(1e-12)
    }
}

/// What [`PlanParams::evaluate`] finds.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Plan {
    /// Deliveries per second asked for.
    pub requested: f64,
    /// Deliveries per second the resources allow (at most `requested`).
    pub achievable: f64,
    /// Every resource at the requested workload.
    pub resources: Vec<Resource>,
    /// The most utilised resource.
    pub bottleneck: &'static str,
    /// Delivery latency, group rooms, median (None: grows without bound).
    pub p50: Option<Duration>,
    /// Delivery latency, group rooms, 99th percentile (None: grows without bound).
    pub p99: Option<Duration>,
    /// Backlog growth, deliveries per second, above the limit (0 below it).
    pub backlog_per_second: f64,
    /// One in-line publish invocation to a group room.
    pub publish_invocation: Duration,
    /// Fan-out jobs per large-room publish.
    pub jobs_per_large_publish: u64,
    /// Worker invocations at once for queued fan-out (Little's law), all regions.
    pub worker_concurrency: f64,
    /// Workers that together post at the account throttle's rate (all regions): the
    /// concurrency that delivers one large-room publish fastest.
    pub workers_at_throttle: u64,
    /// Time to deliver one large-room publish with
    /// [`workers_at_throttle`](Self::workers_at_throttle) workers (zero: no large rooms).
    pub large_room_broadcast: Duration,
    /// Read capacity consumed per second (eventually consistent RRU), all regions.
    pub rru_per_second: f64,
    /// Write capacity consumed per second (WRU, GSI writes included), all regions.
    pub wru_per_second: f64,
    /// A month's usage at the requested workload.
    pub usage: Usage,
}

/// Mean of the log-normal latency model with median `p50` and 99th percentile `p99`.
pub fn mean_latency(p50: Duration, p99: Duration) -> Duration {
    let p50s = p50.as_secs_f64().max(1e-9);
    let sigma = (p99.as_secs_f64().max(p50s) / p50s).ln() / Z99;
    Duration::from_secs_f64(p50s * (sigma * sigma / 2.0).exp())
}

/// Posts per second of one broadcaster on one core with `in_flight` posts in flight: the
/// lesser of its core (`1/cpu`) and its window (`in_flight / (mean latency + cpu)`).
pub fn broadcaster_rate(cpu: Duration, mean: Duration, in_flight: u64) -> f64 {
    let cpu = cpu.as_secs_f64();
    let by_core = if cpu > 0.0 { 1.0 / cpu } else { f64::INFINITY };
    let by_window = in_flight.max(1) as f64 / (mean.as_secs_f64() + cpu).max(1e-9);
    by_core.min(by_window)
}

/// Posts per second of one broadcast to `members` by `broadcasters` broadcasters (1: in-line;
/// W: queued workers), under a throttle of `api_rate` requests/s: the formula `--check`
/// compares with scenario (b)'s engine. The listing's pages are left out (they overlap the
/// posts).
pub fn broadcast_rate(
    cpu: Duration,
    mean: Duration,
    in_flight: u64,
    broadcasters: u64,
    api_rate: u64,
) -> f64 {
    (broadcasters.max(1) as f64 * broadcaster_rate(cpu, mean, in_flight)).min(api_rate as f64)
}

/// Time of one in-line broadcast to `members` on one instance (its listing excluded): the
/// posts at the broadcaster's rate, and the last post's latency.
pub fn inline_time(members: u64, cpu: Duration, mean: Duration, in_flight: u64) -> Duration {
    if members == 0 {
        return Duration::ZERO;
    }
    let rate = broadcaster_rate(cpu, mean, in_flight);
    Duration::from_secs_f64((members.saturating_sub(1)) as f64 / rate) + mean + cpu
}

impl PlanParams {
    fn cpu(&self) -> Duration {
        // Less than 1,769 MB is a share of a vCPU: CPU work takes longer in proportion.
        let vcpu = self.vcpus();
        self.sender.post_cpu().div_f64(vcpu.min(1.0))
    }

    /// vCPUs of one instance (memory / 1,769 MB, at most 6).
    pub fn vcpus(&self) -> f64 {
        (self.lambda_mb as f64 / MB_PER_VCPU).clamp(0.01, 6.0)
    }

    fn page_time(&self, rows: u64) -> Duration {
        let bytes = rows.max(1) as f64 * self.store.record_bytes as f64;
        self.store.page_latency
            + self
                .store
                .page_latency_per_mb
                .mul_f64(bytes / PAGE_BYTES as f64)
    }

    fn pages(&self, rows: u64) -> u64 {
        rows.div_ceil(self.store.rows_per_page() as u64).max(1)
    }

    /// Deliveries per second asked for.
    pub fn requested_deliveries(&self) -> f64 {
        self.publishes_per_second * self.room_size as f64
            + self.personal_publishes_per_second
            + self.large_room_publishes_per_second * self.large_room_size as f64
    }

    /// Group rooms in all (connections × rooms per connection ÷ room size).
    pub fn group_rooms(&self) -> f64 {
        (self.connections * self.rooms_per_connection) as f64 / self.room_size.max(1) as f64
    }

    /// Evaluates the plan.
    pub fn evaluate(&self) -> Plan {
        let regions = self.regions.max(1) as f64;
        let mean = mean_latency(self.latency_p50, self.latency_p99);
        let cpu = self.cpu();
        let op = self.store.op_latency;
        let rooms_each = self.rooms_per_connection + u64::from(self.personal_room);
        let requested = self.requested_deliveries();
        let inbound = self.publishes_per_second
            + self.personal_publishes_per_second
            + self.large_room_publishes_per_second;

        // Invocations and their durations (Little's law for the concurrency).
        let group_queued = self.room_size > self.queued_above;
        let publish_invocation = self.page_time(self.room_size)
            + inline_time(self.room_size, cpu, mean, self.concurrency);
        let personal_invocation = self.page_time(1) + inline_time(1, cpu, mean, self.concurrency);
        let connect_invocation = op * rooms_each.max(1) as u32;
        let disconnect_invocation = op * 2;
        let jobs_per_large_publish = self.large_room_size.div_ceil(self.targets_per_job.max(1));
        let large_pages = self.pages(self.large_room_size);
        let planner_invocation = self.page_time(self.store.rows_per_page() as u64)
            * large_pages as u32
            + op * jobs_per_large_publish.div_ceil(10) as u32;
        let job_time = inline_time(self.targets_per_job, cpu, mean, self.concurrency)
            + Duration::from_micros(500);
        let jobs_per_second = self.large_room_publishes_per_second * jobs_per_large_publish as f64;
        let worker_concurrency = jobs_per_second * job_time.as_secs_f64();
        let group_time = if group_queued {
            // A group room above the threshold: its publish is a planner plus jobs.
            self.page_time(self.room_size) + op
        } else {
            publish_invocation
        };
        let group_jobs = if group_queued {
            self.publishes_per_second * self.room_size.div_ceil(self.targets_per_job) as f64
        } else {
            0.0
        };
        let concurrency_demand = self.publishes_per_second * group_time.as_secs_f64()
            + group_jobs * job_time.as_secs_f64()
            + self.personal_publishes_per_second * personal_invocation.as_secs_f64()
            + self.connects_per_second * (connect_invocation + disconnect_invocation).as_secs_f64()
            + self.large_room_publishes_per_second * planner_invocation.as_secs_f64()
            + worker_concurrency;
        let invocations_per_second =
            inbound + 2.0 * self.connects_per_second + (jobs_per_second + group_jobs) / 10.0;

        // DynamoDB: the hottest room's GSI partition.
        let listing_rru =
            StoreParams::read_units(self.room_size as usize * self.store.record_bytes) as f64;
        let hot_room_rate = if self.group_rooms() > 0.0 {
            self.publishes_per_second / self.group_rooms() * self.hot_room_factor.max(1.0)
        } else {
            0.0
        };
        let large_room_rate = if self.large_rooms > 0 {
            self.large_room_publishes_per_second / self.large_rooms as f64
        } else {
            0.0
        };
        let large_listing_rru = large_pages as f64
            * StoreParams::read_units(
                (self.large_room_size as usize * self.store.record_bytes).min(PAGE_BYTES),
            ) as f64;
        let hot_rru = (hot_room_rate * listing_rru).max(large_room_rate * large_listing_rru);
        let hot_wru = if self.group_rooms() > 0.0 {
            self.connects_per_second * self.rooms_per_connection as f64 / self.group_rooms() * 2.0
        } else {
            0.0
        };
        let partition = if hot_rru / self.store.partition_rcu as f64
            >= hot_wru / self.store.partition_wcu as f64
        {
            (hot_rru, self.store.partition_rcu as f64, "RCU/s")
        } else {
            (hot_wru, self.store.partition_wcu as f64, "WCU/s")
        };

        let resources = vec![
            Resource {
                name: "API Gateway throttle",
                demand: requested + inbound + self.connects_per_second,
                capacity: self.api_rate as f64 * regions,
                unit: "requests/s",
                service: Duration::from_millis(50),
            },
            Resource {
                name: "Lambda concurrency",
                demand: concurrency_demand,
                capacity: self.lambda_concurrency as f64 * regions,
                unit: "invocations at once",
                service: publish_invocation,
            },
            Resource {
                name: "CPU (sender)",
                demand: requested * self.sender.post_cpu().as_secs_f64(),
                capacity: self.lambda_concurrency as f64 * regions * self.vcpus(),
                unit: "vCPUs",
                service: cpu,
            },
            Resource {
                name: "DynamoDB hottest partition",
                demand: partition.0,
                capacity: partition.1,
                unit: partition.2,
                service: self.page_time(self.room_size),
            },
            Resource {
                name: "new connections",
                demand: self.connects_per_second,
                capacity: self.new_connections_per_second as f64 * regions,
                unit: "connects/s",
                service: Duration::from_secs_f64(
                    1.0 / (self.new_connections_per_second.max(1) as f64 * regions),
                ),
            },
        ];
        let (bottleneck, worst) = resources
            .iter()
            .map(|r| (r.name, r.utilisation()))
            .fold(("none", 0.0), |a, b| if b.1 > a.1 { b } else { a });
        let achievable = if worst > 1.0 {
            requested / worst
        } else {
            requested
        };
        let service = resources
            .iter()
            .find(|r| r.name == bottleneck)
            .map_or(Duration::ZERO, |r| r.service);

        // Latency of a delivery in a group room.
        let sigma = (self.latency_p99.as_secs_f64() / self.latency_p50.as_secs_f64().max(1e-9))
            .max(1.0)
            .ln()
            / Z99;
        let p99_post = self.latency_p50.mul_f64((sigma * Z99).exp());
        let place = |q: f64| {
            let k = (q * self.room_size as f64).floor() as u64;
            inline_time(k + 1, cpu, mean, self.concurrency).saturating_sub(mean + cpu)
        };
        let listing = self.page_time(self.room_size);
        let (p50, p99, backlog) = if worst >= 1.0 {
            (None, None, (requested - achievable).max(0.0))
        } else {
            let wait = service.mul_f64(worst / (2.0 * (1.0 - worst)));
            (
                Some(listing + place(0.5) + self.latency_p50 + wait),
                Some(listing + place(0.99) + p99_post + wait.mul_f64(100f64.ln())),
                0.0,
            )
        };
        let per_worker = broadcaster_rate(cpu, mean, self.concurrency);
        let throttle = (self.api_rate as f64 * regions).round() as u64;
        let workers_at_throttle = (throttle as f64 / per_worker.max(1e-9)).ceil() as u64;
        let large_room_broadcast = if jobs_per_large_publish > 0 {
            let workers = workers_at_throttle.min(jobs_per_large_publish).max(1);
            let rate = broadcast_rate(cpu, mean, self.concurrency, workers, throttle);
            planner_invocation
                + Duration::from_secs_f64(self.large_room_size as f64 / rate.max(1e-9))
        } else {
            Duration::ZERO
        };

        // DynamoDB capacity, all regions (on-demand units; a record write also writes the GSI).
        let rru_per_second = self.publishes_per_second
            * (self.room_size as f64 * self.store.record_bytes as f64 / 4_096.0)
                .ceil()
                .max(1.0)
            * 0.5
            + self.personal_publishes_per_second * 0.5
            + self.large_room_publishes_per_second * large_listing_rru
            + self.connects_per_second * 0.5;
        let wru_per_second = self.connects_per_second * rooms_each as f64 * 2.0 * 2.0;

        let month = SECONDS_PER_MONTH;
        let units = self.message_bytes.div_ceil(32 * 1_024).max(1) as f64;
        let job_bytes = self.targets_per_job * 40 + self.message_bytes;
        let sqs_units = job_bytes.div_ceil(64 * 1_024).max(1) as f64;
        let gb_seconds_per_second = concurrency_demand * self.lambda_mb as f64 / 1_024.0;
        let usage = Usage {
            apigw_messages: (requested + inbound) * units * month,
            connection_minutes: self.connections as f64 * 60.0 * crate::cost::HOURS_PER_MONTH,
            lambda_requests: invocations_per_second * month,
            lambda_gb_seconds: gb_seconds_per_second * month,
            wru: wru_per_second * month,
            rru: rru_per_second * month,
            storage_gb: self.connections as f64
                * rooms_each as f64
                * (self.store.record_bytes as f64 + 100.0)
                * 2.0
                / 1e9,
            // Send, receive and delete, ten jobs to a request.
            sqs_requests: (jobs_per_second + group_jobs) * 3.0 / 10.0 * sqs_units * month,
            transfer_out_gb: requested * self.message_bytes as f64 * month / 1e9,
        };
        Plan {
            requested,
            achievable,
            resources,
            bottleneck,
            p50,
            p99,
            backlog_per_second: backlog,
            publish_invocation,
            jobs_per_large_publish,
            worker_concurrency,
            workers_at_throttle,
            large_room_broadcast,
            rru_per_second,
            wru_per_second,
            usage,
        }
    }
}
