//! The capacity plan: its accounting (the achievable rate is the least any resource allows, at
//! most the request), its monotonicity in the quotas and the workload, its cost, and its
//! cross-check against scenario (b)'s engine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use stateless_ws_sim::cost::{Arch, US_EAST_1_2026_12};
use stateless_ws_sim::plan::{PlanParams, SenderKind};
use stateless_ws_sim::plan_report::{check, render};

#[test]
fn the_achievable_rate_is_the_least_any_resource_allows() {
    for api_rate in [1_000, 10_000, 100_000, 10_000_000] {
        let mut p = PlanParams::default();
        p.api_rate = api_rate;
        p.new_connections_per_second = 1_000_000;
        let plan = p.evaluate();
        assert!(plan.achievable <= plan.requested + 1e-6);
        let least = plan
            .resources
            .iter()
            .map(|r| plan.requested / r.utilisation())
            .fold(f64::INFINITY, f64::min)
            .min(plan.requested);
        assert!((plan.achievable - least).abs() <= 1e-6 * least, "{plan:?}");
        let worst = plan
            .resources
            .iter()
            .max_by(|a, b| a.utilisation().total_cmp(&b.utilisation()))
            .unwrap();
        assert_eq!(plan.bottleneck, worst.name);
        // Latency is finite exactly when every resource is below its limit.
        assert_eq!(plan.p99.is_some(), worst.utilisation() < 1.0, "{plan:?}");
        if let (Some(p50), Some(p99)) = (plan.p50, plan.p99) {
            assert!(p50 <= p99);
            assert_eq!(plan.backlog_per_second, 0.0);
        } else {
            assert!(plan.backlog_per_second > 0.0);
        }
    }
}

#[test]
fn more_quota_never_delivers_less() {
    let mut last = 0.0;
    for regions in 1..=8 {
        let mut p = PlanParams::default();
        p.regions = regions;
        let a = p.evaluate().achievable;
        assert!(a >= last, "{regions} regions: {a} < {last}");
        last = a;
    }
    // Latency grows with the load below the limit.
    let mut p = PlanParams::default();
    p.api_rate = 1_000_000;
    p.new_connections_per_second = 10_000;
    p.lambda_concurrency = 10_000;
    let mut last = None;
    for pps in [1_000.0, 10_000.0, 50_000.0, 90_000.0] {
        p.publishes_per_second = pps;
        let plan = p.evaluate();
        let p99 = plan.p99.unwrap();
        if let Some(prev) = last {
            assert!(p99 >= prev, "{pps}: {p99:?} < {prev:?}");
        }
        last = Some(p99);
    }
}

#[test]
fn the_sdk_sender_costs_more_cpu_and_the_cost_adds_up() {
    let mut lean = PlanParams::default();
    lean.sender = SenderKind::Lean;
    let mut sdk = lean.clone();
    sdk.sender = SenderKind::Sdk;
    let (a, b) = (lean.evaluate(), sdk.evaluate());
    let cpu = |p: &stateless_ws_sim::plan::Plan| {
        p.resources
            .iter()
            .find(|r| r.name.starts_with("CPU"))
            .unwrap()
            .demand
    };
    assert!((cpu(&b) / cpu(&a) - 81.8 / 26.3).abs() < 1e-6);
    let ca = US_EAST_1_2026_12.monthly(&a.usage, Arch::X86);
    let cb = US_EAST_1_2026_12.monthly(&b.usage, Arch::X86);
    assert!(cb.lambda > ca.lambda);
    let sum = ca.apigw_messages
        + ca.connection_minutes
        + ca.lambda
        + ca.dynamodb
        + ca.sqs
        + ca.transfer_out;
    assert!((ca.total() - sum).abs() < 1e-6);
    // Connection minutes: 1,000,000 connections × 43,800 minutes × $0.25 per million.
    assert!((ca.connection_minutes - 10_950.0).abs() < 1e-6, "{ca:?}");
    // Twice the publishes, at least as much for messages.
    let mut double = PlanParams::default();
    double.publishes_per_second *= 2.0;
    let cd = US_EAST_1_2026_12.monthly(&double.evaluate().usage, Arch::X86);
    assert!(cd.apigw_messages > 1.5 * ca.apigw_messages);
    let text = render(&lean, &a, &US_EAST_1_2026_12);
    assert!(
        text.contains("bottleneck") && text.contains("2026-12"),
        "{text}"
    );
}

#[test]
fn large_rooms_need_workers_and_queue_depth() {
    let mut p = PlanParams::default();
    p.publishes_per_second = 0.0;
    p.large_rooms = 1;
    p.large_room_size = 100_000;
    p.large_room_publishes_per_second = 0.05;
    let plan = p.evaluate();
    assert_eq!(plan.jobs_per_large_publish, 200);
    assert!(plan.worker_concurrency > 0.0);
    assert!(plan.workers_at_throttle >= 1);
    // Never faster than the throttle allows.
    assert!(plan.large_room_broadcast.as_secs_f64() >= 100_000.0 / 10_000.0);
    assert!(plan.usage.sqs_requests > 0.0);
}

#[test]
fn the_check_agrees_with_the_engine_and_is_deterministic() {
    let p = PlanParams::default();
    let a = check(&p, 20_000, 4).unwrap();
    let b = check(&p, 20_000, 4).unwrap();
    assert_eq!(a, b, "same parameters, same figures");
    for row in &a {
        assert!(row.simulated > 0.0);
        assert!(
            row.difference_percent().abs() < 25.0,
            "{:?}: {:+.1} %",
            row.mode,
            row.difference_percent()
        );
    }
}

#[test]
fn the_command_prints_the_plan_and_refuses_bad_input() {
    let bin = env!("CARGO_BIN_EXE_stateless-ws-sim");
    let out = Command::new(bin).args(["plan"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("| bottleneck | API Gateway throttle |"),
        "{stdout}"
    );
    for args in [
        &["plan", "--connections", "0"][..],
        &["plan", "--publishes-per-second", "-1"],
        &["plan", "--publishes-per-second", "NaN"],
        &["plan", "--sender", "fast"],
        &["plan", "--latency-p50-ms", "0"],
        &["plan", "--large-rooms", "2"],
        &["plan", "--hot-room-factor", "0.5"],
        &["plan", "--lambda-mb", "64"],
    ] {
        let out = Command::new(bin).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
