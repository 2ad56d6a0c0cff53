//! The `storm` command: bad input is a usage error (exit 2), never a panic; a small run prints
//! one column per rate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::run;

#[test]
fn bad_storm_arguments_are_usage_errors() {
    common::assert_usage_errors(&[
        &["storm", "--clients", "0"][..],
        &["storm", "--clients", "many"],
        &["storm", "--new-connections-rate", "0"],
        &["storm", "--new-connections-rate", "500,-1"],
        &["storm", "--window-s", "-3"],
        &["storm", "--group-size", "0"],
        &["storm", "--lambda-limit", "0"],
        &["storm", "--horizon-s", "0"],
    ]);
}

#[test]
fn a_small_storm_prints_one_column_per_rate() {
    let (code, stdout, stderr) = run(&[
        "storm",
        "--clients",
        "300",
        "--window-s",
        "1",
        "--new-connections-rate",
        "100,1000",
        "--no-settle",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("| figure | 100/s | 1000/s |"), "{stdout}");
    assert!(
        stdout.contains("| connected / failed | 300 / 0 | 300 / 0 |"),
        "{stdout}"
    );
    let widths: Vec<usize> = stdout
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| l.matches('|').count())
        .collect();
    assert!(
        widths.len() > 20 && widths.iter().all(|&w| w == 4),
        "{stdout}"
    );
}
