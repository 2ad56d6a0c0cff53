//! Environment-variable tests in a child process. The environment cannot be changed safely
//! inside a threaded test binary (and this crate forbids `unsafe`), so a test runs this binary
//! again, as a child, for one case: with `vars` set, `unset` removed and the case's name in
//! `case_var`; the child checks the case and the parent reads its exit status.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

/// Runs test `test` (its full path, e.g. `env::from_env_reads_…`) in a child of this binary for
/// `case`, and fails when the child's test did not pass.
pub(crate) fn run_case(
    test: &str,
    case_var: &str,
    case: &str,
    unset: &[&str],
    vars: &[(&str, &str)],
) {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args([test, "--exact", "--test-threads=1"])
        .env(case_var, case);
    for name in unset {
        child.env_remove(name);
    }
    for (name, value) in vars {
        child.env(name, value);
    }
    let out = child.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "case {case}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
