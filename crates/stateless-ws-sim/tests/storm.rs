//! Scenario (c), the reconnect storm, scaled down: accounting, the quota as a bound, the effect
//! of raising it, presence against its contract, and determinism.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use stateless_ws_sim::storm::StormScenario;

/// `clients` reconnecting within `window_s` against `rate` new connections per second.
fn storm(clients: usize, window_s: u64, rate: u64) -> StormScenario {
    let mut s = StormScenario::default();
    s.clients = clients;
    s.window = Duration::from_secs(window_s);
    s.new_connections_rate = rate;
    s
}

#[test]
fn everyone_reconnects_within_a_factor_of_the_quota_s_bound_and_presence_keeps_its_contract() {
    // 2,000 clients in 2 s against 100/s: the quota's bound is 20 s, ten times the window. The
    // old connections are taken as gone before the storm (the cut has its own test below).
    let mut s = storm(2_000, 2, 100);
    (s.settle, s.disconnect) = (false, false);
    let r = s.run().unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.connected, r.failed), (2_000, 0));

    // The quota is a bound: no schedule connects N clients faster than N / rate (less the
    // bucket's burst, here one second's worth); full-jitter retries add a tail, within 1.5×.
    let t100 = r.time_to(1.0).unwrap();
    let burst_s = 1.0;
    assert!(
        t100.as_secs_f64() >= r.quota_bound().as_secs_f64() - burst_s,
        "{t100:?} < {:?}",
        r.quota_bound()
    );
    assert!(
        t100.as_secs_f64() <= 1.5 * r.quota_bound().as_secs_f64(),
        "{t100:?}"
    );
    assert!(r.time_to(0.5).unwrap() <= r.time_to(0.99).unwrap());
    assert!(r.time_to(0.99).unwrap() <= t100);
    assert!(r.clients.refused > 0);
    // Every handshake is accounted for: admitted ones became $connect invocations.
    let admitted = r.clients.attempts - r.clients.refused;
    assert_eq!(
        admitted,
        r.totals.connect_fn.invocations + r.totals.connect_fn.throttles
    );

    // Presence (its module's contract): every user's first connection in the group room
    // announces "joined" to the others in the room as the table shows it then. Joins in turn
    // reach every earlier member once: each pair of a group once; two members whose joins race
    // both see each other: twice. Posts to a member still in its $connect answer 410 and its
    // young record is kept (connect grace), never removed.
    let pairs = (2_000 / 10) * (10 * 9 / 2);
    let p = &r.totals.presence;
    assert_eq!(r.clients.announcements, 2_000);
    assert_eq!(p.posts, p.delivered + p.connecting + p.throttled);
    assert_eq!(p.cut, 0);
    assert_eq!(
        p.throttled, 0,
        "2,000 clients stay far below 10,000 posts/s"
    );
    assert!(p.delivered + p.connecting >= pairs, "{p:?}");
    assert!(p.delivered + p.connecting <= 2 * pairs, "{p:?}");
    assert_eq!(r.clients.cleaned, 0);

    // Resume: one per room per client, one log read each; the group rooms' missed messages
    // come back once per member.
    assert_eq!(r.clients.resumes, 2 * 2_000);
    assert_eq!(r.clients.log_reads, r.clients.resumes);
    assert_eq!(
        r.clients.recovered_messages,
        2_000 * s.missed_messages as u64
    );
    assert_eq!(r.totals.resume.delivered, r.clients.resumes);

    // DynamoDB: two joins per client, and no partition of a room of 10 runs hot.
    assert_eq!(r.totals.store.wcu, 2 * 2_000);
    assert_eq!(
        (
            r.totals.store.read_throttles,
            r.totals.store.write_throttles
        ),
        (0, 0)
    );
    assert!(r.cost_per_hour().total() > 0.0);
}

