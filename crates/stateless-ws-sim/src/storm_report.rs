//! The figures of a reconnect storm ([`crate::storm`]), its bottleneck, its cost and its table.

use std::fmt::Write as _;
use std::time::Duration;

use crate::cost::{Arch, Cost, US_EAST_1_2026_12, Usage};
use crate::histogram::Histogram;
use crate::sender::ApiStats;
use crate::store::StoreStats;
use crate::storm::StormScenario;
use crate::storm_seams::{FunctionStats, PostStats, ReadCounts};

/// What the clients saw, gathered as they go.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ClientFigures {
    /// Handshakes refused by the new-connection quota (429).
    pub refused: u64,
    /// `$connect` invocations that returned an error (the client retried).
    pub connect_errors: u64,
    /// Client's first attempt → connection open.
    pub connect_latency: Histogram,
    /// When each client got connected, from the first cut.
    pub connected_at: Vec<Duration>,
    /// Handshake attempts of the connected clients, summed.
    pub attempts: u64,
    /// The most attempts one client made.
    pub max_attempts: u32,
    /// Presence announcements sent (`"joined"` events).
    pub announcements: u64,
    /// Connections an announcement found still in `$connect` (kept, not removed).
    pub kept_connecting: u64,
    /// Records presence's Gone cleanup removed.
    pub cleaned: u64,
    /// `"left"` announcements: the `$disconnect`s', and those of a `$connect` whose post found a
    /// cut connection (410) and removed its records.
    pub departures: u64,
    /// `$disconnect` invocations that returned an error (their records stay).
    pub disconnect_errors: u64,
    /// Resumes answered.
    pub resumes: u64,
    /// Resumes that failed (the log or the store failed, or the record was missing).
    pub resume_errors: u64,
    /// Resume invocations throttled by Lambda (asked again after the answer timeout).
    pub resume_throttled: u64,
    /// `MessageLog::read`s (one per page).
    pub log_reads: u64,
    /// Messages the resumes posted.
    pub recovered_messages: u64,
    /// Resume asked → its last page answered.
    pub resume_latency: Histogram,
    /// Write capacity in the busiest second.
    pub peak_wcu_per_s: u64,
    /// Read capacity in the busiest second.
    pub peak_rcu_per_s: u64,
}

/// The models' own counters at the end of a run.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Totals {
    /// The management API (every post of the run).
    pub api: ApiStats,
    /// DynamoDB as the `SimStore` charged it.
    pub store: StoreStats,
    /// The reads the `SimStore` does not charge.
    pub reads: ReadCounts,
    /// Presence posts.
    pub presence: PostStats,
    /// Resume pages.
    pub resume: PostStats,
    /// The `$disconnect`s' `"left"` posts.
    pub departure: PostStats,
    /// The `$connect` function.
    pub connect_fn: FunctionStats,
    /// The message-route function (resumes).
    pub message_fn: FunctionStats,
    /// The `$disconnect` function.
    pub disconnect_fn: FunctionStats,
    /// The functions' executions at once, at most.
    pub peak_concurrency: usize,
}

/// One storm's result.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StormResult {
    /// The parameters.
    pub scenario: StormScenario,
    /// What the clients saw.
    pub clients: ClientFigures,
    /// The models' counters.
    pub totals: Totals,
    /// Clients connected by the end.
    pub connected: u64,
    /// Clients not connected at the horizon (still retrying: their cause is the quota or the
    /// Lambda throttle that refused them, in `refused` and `connect_fn.throttles`).
    pub failed: u64,
    /// Errors that ended a client's task (none expected).
    pub errors: Vec<String>,
    /// Virtual time of the run.
    pub simulated: Duration,
    /// Real time of the run.
    pub wall: Duration,
}

impl StormResult {
    /// Gathers a run's figures.
    pub fn new(
        scenario: StormScenario,
        mut clients: ClientFigures,
        totals: Totals,
        simulated: Duration,
        errors: Vec<String>,
    ) -> Self {
        clients.connected_at.sort_unstable();
        let connected = clients.connected_at.len() as u64;
        let failed = (scenario.clients as u64).saturating_sub(connected);
        Self {
            scenario,
            clients,
            totals,
            connected,
            failed,
            errors,
            simulated,
            wall: Duration::ZERO,
        }
    }

