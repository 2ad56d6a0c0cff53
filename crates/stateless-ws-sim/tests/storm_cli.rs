//! The `storm` command: bad input is a usage error (exit 2), never a panic; a small run prints
//! one column per rate.
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
fn bad_storm_arguments_are_usage_errors() {
    for args in [
        &["storm", "--clients", "0"][..],
        &["storm", "--clients", "many"],
        &["storm", "--new-connections-rate", "0"],
        &["storm", "--new-connections-rate", "500,-1"],
        &["storm", "--window-s", "-3"],
        &["storm", "--group-size", "0"],
        &["storm", "--lambda-limit", "0"],
        &["storm", "--horizon-s", "0"],
    ] {
        let (code, _, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
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
