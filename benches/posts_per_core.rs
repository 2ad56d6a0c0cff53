//! Signed posts per CPU-second: the `Broadcaster` on the SDK sender (`ApiGatewaySender`) against
//! the same on the lean sender (`SigV4Sender`: `aws-sigv4` and one pooled hyper client), each
//! pinned to one core.
//!
//! Run with: `cargo bench --all-features --bench posts_per_core`
//!
//! Each run is a child process of its own, started with `taskset -c 0` on a single-threaded
//! tokio runtime: a `Broadcaster` (default concurrency 64) posts to [`POSTS`] connections
//! (after a warm-up of [`WARM_UP`]) through the sender under test, with real SigV4 signatures
//! and HTTP/1.1 keep-alive on loopback. The stand-in management API (answers at once, see
//! `support/standin.rs`) is another child process, pinned with `taskset -c 1`, so it never takes
//! the sender's core. Each child reports its wall time and the CPU time the whole process used
//! (`/proc/self/stat` utime + stime, every thread); the summary prints, for each sender, the
//! median of [`RUNS`] runs: posts per second of wall time, posts per CPU-second, and the CPU
//! time of one post, then the lean sender's ratio to the SDK's (target: ≥ 2×, ≥ 15,000 posts
//! per CPU-second).
//!
//! Without `taskset` (util-linux) the children run unpinned and the summary says so. Under
//! `cargo test` (no `--bench` argument) each sender runs once over 500 connections: a check
//! that the bench works, not a measurement.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "support/standin.rs"]
mod standin;

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stateless_ws::ConnectionId;
use stateless_ws::broadcast::{
    ApiGatewaySender, Broadcaster, ConnectionSender, Payload, SigV4Sender, Target,
};
use stateless_ws::store::InMemoryStore;

const POSTS: usize = 40_000;
const WARM_UP: usize = 2_000;
const RUNS: usize = 3;
const SENDERS: [&str; 2] = ["sdk", "lean"];
const ROLE: &str = "STATELESS_WS_POSTS_PER_CORE_ROLE";
const ENDPOINT: &str = "STATELESS_WS_POSTS_PER_CORE_ENDPOINT";
const COUNT: &str = "STATELESS_WS_POSTS_PER_CORE_COUNT";

/// The CPU time this process has used so far, all threads (Linux: `/proc/self/stat`).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis
    // start at field 3, so utime (14) and stime (15) are the 12th and 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second = clock_ticks_per_second();
    Duration::from_secs_f64(ticks as f64 / per_second)
}

/// `getconf CLK_TCK` (100 on Linux unless configured otherwise).
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

async fn sender(kind: &str, endpoint: &str) -> Arc<dyn ConnectionSender> {
    let config = common::local_sdk_config().await;
    match kind {
        "sdk" => Arc::new(
            ApiGatewaySender::new(&config)
                .with_default_endpoint(endpoint)
                .unwrap(),
        ),
        "lean" => Arc::new(
            SigV4Sender::new(&config)
                .unwrap()
                .with_default_endpoint(endpoint)
                .unwrap(),
        ),
        other => {
            eprintln!("unknown sender {other:?}: expected one of {SENDERS:?}");
            std::process::exit(2)
        }
    }
}

/// In a child pinned to one core: warm up, then `posts` posts; prints `wall_us cpu_us`.
fn client(kind: &str) {
    let endpoint = std::env::var(ENDPOINT).unwrap();
    let posts: usize = std::env::var(COUNT).unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sender = sender(kind, &endpoint).await;
        let broadcaster = Broadcaster::new(Arc::new(InMemoryStore::new()), sender);
        let payload =
            Payload::text(r#"{"type":"message","room":"general","message":"hello"}"#).unwrap();
        let targets = |n: usize| {
            (0..n)
                .map(|i| Target::new(ConnectionId::new(format!("conn{i:07}=")).unwrap()))
                .collect::<Vec<_>>()
        };
        let report = broadcaster
            .send_to(targets(WARM_UP.min(posts)), &payload)
            .await;
        assert!(report.is_success(), "{report}");
        let (cpu, wall) = (cpu_time(), Instant::now());
        let report = broadcaster.send_to(targets(posts), &payload).await;
        let (wall, cpu) = (wall.elapsed(), cpu_time() - cpu);
        assert!(report.is_success(), "{report}");
        assert_eq!(report.delivered.len(), posts);
        println!("{} {}", wall.as_micros(), cpu.as_micros());
    });
}

/// The stand-in, in a child of its own: prints its endpoint, then serves until killed.
fn server() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("{}", standin::start(Duration::ZERO).await);
        std::future::pending::<()>().await;
    });
}

/// `exe` with `role`, pinned to `core` when `taskset` is there.
fn spawn(role: &str, core: u32, pinned: bool) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut command = if pinned {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(core.to_string()).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    command.env(ROLE, role).stdout(Stdio::piped());
    command
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("server") => return server(),
        Ok(kind) => return client(kind),
        Err(_) => {}
    }
    let measuring = std::env::args().any(|a| a == "--bench");
    let (posts, runs) = if measuring { (POSTS, RUNS) } else { (500, 1) };
    let pinned = Command::new("taskset")
        .args(["-c", "0", "true"])
        .status()
        .is_ok_and(|s| s.success());

    let mut server = KillOnDrop(spawn("server", 1, pinned).spawn().unwrap());
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = line.trim().to_owned();

    println!(
        "\n== signed posts per core ({posts} posts after {WARM_UP} to warm up, broadcaster \
         concurrency 64, stand-in answering at once; {}; median of {runs}) ==",
        if pinned {
            "sender on core 0, stand-in on core 1"
        } else {
            "NOT pinned: taskset not found"
        }
    );
    println!(
        "{:<6} {:>12} {:>16} {:>14}",
        "sender", "posts/s", "posts/CPU-s", "CPU per post"
    );
    let mut per_cpu = Vec::new();
    for kind in SENDERS {
        let mut results: Vec<(f64, f64)> = (0..runs)
            .map(|_| {
                let out = spawn(kind, 0, pinned)
                    .env(ENDPOINT, &endpoint)
                    .env(COUNT, posts.to_string())
                    .stderr(Stdio::inherit())
                    .output()
                    .unwrap();
                assert!(out.status.success(), "the {kind} run failed");
                let text = String::from_utf8_lossy(&out.stdout);
                let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().unwrap());
                let (wall_us, cpu_us) = (fields.next().unwrap(), fields.next().unwrap());
                (
                    posts as f64 / (wall_us / 1e6),
                    posts as f64 / (cpu_us.max(1.0) / 1e6),
                )
            })
            .collect();
        results.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (per_wall, per_cpu_s) = results[results.len() / 2];
        println!(
            "{kind:<6} {per_wall:>12.0} {per_cpu_s:>16.0} {:>11.1} µs",
            1e6 / per_cpu_s
        );
        per_cpu.push(per_cpu_s);
    }
    if let [sdk, lean] = per_cpu[..] {
        println!(
            "lean / sdk: {:.2}x posts per CPU-second (target >= 2x, >= 15,000/s)",
            lean / sdk
        );
    }
}
