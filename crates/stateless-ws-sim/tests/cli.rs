//! The command: bad input is a usage error (exit 2), never a panic; a small run prints the table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stateless-ws-sim"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
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
    ] {
        let (code, _, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_small_broadcast_prints_both_rows() {
    let (code, stdout, stderr) = run(&["broadcast", "--members", "2000", "--workers", "4"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("| in-line |"), "{stdout}");
    assert!(stdout.contains("| queued |"), "{stdout}");
}
