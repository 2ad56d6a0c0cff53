#!/usr/bin/env bash
# The browser test of the chat example's page: starts the `local_chat` binary on a free
# port, runs examples/chat/tests/browser/ (headless Debian Chromium driven by playwright-core, on Node's
# built-in test runner) against it, and stops the server on exit.
#
#   examples/chat/tests/browser-test.sh      (from anywhere; scripts/test.sh runs it)
#
# Needs node/npm and Debian's Chromium (apt-get install -y chromium; or set CHROMIUM to
# another Chromium binary). Playwright's own browser download (`npx playwright install`) is
# not used. A second server runs with --no-history (CHAT_URL_NO_HISTORY), for the page without a
# message log. Screenshots of the pages land in target/browser/; the servers' logs in
# .cache/local_chat.log and .cache/local_chat-no-history.log. The output ends with node's test
# summary.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$REPO"
BROWSER_DIR="$REPO/examples/chat/tests/browser"
SERVER_LOG="$REPO/.cache/local_chat.log"
PLAIN_LOG="$REPO/.cache/local_chat-no-history.log"
TEST_OUT="$REPO/.cache/browser-test.out"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
START_TIMEOUT=120

server_pid=
plain_pid=

stop_pid() {
    local pid=$1
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in {1..50}; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}

stop_server() {
    stop_pid "$server_pid"
    stop_pid "$plain_pid"
    server_pid=
    plain_pid=
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

# Waits for the "open http://..." line of the server `pid` logging to `log`; prints the address.
wait_for_url() {
    local pid=$1 log=$2 url= i
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        url="$(sed -n 's|.*open \(http://[^ ]*\).*|\1|p' "$log" | head -n 1)"
        [[ -n "$url" ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "error: the local chat server exited before it was ready; its log:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    if [[ -z "$url" ]]; then
        echo "error: no 'open http://...' line from the local chat server within ${START_TIMEOUT}s; its log:" >&2
        cat "$log" >&2
        return 1
    fi
    echo "$url"
}

step "starting the local chat servers (logs: ${SERVER_LOG#"$REPO"/}, ${PLAIN_LOG#"$REPO"/})"
mkdir -p "$(dirname "$SERVER_LOG")"
: >"$SERVER_LOG"
: >"$PLAIN_LOG"
"$target_dir/debug/local_chat" --port 0 >"$SERVER_LOG" 2>&1 &
server_pid=$!
"$target_dir/debug/local_chat" --port 0 --no-history >"$PLAIN_LOG" 2>&1 &
plain_pid=$!
chat_url="$(wait_for_url "$server_pid" "$SERVER_LOG")"
plain_url="$(wait_for_url "$plain_pid" "$PLAIN_LOG")"
export CHAT_URL="$chat_url"
export CHAT_URL_NO_HISTORY="$plain_url"
export CHROMIUM
echo "CHAT_URL=$CHAT_URL CHAT_URL_NO_HISTORY=$CHAT_URL_NO_HISTORY"

step "node --test examples/chat/tests/browser/ (Chromium: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"))"
test_status=0
# One file at a time: the files share the users alice and bob.
node --test --test-concurrency=1 --test-reporter=spec "$BROWSER_DIR/" 2>&1 | tee "$TEST_OUT" || test_status=$?
stop_server

if ((test_status != 0)); then
    # The servers' side of the story, then node's summary again so that it stays the last word.
    for log in "$SERVER_LOG" "$PLAIN_LOG"; do
        printf '\n==> FAILED: the local chat server log (last 40 lines of %s)\n' "${log#"$REPO"/}"
        tail -n 40 "$log"
    done
    printf '\n'
    grep -E '^ℹ (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ' "$TEST_OUT" || true
    exit "$test_status"
fi
