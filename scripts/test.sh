#!/usr/bin/env bash
# The project's test command: starts a local DynamoDB-compatible server (MiniStack,
# see scripts/dynamodb-local.sh), runs every check against it, and stops it on exit.
#
#   scripts/test.sh              # everything
#   scripts/test.sh dynamodb     # extra args go to `cargo test --all-targets` (e.g. a filter)
#
# Steps, stopping at the first failure: rustfmt check, cargo test of the whole workspace (the
# library and the chat example; all targets, then doctests), clippy and rustdoc with warnings
# denied, each feature of the library compiled on its own, the resumable rooms client's Node
# tests (examples/chat/tests/resumable/), and the chat page in headless Chromium, then the local
# walkthrough of crates/stateless-ws-local/README.md run as written (scripts/walkthrough.sh).
# Tests and lints use --workspace --all-features so dependencies are compiled once.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
DYNAMODB_LOCAL="$REPO/scripts/dynamodb-local.sh"
TEST_LOG="$REPO/.cache/cargo-test.log"

# Set once cargo test has run: the total over all test binaries is then printed as
# the very last line (after MiniStack's shutdown message), as "tests: N passed, N failed".
summary_status=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    "$DYNAMODB_LOCAL" stop || true
    if ((status != 0)); then printf '\n==> FAILED (exit %s): %s\n' "$status" "$current_step"; fi
    if [[ -n "$summary_status" ]]; then summary "$summary_status"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

current_step=
banner() {
    current_step="$*"
    printf '\n==> %s\n' "$*"
}

# Started first, so that a server that cannot start fails the run before the long
# build; `stop` runs on any exit, including failures and Ctrl-C (see cleanup).
banner "starting MiniStack (local DynamoDB)"
endpoint="$("$DYNAMODB_LOCAL" start)"
endpoint="${endpoint##*$'\n'}"
export DYNAMODB_ENDPOINT="$endpoint"
export STATELESS_WS_REQUIRE_DYNAMODB=1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE
echo "DYNAMODB_ENDPOINT=$DYNAMODB_ENDPOINT"

# cargo test's output is streamed (tee writes each chunk as it comes) and kept in
# $TEST_LOG, so that a total over all test binaries can be printed at the end.
if [[ -t 1 ]]; then
    export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-always}"
    fmt_color=always
else
    fmt_color=never # rustfmt colours its diff even into a file unless told not to
fi
mkdir -p "$(dirname "$TEST_LOG")"
: >"$TEST_LOG"

summary() {
    local status="$1"
    awk -v status="$status" '
        /^test result: / {
            for (i = 1; i <= NF; i++) {
                if ($(i + 1) ~ /^passed/) passed += $i
                if ($(i + 1) ~ /^failed/) failed += $i
                if ($(i + 1) ~ /^ignored/) ignored += $i
            }
        }
        END {
            # A test binary that crashed prints no result line: count it as a failure.
            if (status != 0 && failed == 0) failed = 1
            printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, ignored
        }' "$TEST_LOG"
}

banner "cargo fmt --all -- --check"
cargo fmt --all -- --check --color "$fmt_color"

# Not under `set -e` here (a failing pipeline is caught so the total still prints);
# pipefail makes each pipeline's status cargo's, not tee's.
test_status=0
banner "cargo test --workspace --all-features --all-targets --no-fail-fast $*"
cargo test --workspace --all-features --all-targets --no-fail-fast "$@" 2>&1 | tee -a "$TEST_LOG" || test_status=$?
if ((test_status == 0)); then
    banner "cargo test --workspace --all-features --doc"
    cargo test --workspace --all-features --doc 2>&1 | tee -a "$TEST_LOG" || test_status=$?
fi
summary_status=$test_status
((test_status == 0)) || exit "$test_status"

banner "cargo clippy --workspace --all-targets --all-features -- -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings

banner "cargo doc --workspace --all-features --no-deps (RUSTDOCFLAGS=-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps

# Each feature alone, none, and the defaults: what `cargo hack check --each-feature
# --no-dev-deps` does, without installing it (`--lib` builds no dev-dependency). The in-memory
# store, events and the broadcaster must build without any AWS SDK crate.
for features in "" dynamodb apigw lambda conformance sqs secretsmanager test-util jwt "jwt lambda"; do
    banner "cargo check -p stateless-ws --lib --no-default-features --features '$features'"
    cargo check -p stateless-ws --lib --no-default-features --features "$features"
done
# The local gateway's library as its users build it: on the core without default features.
banner "cargo check -p stateless-ws-local --lib"
cargo check -p stateless-ws-local --lib
banner "cargo check -p stateless-ws --lib (default features)"
cargo check -p stateless-ws --lib
banner "RUSTDOCFLAGS=-D warnings cargo doc -p stateless-ws --no-deps (default features)"
RUSTDOCFLAGS="-D warnings" cargo doc -p stateless-ws --no-deps

banner "node --test examples/chat/tests/resumable/ (the resumable rooms client, examples/chat/static/resumable.js)"
node --test --test-reporter=spec "$REPO/examples/chat/tests/resumable/"

banner "examples/chat/tests/browser-test.sh (headless Chromium against the chat example)"
"$REPO/examples/chat/tests/browser-test.sh"

banner "scripts/walkthrough.sh (crates/stateless-ws-local/README.md's local walkthrough, as written)"
"$REPO/scripts/walkthrough.sh"

banner "all checks passed"
