//! Scenarios (a) and (d) scaled down to 20,000 connections and a few simulated seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::run as command;

use std::time::Duration;

use stateless_ws_sim::centrifugo::{Bottleneck, CentrifugoResult, CentrifugoScenario};

/// 20,000 connections in rooms of 10, 5 simulated seconds, a throttle of 2,000/s (burst
/// 1,000) so that a few hundred publishes a second can saturate it.
fn small() -> CentrifugoScenario {
    let mut s = CentrifugoScenario::default();
    s.connections = 20_000;
    s.duration = Duration::from_secs(5);
    s.publish_rate = 100.0;
    s.churn_per_minute = 0.0;
    s.api.rate = 2_000;
    s.api.burst = 1_000;
    s.lambda_limit = 100_000;
    s
}

/// Every publish and every target ends in exactly one bucket, and the sender saw exactly the
/// deliveries the broadcasts reported (none twice, none uncounted).
fn accounted(run: &CentrifugoResult) {
    for r in run.regions.iter().chain([&run.total]) {
        assert_eq!(
            r.offered,
            r.inbound_429 + r.lambda_throttled + r.invoked,
            "publishes: {r:?}"
        );
        assert_eq!(r.broadcast_errors, 0, "{r:?}");
        assert_eq!(
            r.targets,
            r.delivered + r.gone + r.failed + r.not_attempted,
            "targets: {r:?}"
        );
    }
    assert_eq!(run.total.received, run.total.delivered, "{:?}", run.total);
    assert!(run.total.received_in_window <= run.total.received);
}

#[test]
fn under_the_quotas_every_member_gets_every_publish_once() {
    let run = small().run().unwrap();
    accounted(&run);
    let t = &run.total;
    assert!(t.offered > 300, "{t:?}");
    assert_eq!(
        (t.inbound_429, t.lambda_throttled, t.post_429),
        (0, 0, 0),
        "{t:?}"
    );
    // No churn: every room has its 10 members, each delivered once.
    assert_eq!(t.targets, t.invoked * 10, "{t:?}");
    assert_eq!(t.delivered, t.targets, "{t:?}");
    assert_eq!(t.offered_messages, t.targets);
    assert_eq!(run.bottleneck, Bottleneck::None);
    assert!(t.p50 <= t.p99 && t.p99 < Duration::from_secs(1), "{t:?}");
    assert!(run.rcu > 0 && run.cost.total() > 0.0);
}

#[test]
fn churn_goes_through_the_store_and_the_same_seed_gives_the_same_figures() {
    let mut s = small();
    s.churn_per_minute = 12_000.0;
    s.personal_share = 0.2;
    s.new_connections_per_sec = 100;
    let mut a = s.run().unwrap();
    let mut b = s.run().unwrap();
    accounted(&a);
    let t = &a.total;
    // ~1,000 reconnects at 200/s against 100 new connections/s: refused connects.
    assert!(t.disconnects > 500, "{t:?}");
    assert!(t.connects > 300 && t.connects_refused > 100, "{t:?}");
    assert_eq!(t.online_end, 20_000 - t.disconnects + t.connects, "{t:?}");
    assert!(a.wcu >= 2 * t.connects + t.disconnects, "{}", a.wcu);
    a.wall = Duration::ZERO;
    b.wall = Duration::ZERO;
    assert_eq!(a, b);
    s.seed = 2;
    let c = s.run().unwrap();
    assert_ne!(c.total.offered, a.total.offered);
}

/// Over the throttle: what is delivered within the window is what the bucket let through
/// less the inbound messages it admitted, and the throttle is named.
fn throttle_bound(regions: usize, publish_rate: f64) -> (CentrifugoResult, f64) {
    let mut s = small();
    s.regions = regions;
    s.publish_rate = publish_rate;
    let run = s.run().unwrap();
    accounted(&run);
    let secs = s.duration.as_secs_f64();
    let tokens = regions as f64 * (s.api.rate as f64 * secs + s.api.burst as f64);
    let inbound = (run.total.offered - run.total.inbound_429) as f64;
    let capacity = (tokens - inbound) / secs;
    (run, capacity)
}

#[test]
fn over_the_throttle_delivered_is_the_capacity_and_the_throttle_is_named() {
    // 300 publishes/s: 3,000 posts/s and 300 messages/s against 2,000/s.
    let (run, capacity) = throttle_bound(1, 300.0);
    let delivered = run.delivered_per_sec();
    assert!(run.offered_per_sec() > 1.3 * capacity, "{run:?}");
    assert!(
        delivered <= capacity * 1.001 && delivered >= 0.9 * capacity,
        "delivered {delivered:.0}/s, capacity {capacity:.0}/s"
    );
    assert_eq!(run.bottleneck, Bottleneck::ApiThrottle { region: 0 });
    assert!(run.total.post_429 > 0);
}

#[test]
fn two_regions_double_the_deliverable_rate() {
    let (one, _) = throttle_bound(1, 300.0);
    let (two, capacity) = throttle_bound(2, 600.0);
    let ratio = two.delivered_per_sec() / one.delivered_per_sec();
    assert!((1.8..=2.2).contains(&ratio), "ratio {ratio:.3}");
    assert!(two.delivered_per_sec() >= 0.9 * capacity);
    assert_eq!(two.regions.len(), 2);
    for r in &two.regions {
        // Each region's clients' connections are half of them; each region took posts.
        assert!(r.posts > 0 && r.received > 0 && r.offered > 0, "{r:?}");
        assert!(r.saturation.api.is_some(), "{r:?}");
    }
    assert!(matches!(two.bottleneck, Bottleneck::ApiThrottle { .. }));
}

#[test]
fn a_low_lambda_limit_is_named_and_its_throttles_lose_publishes() {
    let mut s = small();
    s.api.rate = 1_000_000;
    s.api.burst = 500_000;
    s.lambda_limit = 5;
    s.publish_rate = 400.0;
    let run = s.run().unwrap();
    accounted(&run);
    let t = &run.total;
    assert_eq!(run.bottleneck, Bottleneck::LambdaConcurrency { region: 0 });
    assert_eq!(t.peak_concurrency, 5);
    assert!(t.lambda_throttled > 0 && t.invoked > 0, "{t:?}");
    // Little's law: at most `limit` invocations at once, each lasting its mean.
    let mean = t.lambda_time.as_secs_f64() / t.invocations as f64;
    let bound = 5.0 / mean * s.duration.as_secs_f64();
    assert!((t.invocations as f64) <= bound * 1.05 + 5.0, "{t:?}");
}

#[test]
fn the_command_rejects_bad_input_and_prints_a_row_per_region() {
    common::assert_usage_errors(&[
        &["centrifugo", "--connections", "0"][..],
        &["centrifugo", "--personal-share", "1.5"],
        &["centrifugo", "--publish-rate", "-1"],
        &["centrifugo", "--duration-s", "0"],
        &["centrifugo", "--regions", "0"],
        &["centrifugo", "--cold-start-ms", "NaN"],
        &["centrifugo", "--churn-per-minute", "lots"],
    ]);
    let (code, stdout, stderr) = command(&[
        "centrifugo",
        "--connections",
        "2000",
        "--duration-s",
        "1",
        "--publish-rate",
        "50",
        "--churn-per-minute",
        "600",
        "--regions",
        "2",
    ]);
    assert_eq!(code, 0, "{stderr}");
    for row in ["| 0 |", "| 1 |", "| total |", "bottleneck"] {
        assert!(stdout.contains(row), "{row}: {stdout}");
    }
}
