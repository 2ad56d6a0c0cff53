//! The capacity plan as printed by `stateless-ws-sim plan`, and its `--check` against scenario
//! (b)'s engine.

use std::fmt::Write as _;
use std::time::Duration;

use stateless_ws::Result;

use crate::cost::{Prices, SOURCES};
use crate::plan::{Plan, PlanParams, broadcast_rate, mean_latency};
use crate::scenario::{BroadcastScenario, Mode};

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Thousands separated by commas, rounded to a whole number.
pub fn thousands(v: f64) -> String {
    let n = v.round().abs() as u128;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < -0.5 { format!("-{out}") } else { out }
}

/// The plan as Markdown: the workload, each resource, the figures, the cost.
pub fn render(params: &PlanParams, plan: &Plan, prices: &Prices) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "capacity plan: {} connections in {} region(s); {} group room(s) of {} ({} per connection){}; {} publishes/s to them, {} to personal rooms{}; {} B messages; {} connects/s",
        thousands(params.connections as f64),
        params.regions,
        thousands(params.group_rooms()),
        params.room_size,
        params.rooms_per_connection,
        if params.personal_room {
            " + a personal room each"
        } else {
            ""
        },
        thousands(params.publishes_per_second),
        thousands(params.personal_publishes_per_second),
        if params.large_rooms > 0 {
            format!(
                "; {} large room(s) of {} at {} publishes/s",
                params.large_rooms,
                thousands(params.large_room_size as f64),
                params.large_room_publishes_per_second
            )
        } else {
            String::new()
        },
        params.message_bytes,
        thousands(params.connects_per_second),
    );
    let _ = writeln!(
        o,
        "quotas per region: throttle {}/s (burst {}), {} new connections/s, Lambda concurrency {}; sender {:?} ({:.1} µs CPU per post, measured by benches/posts_per_core.rs on this machine), post latency p50 {} p99 {}, Lambda {} MB ({:.2} vCPU)\n",
        thousands(params.api_rate as f64),
        thousands(params.api_burst as f64),
        params.new_connections_per_second,
        thousands(params.lambda_concurrency as f64),
        params.sender,
        params.sender.post_cpu().as_secs_f64() * 1e6,
        ms(params.latency_p50),
        ms(params.latency_p99),
        params.lambda_mb,
        params.vcpus(),
    );
    o.push_str("| resource | demand | capacity | unit | utilisation | deliveries/s it allows |\n|---|---|---|---|---|---|\n");
    for r in &plan.resources {
        let allows = if r.demand > 0.0 {
            thousands(plan.requested / r.utilisation())
        } else {
            "unbounded".into()
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {:.1} % | {} |",
            r.name,
            thousands(r.demand),
            thousands(r.capacity),
            r.unit,
            r.utilisation() * 100.0,
            allows
        );
    }
    let latency = match (plan.p50, plan.p99) {
        (Some(p50), Some(p99)) => format!("{} / {}", ms(p50), ms(p99)),
        _ => format!(
            "grows without bound (backlog +{} deliveries/s)",
            thousands(plan.backlog_per_second)
        ),
    };
    let workers = if plan.jobs_per_large_publish > 0 {
        format!(
            "{} worker invocations at once on average (Little's law); queue depth {} jobs right after a large-room publish; {} workers reach the throttle and deliver one large-room publish in {:.2} s",
            thousands(plan.worker_concurrency.ceil()),
            thousands(plan.jobs_per_large_publish as f64),
            thousands(plan.workers_at_throttle.min(plan.jobs_per_large_publish) as f64),
            plan.large_room_broadcast.as_secs_f64()
        )
    } else {
        format!(
            "none: every room has at most {} members and is delivered in-line",
            thousands(params.queued_above as f64)
        )
    };
    let month = crate::cost::SECONDS_PER_MONTH;
    let cost = prices.monthly(&plan.usage, params.arch);
    o.push('\n');
    o.push_str("| figure | value |\n|---|---|\n");
    let rows = [
        (
            "deliveries/s requested".to_owned(),
            thousands(plan.requested),
        ),
        (
            "deliveries/s achievable".to_owned(),
            format!(
                "{} ({:.1} % of requested)",
                thousands(plan.achievable),
                100.0 * plan.achievable / plan.requested.max(1e-9)
            ),
        ),
        ("bottleneck".to_owned(), plan.bottleneck.to_owned()),
        ("delivery latency p50 / p99".to_owned(), latency),
        (
            "one publish invocation (group room)".to_owned(),
            ms(plan.publish_invocation),
        ),
        ("queued fan-out".to_owned(), workers),
        (
            "DynamoDB read units".to_owned(),
            format!(
                "{}/s, {} million a month",
                thousands(plan.rru_per_second),
                thousands(plan.rru_per_second * month / 1e6)
            ),
        ),
        (
            "DynamoDB write units".to_owned(),
            format!(
                "{}/s, {} million a month",
                thousands(plan.wru_per_second),
                thousands(plan.wru_per_second * month / 1e6)
            ),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(o, "| {k} | {v} |");
    }
    let _ = writeln!(
        o,
        "\nmonthly cost at the requested workload (730 h; {} prices read {}; the quotas raised where the bottleneck needs it):\n",
        prices.region, prices.read
    );
    o.push_str("| service | usage a month | cost a month |\n|---|---|---|\n");
    let u = &plan.usage;
    let lines = [
        (
            "API Gateway messages",
            format!("{} million", thousands(u.apigw_messages / 1e6)),
            cost.apigw_messages,
        ),
        (
            "API Gateway connection minutes",
            format!("{} million", thousands(u.connection_minutes / 1e6)),
            cost.connection_minutes,
        ),
        (
            "Lambda",
            format!(
                "{} million requests, {} GB-s",
                thousands(u.lambda_requests / 1e6),
                thousands(u.lambda_gb_seconds)
            ),
            cost.lambda,
        ),
        (
            "DynamoDB on-demand",
            format!(
                "{} M RRU, {} M WRU, {:.1} GB",
                thousands(u.rru / 1e6),
                thousands(u.wru / 1e6),
                u.storage_gb
            ),
            cost.dynamodb,
        ),
        (
            "SQS",
            format!("{} million requests", thousands(u.sqs_requests / 1e6)),
            cost.sqs,
        ),
        (
            "data transfer out",
            format!("{} GB", thousands(u.transfer_out_gb)),
            cost.transfer_out,
        ),
    ];
    for (k, usage, c) in lines {
        let _ = writeln!(o, "| {k} | {usage} | ${} |", thousands(c));
    }
    let _ = writeln!(
        o,
        "| **total** | | **${}** a month, ${} an hour |",
        thousands(cost.total()),
        thousands(cost.total() / crate::cost::HOURS_PER_MONTH)
    );
    let _ = writeln!(o, "\nprice sources: {}", SOURCES.join(", "));
    o
}

