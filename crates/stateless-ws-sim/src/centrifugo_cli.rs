//! The `centrifugo` subcommand: scenario (a), and (d) with `--regions`.

use std::process::ExitCode;
use std::time::Duration;

use stateless_ws_sim::centrifugo::{CentrifugoScenario, render};

/// (a) Centrifugo's workload for one simulated minute; (d) with `--regions R`.
#[derive(Debug, clap::Args)]
pub(crate) struct CentrifugoArgs {
    /// Connections at the start (one per user).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=20_000_000))]
    connections: u64,
    /// Members of a group room.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    group_size: u64,
    /// Publishes per second offered (all rooms).
    #[arg(long, default_value_t = 50_000.0)]
    publish_rate: f64,
    /// Share of publishes to personal rooms (0–1).
    #[arg(long, default_value_t = 0.0)]
    personal_share: f64,
    /// Reconnects per minute (each a disconnect then a connect).
    #[arg(long, default_value_t = 200_000.0)]
    churn_per_minute: f64,
    /// Simulated seconds of arrivals.
    #[arg(long, default_value_t = 60.0)]
    duration_s: f64,
    /// Regions (APIs); connections are split round-robin.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    regions: u64,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// API Gateway's account throttle per region, requests per second.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// API Gateway's burst per region.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    burst: u64,
    /// Lambda concurrency per region (all three functions).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    lambda_limit: u64,
    /// New WebSocket connections per second per region.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    new_connections: u64,
    /// A cold start, milliseconds.
    #[arg(long, default_value_t = 250.0)]
    cold_start_ms: f64,
    /// Function memory, MB (the cost).
    #[arg(long, default_value_t = 1_024, value_parser = clap::value_parser!(u64).range(128..=10_240))]
    lambda_memory_mb: u64,
    /// Price the functions as arm64.
    #[arg(long)]
    arm64: bool,
    /// Median post latency, milliseconds.
    #[arg(long, default_value_t = 12.0)]
    latency_p50_ms: f64,
    /// 99th percentile post latency, milliseconds.
    #[arg(long, default_value_t = 40.0)]
    latency_p99_ms: f64,
    /// CPU per signed post, microseconds.
    #[arg(long, default_value_t = 120.0)]
    post_cpu_us: f64,
    /// Posts in flight per broadcaster.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    concurrency: u64,
}

fn millis(name: &str, ms: f64) -> Result<Duration, String> {
    if (0.0..1e9).contains(&ms) {
        Ok(Duration::from_secs_f64(ms / 1e3))
    } else {
        Err(format!("--{name}: {ms} is not a duration in milliseconds"))
    }
}

fn non_negative(name: &str, v: f64, max: f64) -> Result<f64, String> {
    if (0.0..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!("--{name}: {v} is not between 0 and {max}"))
    }
}

fn scenario(a: &CentrifugoArgs) -> Result<CentrifugoScenario, String> {
    let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let mut s = CentrifugoScenario::default();
    s.connections = to_usize(a.connections);
    s.group_size = to_usize(a.group_size);
    s.publish_rate = non_negative("publish-rate", a.publish_rate, 1e8)?;
    s.personal_share = non_negative("personal-share", a.personal_share, 1.0)?;
    s.churn_per_minute = non_negative("churn-per-minute", a.churn_per_minute, 1e9)?;
    let secs = non_negative("duration-s", a.duration_s, 86_400.0)?;
    if secs == 0.0 {
        return Err("--duration-s: must be above 0".into());
    }
    s.duration = Duration::from_secs_f64(secs);
    s.regions = to_usize(a.regions);
    s.seed = a.seed;
    s.api.rate = a.rate;
    s.api.burst = a.burst;
    s.api.latency_p50 = millis("latency-p50-ms", a.latency_p50_ms)?;
    s.api.latency_p99 = millis("latency-p99-ms", a.latency_p99_ms)?;
    s.api.post_cpu = millis("post-cpu-us", a.post_cpu_us / 1e3)?;
    s.lambda_limit = to_usize(a.lambda_limit);
    s.new_connections_per_sec = a.new_connections;
    s.cold_start = millis("cold-start-ms", a.cold_start_ms)?;
    s.lambda_memory_mb = a.lambda_memory_mb;
    s.arm64 = a.arm64;
    s.concurrency = to_usize(a.concurrency);
    Ok(s)
}

/// Runs the scenario and prints its tables; bad input exits 2.
pub(crate) fn main(args: &CentrifugoArgs) -> ExitCode {
    let s = match scenario(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "scenario (a/d): {} connections, groups of {}, {} publishes/s ({} personal), {} reconnects/min, {:?}, {} region(s) each: throttle {}/s burst {}, Lambda {}, {} new connections/s; seed {}",
        s.connections,
        s.group_size,
        s.publish_rate,
        s.personal_share,
        s.churn_per_minute,
        s.duration,
        s.regions,
        s.api.rate,
        s.api.burst,
        s.lambda_limit,
        s.new_connections_per_sec,
        s.seed
    );
    match s.run() {
        Ok(result) => {
            print!("{}", render(&result));
            if let Some(rss) = crate::peak_rss() {
                println!("peak memory (VmHWM): {rss}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: the run failed: {}", e.chain());
            ExitCode::FAILURE
        }
    }
}