    /// When the share `q` (0–1) of all clients was connected, from the first cut; `None` if it
    /// never was.
    pub fn time_to(&self, q: f64) -> Option<Duration> {
        let need = ((q * self.scenario.clients as f64).ceil() as usize).max(1);
        self.clients.connected_at.get(need - 1).copied()
    }

    /// The quota's bound: clients / new connections per second.
    pub fn quota_bound(&self) -> Duration {
        Duration::from_secs_f64(
            self.scenario.clients as f64 / self.scenario.new_connections_rate.max(1) as f64,
        )
    }

    /// DynamoDB read capacity: room pages as the `SimStore` charged them, plus 1 per `GetItem`,
    /// index `Query` and log read (½ RCU rounded up).
    pub fn rcu(&self) -> u64 {
        self.totals.store.rcu
            + self.totals.reads.gets
            + self.totals.reads.queries
            + self.clients.log_reads
    }

    /// What limited the storm. The new-connection quota when it refused handshakes and the
    /// storm ended near its pace — within 1.25 × max(N / rate, the window), plus the client's
    /// longest backoff (the tail of full jitter); else Lambda concurrency when it throttled
    /// `$connect`s; else the clients' own backoff. The account throttle is added when over 1 %
    /// of posts met a 429 (at a lifted quota, `$connect`s waiting out their presence posts' 429s
    /// are what fill the account's executions).
    ///
    /// Counting refusals alone misleads: at 5,000 new connections/s the quota still refuses
    /// more handshakes than Lambda throttles, yet the storm takes 2.5 × its N / rate.
    pub fn bottleneck(&self) -> String {
        let refused = self.clients.refused;
        let lambda = self.totals.connect_fn.throttles;
        let pace = self.quota_bound().max(self.scenario.window);
        let took = self.time_to(1.0).unwrap_or(self.simulated);
        let paced_by_quota = refused > 0 && took <= pace.mul_f64(1.25) + self.scenario.backoff.max;
        let mut out = if refused == 0 && lambda == 0 {
            "none: arrivals within every quota".to_owned()
        } else if paced_by_quota {
            format!(
                "API Gateway's new-connection quota ({}/s: N/rate = {:.0} s vs a {:.0} s window)",
                self.scenario.new_connections_rate,
                self.quota_bound().as_secs_f64(),
                self.scenario.window.as_secs_f64()
            )
        } else if lambda > 0 {
            format!(
                "Lambda concurrency ({} executions; {:.0} s against the quota's N/rate {:.0} s)",
                self.scenario.lambda_limit,
                took.as_secs_f64(),
                self.quota_bound().as_secs_f64()
            )
        } else {
            format!(
                "the clients' backoff after refused handshakes ({:.0} s against N/rate {:.0} s)",
                took.as_secs_f64(),
                self.quota_bound().as_secs_f64()
            )
        };
        let posts = self.totals.api.posts.max(1);
        if self.totals.api.throttled * 100 > posts {
            let _ = write!(
                out,
                "; account throttle {}/s ({:.1} % of posts answered 429)",
                self.scenario.api.rate,
                100.0 * self.totals.api.throttled as f64 / posts as f64
            );
        }
        out
    }

    /// The span the cost covers: one hour from the first cut, or the whole run if longer.
    pub fn cost_span(&self) -> Duration {
        self.simulated.max(Duration::from_secs(3_600))
    }

    /// What the storm used over [`cost_span`](Self::cost_span): messages both ways, connection
    /// minutes from each open to the span's end, both functions, and DynamoDB.
    pub fn usage(&self) -> Usage {
        let span = self.cost_span();
        let c = &self.clients;
        let t = &self.totals;
        let connection_minutes: f64 = c
            .connected_at
            .iter()
            .map(|at| span.saturating_sub(*at).as_secs_f64() / 60.0)
            .sum();
        // In: each resume asked (throttled ones too); out: presence and history posts
        // delivered and each resume's `resumed` reply.
        let messages = t.presence.delivered
            + t.departure.delivered
            + t.resume.delivered
            + c.resumes
            + c.resume_throttled
            + c.resume_errors
            + c.resumes;
        let gb = self.scenario.memory_mb as f64 / 1024.0;
        Usage {
            apigw_messages: messages as f64,
            connection_minutes,
            lambda_requests: (t.connect_fn.invocations
                + t.message_fn.invocations
                + t.disconnect_fn.invocations) as f64,
            lambda_gb_seconds: (t.connect_fn.billed + t.message_fn.billed + t.disconnect_fn.billed)
                .as_secs_f64()
                * gb,
            wru: (t.store.wcu * self.scenario.wru_per_join) as f64,
            rru: self.rcu() as f64,
            ..Usage::default()
        }
    }

