//! `stateless-ws-sim plan`: the capacity plan's arguments and its run.

use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;
use stateless_ws_sim::cost::{Arch, US_EAST_1_2026_12};
use stateless_ws_sim::plan::{PlanParams, SenderKind};
use stateless_ws_sim::plan_report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SenderArg {
    /// SigV4Sender: 26.3 µs CPU per post (benches/posts_per_core.rs, this machine).
    Lean,
    /// ApiGatewaySender (the AWS SDK): 81.8 µs CPU per post.
    Sdk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ArchArg {
    X86,
    Arm64,
}

fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e12).contains(&v) => Ok(v),
        _ => Err(format!("{s} is not a rate between 0 and 10^12")),
    }
}

fn millis(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e7 => Ok(Duration::from_secs_f64(v / 1e3)),
        _ => Err(format!("{s} is not a positive duration in milliseconds")),
    }
}

fn factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (1.0..=1e9).contains(&v) => Ok(v),
        _ => Err(format!("{s} is not a factor ≥ 1")),
    }
}

/// The defaults are the Centrifugo workload of issue 22 under AWS's default quotas.
#[derive(Debug, clap::Args)]
pub(crate) struct PlanArgs {
    /// Connections open at once.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000_000))]
    connections: u64,
    /// Members of a group room.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    room_size: u64,
    /// Group rooms each connection is in.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=1_000))]
    rooms_per_connection: u64,
    /// Whether each connection also has a personal room (true/false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    personal_room: bool,
    /// Publishes per second to group rooms (each delivered to --room-size members).
    #[arg(long, default_value_t = 50_000.0, value_parser = rate)]
    publishes_per_second: f64,
    /// Publishes per second to personal rooms (one delivery each).
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    personal_publishes_per_second: f64,
    /// Large rooms, delivered by queued fan-out when above --queued-above.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    large_rooms: u64,
    /// Members of a large room.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000_000))]
    large_room_size: u64,
    /// Publishes per second to the large rooms, together.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    large_room_publishes_per_second: f64,
    /// Bytes of one message.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=131_072))]
    message_bytes: u64,
    /// $connects (and as many $disconnects) per second; default 200,000 a minute.
    #[arg(long, default_value_t = 200_000.0 / 60.0, value_parser = rate)]
    connects_per_second: f64,
    /// The hottest group room's publish rate over the average room's.
    #[arg(long, default_value_t = 1.0, value_parser = factor)]
    hot_room_factor: f64,
    /// API Gateway's account throttle per region, requests/s.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    api_rate: u64,
    /// API Gateway's burst per region.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    api_burst: u64,
    /// New WebSocket connections per second per region.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    new_connections_per_second: u64,
    /// Lambda concurrency per region.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    lambda_concurrency: u64,
    /// Regions (or accounts) the connections are split across.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
    regions: u64,
    /// The management API sender (its CPU per post).
    #[arg(long, value_enum, default_value_t = SenderArg::Lean)]
    sender: SenderArg,
    /// Median latency of one post, ms.
    #[arg(long, default_value = "12", value_parser = millis)]
    latency_p50_ms: Duration,
    /// 99th percentile latency of one post, ms.
    #[arg(long, default_value = "40", value_parser = millis)]
    latency_p99_ms: Duration,
    /// Lambda memory, MB (1,769 = one vCPU).
    #[arg(long, default_value_t = 1_769, value_parser = clap::value_parser!(u64).range(128..=10_240))]
    lambda_mb: u64,
    /// Lambda architecture.
    #[arg(long, value_enum, default_value_t = ArchArg::X86)]
    arch: ArchArg,
    /// Rooms larger than this are delivered by queued fan-out.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    queued_above: u64,
    /// Also run scenario (b)'s engine at a small size to cross-check the delivery rate.
    #[arg(long)]
    check: bool,
    /// Members of the --check broadcast.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(100..=1_000_000))]
    check_members: u64,
    /// Workers of the --check's queued run.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    check_workers: u64,
}

impl PlanArgs {
    fn params(&self) -> PlanParams {
        let mut p = PlanParams::default();
        p.connections = self.connections;
        p.room_size = self.room_size;
        p.rooms_per_connection = self.rooms_per_connection;
        p.personal_room = self.personal_room;
        p.publishes_per_second = self.publishes_per_second;
        p.personal_publishes_per_second = self.personal_publishes_per_second;
        p.large_rooms = self.large_rooms;
        p.large_room_size = self.large_room_size;
        p.large_room_publishes_per_second = self.large_room_publishes_per_second;
        p.message_bytes = self.message_bytes;
        p.connects_per_second = self.connects_per_second;
        p.hot_room_factor = self.hot_room_factor;
        p.api_rate = self.api_rate;
        p.api_burst = self.api_burst;
        p.new_connections_per_second = self.new_connections_per_second;
        p.lambda_concurrency = self.lambda_concurrency;
        p.regions = self.regions;
        p.sender = match self.sender {
            SenderArg::Lean => SenderKind::Lean,
            SenderArg::Sdk => SenderKind::Sdk,
        };
        p.latency_p50 = self.latency_p50_ms;
        p.latency_p99 = self.latency_p99_ms.max(self.latency_p50_ms);
        p.lambda_mb = self.lambda_mb;
        p.arch = match self.arch {
            ArchArg::X86 => Arch::X86,
            ArchArg::Arm64 => Arch::Arm64,
        };
        p.queued_above = self.queued_above;
        p
    }
}

/// Prints the plan (and the check); exit 2 for inconsistent arguments.
pub(crate) fn run(args: &PlanArgs) -> ExitCode {
    if args.large_rooms > 0 && args.large_room_size == 0 {
        eprintln!("error: --large-rooms needs --large-room-size");
        return ExitCode::from(2);
    }
    if args.publishes_per_second > 0.0 && args.rooms_per_connection == 0 {
        eprintln!("error: --publishes-per-second to group rooms needs --rooms-per-connection ≥ 1");
        return ExitCode::from(2);
    }
    let params = args.params();
    let plan = params.evaluate();
    print!(
        "{}",
        plan_report::render(&params, &plan, &US_EAST_1_2026_12)
    );
    if args.check {
        let members = usize::try_from(args.check_members).unwrap_or(20_000);
        match plan_report::check(&params, members, args.check_workers) {
            Ok(rows) => {
                println!(
                    "\ncheck: one broadcast to {members} members in scenario (b)'s engine (one region's throttle, the plan's sender and latency, no gone connections) against the formula:\n"
                );
                print!("{}", plan_report::render_check(&rows));
            }
            Err(e) => {
                eprintln!("error: the check failed: {}", e.chain());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
