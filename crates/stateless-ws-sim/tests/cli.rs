//! The command: bad input is a usage error (exit 2), never a panic; a small run prints the table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::run;

#[test]
fn bad_arguments_are_usage_errors() {
    common::assert_usage_errors(&[
        &["broadcast", "--members", "0"][..],
        &["broadcast", "--members", "-5"],
        &["broadcast", "--members", "lots"],
        &["broadcast", "--rate", "0"],
        &["broadcast", "--gone", "1.5"],
        &["broadcast", "--latency-p50-ms", "NaN"],
        &["broadcast", "--cold-start-ms", "-1"],
        &["broadcast", "--batch-size", "11"],
        &["broadcast", "--mode", "sideways"],
        &["no-such-scenario"],
        &[],
    ]);
}

#[test]
fn a_small_broadcast_prints_both_rows() {
    let (code, stdout, stderr) = run(&["broadcast", "--members", "2000", "--workers", "4"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("| in-line |"), "{stdout}");
    assert!(stdout.contains("| queued |"), "{stdout}");
}