    /// The cost of [`usage`](Self::usage), per hour of [`cost_span`](Self::cost_span), at
    /// [`US_EAST_1_2026_12`] on x86: a storm is a one-off, so its messages are priced in the
    /// month's first tier.
    pub fn cost_per_hour(&self) -> Cost {
        let hours = self.cost_span().as_secs_f64() / 3_600.0;
        US_EAST_1_2026_12.monthly(&self.usage().scaled(1.0 / hours), Arch::X86)
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(
        || "never".to_owned(),
        |d| format!("{:.1} s", d.as_secs_f64()),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// A Markdown table of `runs`, one column each, one figure a row.
pub fn render(runs: &[StormResult]) -> String {
    type Row = (&'static str, fn(&StormResult) -> String);
    let rows: &[Row] = &[
        ("clients", |r| r.scenario.clients.to_string()),
        ("new connections/s (burst)", |r| {
            let s = &r.scenario;
            format!(
                "{} ({})",
                s.new_connections_rate,
                s.new_connections_burst.unwrap_or(s.new_connections_rate)
            )
        }),
        ("connected / failed", |r| {
            format!("{} / {}", r.connected, r.failed)
        }),
        ("time to 50 %", |r| secs(r.time_to(0.5))),
        ("time to 99 %", |r| secs(r.time_to(0.99))),
        ("time to 100 %", |r| secs(r.time_to(1.0))),
        ("quota bound N/rate", |r| secs(Some(r.quota_bound()))),
        ("$connect latency p50 / p99 / max", |r| {
            let h = &r.clients.connect_latency;
            format!(
                "{:.1} s / {:.1} s / {:.1} s",
                h.quantile(0.5).as_secs_f64(),
                h.quantile(0.99).as_secs_f64(),
                h.max().as_secs_f64()
            )
        }),
        ("$connect invocation p50 / p99", |r| {
            let h = &r.totals.connect_fn.duration;
            format!("{} / {}", ms(h.quantile(0.5)), ms(h.quantile(0.99)))
        }),
        ("handshakes refused (quota 429)", |r| {
            r.clients.refused.to_string()
        }),
        ("attempts per client mean / max", |r| {
            format!(
                "{:.1} / {}",
                r.clients.attempts as f64 / r.connected.max(1) as f64,
                r.clients.max_attempts
            )
        }),
        ("Lambda throttles $connect / resume / $disconnect", |r| {
            let t = &r.totals;
            format!(
                "{} / {} / {}",
                t.connect_fn.throttles, t.message_fn.throttles, t.disconnect_fn.throttles
            )
        }),
        (
            "Lambda peak conc. (all / $connect / resume / $disconnect)",
            |r| {
                let t = &r.totals;
                format!(
                    "{} / {} / {} / {}",
                    t.peak_concurrency, t.connect_fn.peak, t.message_fn.peak, t.disconnect_fn.peak
                )
            },
        ),
        ("Lambda invocations / cold starts", |r| {
            let (c, m, d) = (
                &r.totals.connect_fn,
                &r.totals.message_fn,
                &r.totals.disconnect_fn,
            );
            format!(
                "{} / {}",
                c.invocations + m.invocations + d.invocations,
                c.cold_starts + m.cold_starts + d.cold_starts
            )
        }),
        (
            "\"left\" announcements; $disconnect posts (delivered / 410 cut / 429)",
            |r| {
                let d = &r.totals.departure;
                format!(
                    "{}; {} ({} / {} / {})",
                    r.clients.departures, d.posts, d.delivered, d.cut, d.throttled
                )
            },
        ),
        ("$disconnect errors (records left in place)", |r| {
            r.clients.disconnect_errors.to_string()
        }),
        ("presence announcements", |r| {
            r.clients.announcements.to_string()
        }),
        (
            "presence posts (delivered / 410 in $connect / 410 cut / 429)",
            |r| {
                let p = &r.totals.presence;
                format!(
                    "{} ({} / {} / {} / {})",
                    p.posts, p.delivered, p.connecting, p.cut, p.throttled
                )
            },
        ),
        ("presence delivery p50 / p99 (from the join)", |r| {
            let h = &r.totals.presence.latency;
            format!("{} / {}", ms(h.quantile(0.5)), ms(h.quantile(0.99)))
        }),
        ("resumes (log reads / messages)", |r| {
            let c = &r.clients;
            format!("{} ({} / {})", c.resumes, c.log_reads, c.recovered_messages)
        }),
        ("resume p99 / 429s / throttled", |r| {
            format!(
                "{} / {} / {}",
                ms(r.clients.resume_latency.quantile(0.99)),
                r.totals.resume.throttled,
                r.clients.resume_throttled
            )
        }),
        ("DynamoDB WCU total / peak per s", |r| {
            format!("{} / {}", r.totals.store.wcu, r.clients.peak_wcu_per_s)
        }),
        ("DynamoDB RCU total / peak per s", |r| {
            format!("{} / {}", r.rcu(), r.clients.peak_rcu_per_s)
        }),
        ("DynamoDB throttles read / write", |r| {
            format!(
                "{} / {}",
                r.totals.store.read_throttles, r.totals.store.write_throttles
            )
        }),
        ("bottleneck", |r| r.bottleneck()),
        (
            "cost per hour (API GW msgs + conn. min + Lambda + DDB)",
            |r| {
                let c = r.cost_per_hour();
                format!(
                    "${:.2} ({:.2} + {:.2} + {:.2} + {:.2})",
                    c.total(),
                    c.apigw_messages,
                    c.connection_minutes,
                    c.lambda,
                    c.dynamodb
                )
            },
        ),
        ("simulated / wall", |r| {
            format!(
                "{:.0} s / {:.1} s",
                r.simulated.as_secs_f64(),
                r.wall.as_secs_f64()
            )
        }),
    ];
    let mut out = String::from("| figure |");
    let mut rule = String::from("|---|");
    for r in runs {
        let _ = write!(out, " {}/s |", r.scenario.new_connections_rate);
        rule.push_str("---|");
    }
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    for (name, f) in rows {
        let _ = write!(out, "| {name} |");
        for r in runs {
            let _ = write!(out, " {} |", f(r));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storm::StormScenario;

    /// A storm of 1,000 clients at 5 new connections/s (N/rate 200 s) in a 30 s window that
    /// took `took`, with `refused` handshakes and `throttles` Lambda throttles.
    fn storm(took: u64, refused: u64, throttles: u64) -> StormResult {
        let scenario = StormScenario {
            clients: 1_000,
            window: Duration::from_secs(30),
            new_connections_rate: 5,
            ..StormScenario::default()
        };
        let clients = ClientFigures {
            refused,
            connected_at: (0..1_000u64)
                .map(|i| Duration::from_millis(took * 1_000 * (i + 1) / 1_000))
                .collect(),
            ..ClientFigures::default()
        };
        let mut totals = Totals::default();
        totals.connect_fn.throttles = throttles;
        StormResult::new(
            scenario,
            clients,
            totals,
            Duration::from_secs(took),
            Vec::new(),
        )
    }

    #[test]
    fn the_quota_is_the_bottleneck_only_when_the_storm_kept_its_pace() {
        // Near N/rate: the quota, however many handshakes Lambda throttled.
        assert!(
            storm(210, 5_000, 1_000)
                .bottleneck()
                .contains("new-connection quota")
        );
        // 2.5 × N/rate with more quota refusals than Lambda throttles: Lambda set the pace.
        let slow = storm(500, 5_000, 1_000).bottleneck();
        assert!(slow.starts_with("Lambda concurrency"), "{slow}");
        // Slow with no Lambda throttle: the clients' backoff.
        let backoff = storm(500, 5_000, 0).bottleneck();
        assert!(backoff.starts_with("the clients' backoff"), "{backoff}");
        assert!(storm(20, 0, 0).bottleneck().starts_with("none"));
    }
}