#[test]
fn raising_the_quota_shortens_the_storm() {
    let run = |rate| {
        let mut s = storm(5_000, 5, rate);
        (s.presence, s.resume) = (false, false);
        s.run().unwrap()
    };
    let (slow, fast) = (run(100), run(1_000));
    assert_eq!((slow.connected, fast.connected), (5_000, 5_000));
    let (t_slow, t_fast) = (slow.time_to(1.0).unwrap(), fast.time_to(1.0).unwrap());
    assert!(t_fast < t_slow, "{t_fast:?} vs {t_slow:?}");
    assert!(t_slow.as_secs_f64() >= slow.quota_bound().as_secs_f64() - 1.0);
    assert!(fast.clients.refused < slow.clients.refused);
    assert!(
        fast.clients.connect_latency.quantile(0.99) < slow.clients.connect_latency.quantile(0.99)
    );
}

#[test]
fn a_full_lambda_account_throttles_connects_and_they_retry() {
    // 20 executions, 18 of them held by the account's other functions.
    let mut s = storm(1_000, 1, 2_000);
    (s.lambda_limit, s.other_concurrency) = (20, 18);
    let r = s.run().unwrap();
    assert_eq!((r.connected, r.failed), (1_000, 0));
    assert!(r.totals.connect_fn.throttles > 0);
    // A throttled $connect comes back as a retry: every attempt of every client was refused
    // by the quota, throttled by Lambda, or ran (the last one connected).
    let f = &r.totals.connect_fn;
    assert_eq!(
        r.clients.attempts,
        r.clients.refused + f.throttles + f.invocations
    );
    assert!(r.clients.max_attempts > 1);
    assert!(r.totals.peak_concurrency <= 2);
    assert!(r.bottleneck().contains("Lambda"), "{}", r.bottleneck());
}

#[test]
fn the_same_seed_gives_the_same_figures() {
    let s = storm(600, 2, 200);
    let (mut a, mut b) = (s.run().unwrap(), s.run().unwrap());
    (a.wall, b.wall) = (Duration::ZERO, Duration::ZERO);
    assert_eq!(a, b);
    let mut other = s.clone();
    other.seed = 2;
    let mut c = other.run().unwrap();
    c.wall = Duration::ZERO;
    assert_ne!(a.clients.connected_at, c.clients.connected_at);
}

#[test]
fn clients_still_refused_at_the_horizon_are_counted_failed() {
    let mut s = storm(1_000, 1, 10);
    (s.presence, s.resume) = (false, false);
    s.horizon = Duration::from_secs(30);
    let r = s.run().unwrap();
    assert!(r.failed > 0);
    assert_eq!(r.connected + r.failed, 1_000);
    assert!(r.connected <= 10 * 30 + 10, "{}", r.connected);
    assert!(r.time_to(1.0).is_none());
}

#[test]
fn the_cut_runs_each_disconnect_once_and_removes_every_old_record() {
    // 2,000 clients cut within 2 s, each old connection in its two rooms; enough Lambda for
    // every $disconnect.
    let mut s = storm(2_000, 2, 100);
    (s.resume, s.settle) = (false, false);
    let r = s.run().unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.connected, r.failed), (2_000, 0));
    let d = &r.totals.disconnect_fn;
    assert_eq!((d.invocations, d.throttles), (2_000, 0));
    assert_eq!(r.clients.disconnect_errors, 0);
    // Every record written once and removed once: two joins per client, and its old
    // connection's two records removed — by its $disconnect, or first by a post's 410.
    assert_eq!(r.totals.store.wcu, 4 * 2_000);
    // "left" reaches the group's members: the old ones not yet cut (delivered), the cut ones
    // whose records a $disconnect had not yet removed (410, cleaned), the new ones (delivered,
    // or 410 while in their $connect).
    let left = &r.totals.departure;
    assert!(r.clients.departures >= 2_000, "{}", r.clients.departures);
    assert_eq!(
        left.posts,
        left.delivered + left.connecting + left.cut + left.throttled
    );
    assert!(left.delivered > 0 && left.cut > 0, "{left:?}");
    assert!(left.delivered + left.cut <= 2 * 2_000 * 9, "{left:?}");
    // A user whose old record is still in the room is already present there: no "joined".
    assert!(r.clients.announcements <= 2_000);

    // Without the cut, none of it.
    let mut without = s.clone();
    without.disconnect = false;
    let w = without.run().unwrap();
    assert_eq!(w.totals.disconnect_fn.invocations, 0);
    assert_eq!(w.totals.departure.posts, 0);
    assert_eq!(w.totals.store.wcu, 2 * 2_000);
}
