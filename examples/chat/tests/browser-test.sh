#!/usr/bin/env bash
# The browser test of the chat example's page: starts the `local_chat` binary on a free
# port, runs examples/chat/tests/browser/ (headless Debian Chromium driven by playwright-core, on Node's
# built-in test runner) against it, and stops the server on exit.
#
#   examples/chat/tests/browser-test.sh      (from anywhere; scripts/test.sh runs it)
#
# Needs node/npm and Debian's Chromium (apt-get install -y chromium; or set CHROMIUM to
# another Chromium binary). Playwright's own browser download (`npx playwright install`) is
# not used. Screenshots of both pages land in target/browser/; the server's log in
# .cache/local_chat.log. The output ends with node's test summary.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$REPO"
BROWSER_DIR="$REPO/examples/chat/tests/browser"
SERVER_LOG="$REPO/.cache/local_chat.log"
TEST_OUT="$REPO/.cache/browser-test.out"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
START_TIMEOUT=120

server_pid=

stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in {1..50}; do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_server
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { printf '\n==> %s\n' "$*"; }

command -v node >/dev/null 2>&1 || { echo "error: node not found (Node.js 20 or newer is needed)" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "error: npm not found" >&2; exit 1; }
if [[ ! -x "$CHROMIUM" ]]; then
    {
        echo "error: $CHROMIUM not found. Install Debian's Chromium:"
        echo "    apt-get update && apt-get install -y chromium"
        echo "or point CHROMIUM at another Chromium binary."
    } >&2
    exit 1
fi

if [[ ! -d "$BROWSER_DIR/node_modules" ]]; then
    step "installing the browser test's npm packages (examples/chat/tests/browser)"
    if [[ -f "$BROWSER_DIR/package-lock.json" ]]; then
        npm ci --prefix "$BROWSER_DIR" --no-audit --no-fund
    else
        npm install --prefix "$BROWSER_DIR" --no-audit --no-fund
    fi
fi

# The same command line (workspace, all features, all targets) as scripts/test.sh, so that the
# binary is the one its `cargo test` already built: another feature set would rebuild the AWS SDK.
step "cargo build --workspace --all-features --all-targets"
cargo build --workspace --all-features --all-targets
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"

step "starting the local chat server (log: ${SERVER_LOG#"$REPO"/})"
mkdir -p "$(dirname "$SERVER_LOG")"
: >"$SERVER_LOG"
"$target_dir/debug/local_chat" --port 0 >"$SERVER_LOG" 2>&1 &
server_pid=$!

chat_url=
for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    chat_url="$(sed -n 's|.*open \(http://[^ ]*\).*|\1|p' "$SERVER_LOG" | head -n 1)"
    [[ -n "$chat_url" ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "error: the local chat server exited before it was ready; its log:" >&2
        cat "$SERVER_LOG" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$chat_url" ]]; then
    echo "error: no 'open http://...' line from the local chat server within ${START_TIMEOUT}s; its log:" >&2
    cat "$SERVER_LOG" >&2
    exit 1
fi
export CHAT_URL="$chat_url"
export CHROMIUM
echo "CHAT_URL=$CHAT_URL"

step "node --test examples/chat/tests/browser/ (Chromium: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"))"
test_status=0
# One file at a time: the files share the users alice and bob.
node --test --test-concurrency=1 --test-reporter=spec "$BROWSER_DIR/" 2>&1 | tee "$TEST_OUT" || test_status=$?
stop_server

if ((test_status != 0)); then
    # The server's side of the story, then node's summary again so that it stays the last word.
    printf '\n==> FAILED: the local chat server log (last 40 lines of %s)\n' "${SERVER_LOG#"$REPO"/}"
    tail -n 40 "$SERVER_LOG"
    printf '\n'
    grep -E '^ℹ (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ' "$TEST_OUT" || true
    exit "$test_status"
fi
