//! The `storm` subcommand: scenario (c), the reconnect storm.

use std::process::ExitCode;
use std::time::Duration;

use stateless_ws_sim::storm::StormScenario;
use stateless_ws_sim::storm_report;

/// Arguments of `storm`.
#[derive(Debug, clap::Args)]
pub(crate) struct StormArgs {
    /// Clients reconnecting.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=20_000_000))]
    clients: u64,
    /// The cuts spread over this many seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    window_s: u64,
    /// Members of each group room.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    group_size: u64,
    /// New WebSocket connections per second (account and region); several, comma-separated,
    /// give one run (one column) each.
    #[arg(long, default_value = "500", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    new_connections_rate: Vec<u64>,
    /// The new-connection bucket's burst (default: the rate).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    new_connections_burst: Option<u64>,
    /// The account's Lambda concurrency.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    lambda_limit: u64,
    /// Executions other functions of the account hold throughout.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    other_concurrency: u64,
    /// API Gateway's account throttle, requests per second (presence and history posts).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// API Gateway's burst.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    burst: u64,
    /// A refused handshake's round trip, milliseconds.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    handshake_rtt_ms: u64,
    /// A cold start, milliseconds.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    cold_start_ms: u64,
    /// No presence announcements.
    #[arg(long)]
    no_presence: bool,
    /// No resume after connecting.
    #[arg(long)]
    no_resume: bool,
    /// No second resume `settleMs` after the open.
    #[arg(long)]
    no_settle: bool,
    /// No cut connections in the store and no `$disconnect`s (their records taken as removed,
    /// and their "left" announcements as made, before the storm).
    #[arg(long)]
    no_disconnect: bool,
    /// Stop after this many simulated seconds (clients still retrying count as failed).
    #[arg(long, default_value_t = 14_400, value_parser = clap::value_parser!(u64).range(1..=864_000))]
    horizon_s: u64,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn scenario(args: &StormArgs, rate: u64) -> StormScenario {
    let mut s = StormScenario::default();
    s.clients = to_usize(args.clients);
    s.window = Duration::from_secs(args.window_s);
    s.group_size = to_usize(args.group_size);
    s.new_connections_rate = rate;
    s.new_connections_burst = args.new_connections_burst;
    s.lambda_limit = to_usize(args.lambda_limit);
    s.other_concurrency = to_usize(args.other_concurrency);
    s.api.rate = args.rate;
    s.api.burst = args.burst;
    s.handshake_rtt = Duration::from_millis(args.handshake_rtt_ms);
    s.cold_start = Duration::from_millis(args.cold_start_ms);
    s.presence = !args.no_presence;
    s.resume = !args.no_resume;
    s.settle = !args.no_settle;
    s.disconnect = !args.no_disconnect;
    s.horizon = Duration::from_secs(args.horizon_s);
    s.seed = args.seed;
    s
}

/// Runs one storm per rate and prints the table.
pub(crate) fn run(args: &StormArgs) -> ExitCode {
    println!(
        "scenario (c): {} clients reconnect within {} s, groups of {}, seed {}, Lambda limit {} ({} held by others), throttle {}/s burst {}, presence {}, resume {} (settle {}), $disconnect {}",
        args.clients,
        args.window_s,
        args.group_size,
        args.seed,
        args.lambda_limit,
        args.other_concurrency,
        args.rate,
        args.burst,
        !args.no_presence,
        !args.no_resume,
        !args.no_settle,
        !args.no_disconnect
    );
    let mut runs = Vec::new();
    for &rate in &args.new_connections_rate {
        match scenario(args, rate).run() {
            Ok(run) => {
                for e in run.errors.iter().take(3) {
                    eprintln!("warning: a client failed: {e}");
                }
                runs.push(run);
            }
            Err(e) => {
                eprintln!("error: the storm at {rate}/s failed: {}", e.chain());
                return ExitCode::FAILURE;
            }
        }
    }
    print!("{}", storm_report::render(&runs));
    if let Some(rss) = crate::peak_rss() {
        println!("peak memory (VmHWM): {rss}");
    }
    ExitCode::SUCCESS
}
