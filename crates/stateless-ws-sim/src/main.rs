//! `stateless-ws-sim`: run a scenario of the simulator and print its table.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

mod centrifugo_cli;
use stateless_ws_sim::scenario::{BroadcastScenario, Mode};
use stateless_ws_sim::table;

mod plan_cmd;
mod storm_cli;

/// A deterministic simulator of stateless-ws fan-out under AWS's quotas.
#[derive(Debug, Parser)]
#[command(name = "stateless-ws-sim", version)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// (b) One broadcast to a room of N members, in-line vs queued with W workers.
    Broadcast(BroadcastArgs),
    /// The capacity plan: delivery rate, latency, bottleneck, DynamoDB capacity and monthly cost
    /// of a workload under AWS's quotas (analytic; --check cross-checks with the simulator).
    Plan(plan_cmd::PlanArgs),
    /// (c) The reconnect storm: N clients reconnecting within a window, with presence and resume.
    Storm(storm_cli::StormArgs),
    /// (a) Centrifugo's workload for one simulated minute; (d) the same across --regions.
    Centrifugo(centrifugo_cli::CentrifugoArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Inline,
    Queued,
    Both,
}

#[derive(Debug, clap::Args)]
struct BroadcastArgs {
    /// Members of the room.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=50_000_000))]
    members: u64,
    /// Lambda workers at most (the worker function's maximum concurrency).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    workers: u64,
    /// The account's Lambda concurrency limit (bounds --workers).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    lambda_limit: u64,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// API Gateway's account throttle, requests per second.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// API Gateway's burst.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    burst: u64,
    /// Median post latency, milliseconds.
    #[arg(long, default_value_t = 12.0)]
    latency_p50_ms: f64,
    /// 99th percentile post latency, milliseconds.
    #[arg(long, default_value_t = 40.0)]
    latency_p99_ms: f64,
    /// Share of connections that are gone (0–1).
    #[arg(long, default_value_t = 0.01)]
    gone: f64,
    /// CPU per signed post, microseconds.
    #[arg(long, default_value_t = 120.0)]
    post_cpu_us: f64,
    /// A cold start, milliseconds.
    #[arg(long, default_value_t = 250.0)]
    cold_start_ms: f64,
    /// Posts in flight per broadcaster.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    concurrency: u64,
    /// SQS messages per worker invocation (1–10).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10))]
    batch_size: u64,
    /// Targets per fan-out job.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    targets_per_job: u64,
    /// Which runs.
    #[arg(long, value_enum, default_value_t = ModeArg::Both)]
    mode: ModeArg,
}

fn duration_ms(name: &str, ms: f64) -> Result<Duration, String> {
    if (0.0..1e9).contains(&ms) {
        Ok(Duration::from_secs_f64(ms / 1e3))
    } else {
        Err(format!("--{name}: {ms} is not a duration in milliseconds"))
    }
}

fn scenario(args: &BroadcastArgs) -> Result<BroadcastScenario, String> {
    if !(0.0..=1.0).contains(&args.gone) {
        return Err(format!("--gone: {} is not between 0 and 1", args.gone));
    }
    let mut s = BroadcastScenario::default();
    let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    s.members = to_usize(args.members);
    s.seed = args.seed;
    s.concurrency = to_usize(args.concurrency);
    s.api.rate = args.rate;
    s.api.burst = args.burst;
    s.api.latency_p50 = duration_ms("latency-p50-ms", args.latency_p50_ms)?;
    s.api.latency_p99 = duration_ms("latency-p99-ms", args.latency_p99_ms)?;
    s.api.gone_fraction = args.gone;
    s.api.post_cpu = duration_ms("post-cpu-us", args.post_cpu_us / 1e3)?;
    s.lambda.cold_start = duration_ms("cold-start-ms", args.cold_start_ms)?;
    s.lambda.concurrency = to_usize(args.workers.min(args.lambda_limit));
    s.lambda.batch_size = to_usize(args.batch_size);
    s.targets_per_job = to_usize(args.targets_per_job);
    Ok(s)
}

/// Peak resident memory of this process (Linux `VmHWM`), if known.
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.trim_start_matches("VmHWM:").trim().to_owned())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.scenario {
        Scenario::Broadcast(args) => args,
        Scenario::Plan(args) => return plan_cmd::run(&args),
        Scenario::Storm(args) => return storm_cli::run(&args),
        Scenario::Centrifugo(args) => return centrifugo_cli::main(&args),
    };
    let s = match scenario(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let modes: &[Mode] = match args.mode {
        ModeArg::Inline => &[Mode::InLine],
        ModeArg::Queued => &[Mode::Queued],
        ModeArg::Both => &[Mode::InLine, Mode::Queued],
    };
    println!(
        "scenario (b): broadcast to {} members, seed {}, throttle {}/s burst {}, {} workers, post CPU {:?}, latency p50 {:?} p99 {:?}, gone {}",
        s.members,
        s.seed,
        s.api.rate,
        s.api.burst,
        s.lambda.concurrency,
        s.api.post_cpu,
        s.api.latency_p50,
        s.api.latency_p99,
        s.api.gone_fraction
    );
    let mut runs = Vec::new();
    for &mode in modes {
        match s.run(mode) {
            Ok(run) => runs.push(run),
            Err(e) => {
                eprintln!("error: the {mode} run failed: {}", e.chain());
                return ExitCode::FAILURE;
            }
        }
    }
    print!("{}", table::render(&runs));
    if let Some(rss) = peak_rss() {
        println!("peak memory (VmHWM): {rss}");
    }
    ExitCode::SUCCESS
}