/// One mode of the `--check`: the analytic rate and the simulator's.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CheckRow {
    /// In-line or queued.
    pub mode: Mode,
    /// Members of the room broadcast to.
    pub members: usize,
    /// Broadcasters busy at once (1 in-line; queued, the workers, at most ⌈jobs ÷ batch⌉).
    pub broadcasters: u64,
    /// The formula's posts per second: members ÷ (cold start + the longer of members ÷
    /// [`broadcast_rate`] and (members − burst) ÷ throttle).
    pub analytic: f64,
    /// Scenario (b)'s posts per second (delivered ÷ simulated).
    pub simulated: f64,
}

impl CheckRow {
    /// (simulated − analytic) ÷ simulated, in %.
    pub fn difference_percent(&self) -> f64 {
        error_percent(self.analytic, self.simulated)
    }
}

/// The error of a prediction against a measurement, in % of the measurement:
/// `(predicted − measured) ÷ measured × 100` (0 when both are 0).
pub fn error_percent(predicted: f64, measured: f64) -> f64 {
    if measured == 0.0 {
        if predicted == 0.0 { 0.0 } else { f64::INFINITY }
    } else {
        (predicted - measured) / measured * 100.0
    }
}

/// Runs scenario (b)'s engine for one broadcast to `members` with the plan's sender, latency
/// and one region's throttle, in-line and queued with `workers`, and sets the formula beside
/// each. No gone connections (the formula has none).
pub fn check(params: &PlanParams, members: usize, workers: u64) -> Result<Vec<CheckRow>> {
    let mut s = BroadcastScenario {
        members,
        ..BroadcastScenario::default()
    };
    s.api.rate = params.api_rate;
    s.api.burst = params.api_burst;
    s.api.latency_p50 = params.latency_p50;
    s.api.latency_p99 = params.latency_p99;
    s.api.gone_fraction = 0.0;
    s.api.post_cpu = params.sender.post_cpu();
    s.concurrency = usize::try_from(params.concurrency).unwrap_or(64);
    s.targets_per_job = usize::try_from(params.targets_per_job).unwrap_or(500);
    s.lambda.concurrency = usize::try_from(workers.max(1)).unwrap_or(1);
    s.store = params.store.clone();
    let mean = mean_latency(params.latency_p50, params.latency_p99);
    let jobs = (members as u64).div_ceil(params.targets_per_job.max(1));
    let batch = s.lambda.batch_size.max(1) as u64;
    let mut rows = Vec::new();
    for mode in [Mode::InLine, Mode::Queued] {
        // Queued: each invocation takes a batch of jobs in turn, so at most ⌈jobs ÷ batch⌉
        // workers are busy, and the first waits out a cold start.
        let (broadcasters, start) = match mode {
            Mode::InLine => (1, Duration::ZERO),
            Mode::Queued => (
                workers.max(1).min(jobs.div_ceil(batch)),
                s.lambda.cold_start,
            ),
        };
        let run = s.run(mode)?;
        let rate = broadcast_rate(
            params.sender.post_cpu(),
            mean,
            params.concurrency,
            broadcasters,
            u64::MAX,
        );
        // The throttle's burst goes at once; the rest at its rate.
        let by_throttle =
            (members as f64 - params.api_burst as f64).max(0.0) / params.api_rate.max(1) as f64;
        // Each job ends with its last posts' latency before the next starts.
        let tails = match mode {
            Mode::InLine => 1,
            Mode::Queued => jobs.div_ceil(broadcasters),
        };
        let time = start.as_secs_f64()
            + (members as f64 / rate).max(by_throttle)
            + tails as f64 * mean.as_secs_f64();
        rows.push(CheckRow {
            mode,
            members,
            broadcasters,
            analytic: members as f64 / time.max(1e-9),
            simulated: run.posts_per_sec(),
        });
    }
    Ok(rows)
}

/// The check's rows as Markdown.
pub fn render_check(rows: &[CheckRow]) -> String {
    let mut o = String::from(
        "| mode | members | broadcasters | analytic posts/s | simulated posts/s | difference |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {:+.1} % |",
            r.mode,
            thousands(r.members as f64),
            r.broadcasters,
            thousands(r.analytic),
            thousands(r.simulated),
            r.difference_percent()
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(0.0), "0");
    }

    #[test]
    fn the_error_is_relative_to_the_measurement() {
        assert!((error_percent(110.0, 100.0) - 10.0).abs() < 1e-9);
        assert!((error_percent(80.0, 100.0) + 20.0).abs() < 1e-9);
        assert_eq!(error_percent(0.0, 0.0), 0.0);
        assert!(error_percent(1.0, 0.0).is_infinite());
    }
}
