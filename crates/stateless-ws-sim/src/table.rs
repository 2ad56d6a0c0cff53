//! The scenario's table, as printed by the command.

use std::fmt::Write as _;
use std::time::Duration;

use crate::scenario::RunResult;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// A Markdown table of `runs`, one row each.
pub fn render(runs: &[RunResult]) -> String {
    let mut out = String::from(
        "| mode | simulated | caller waits | delivered | gone | failed | dup | 429s | p50 | p99 | max | posts/s | bound N/rate | ratio | invocations | peak conc. | cold starts | jobs | DDB pages | RCU | WCU | read throttles | write throttles | Lambda GB-s | cost (msgs + Lambda + DDB + SQS) | wall |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in runs {
        let cost = r.cost();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | ${:.3} ({:.3} + {:.4} + {:.4} + {:.4}) | {} |",
            r.mode,
            secs(r.simulated),
            secs(r.caller_wait),
            r.delivered,
            r.gone,
            r.failed,
            r.duplicates,
            r.throttled,
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            r.posts_per_sec(),
            secs(r.bound),
            r.ratio_to_bound(),
            r.invocations,
            r.peak_concurrency,
            r.cold_starts,
            r.jobs,
            r.pages,
            r.rcu,
            r.wcu,
            r.read_throttles,
            r.write_throttles,
            r.billed.as_secs_f64() * crate::scenario::LAMBDA_MB as f64 / 1_024.0,
            cost.total(),
            cost.apigw_messages,
            cost.lambda,
            cost.dynamodb,
            cost.sqs,
            secs(r.wall),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{BroadcastScenario, Mode};

    #[test]
    fn every_row_has_the_header_s_columns() {
        let s = BroadcastScenario {
            members: 300,
            ..BroadcastScenario::default()
        };
        let runs = [s.run(Mode::InLine).unwrap(), s.run(Mode::Queued).unwrap()];
        let table = render(&runs);
        let widths: Vec<usize> = table.lines().map(|l| l.matches('|').count()).collect();
        assert_eq!(widths.len(), 4);
        assert!(widths.iter().all(|&w| w == widths[0]), "{table}");
        assert!(!table.contains("| |"), "an empty cell: {table}");
    }
}
