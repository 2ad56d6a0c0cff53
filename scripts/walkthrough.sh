#!/usr/bin/env bash
# Runs the walkthrough "From nothing to a message" of crates/stateless-ws-local/README.md exactly
# as written: every ```sh block between <!-- walkthrough --> and <!-- /walkthrough -->, in order,
# in one bash, from the repository's root. Passes when the last block prints the message bob
# received. scripts/test.sh runs it last; run it alone with `scripts/walkthrough.sh`.
#
# Only the environment is set from outside, never the steps: `cargo install` builds into this
# repository's target/ (CARGO_TARGET_DIR, so the crates compiled already are reused) and installs
# into .cache/walkthrough/ (CARGO_INSTALL_ROOT, put first on PATH) instead of ~/.cargo/bin.
# Needs ports 4566 and 3002 free, as a user's machine would.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
README="$REPO/crates/stateless-ws-local/README.md"
WORK="$REPO/.cache/walkthrough"
mkdir -p "$WORK"

script="$(python3 - "$README" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
match = re.search(r"<!-- walkthrough -->(.*?)<!-- /walkthrough -->", text, re.S)
if not match:
    sys.exit("no <!-- walkthrough --> section in " + sys.argv[1])
blocks = re.findall(r"^```sh\n(.*?)^```$", match.group(1), re.S | re.M)
if not blocks:
    sys.exit("the walkthrough section has no sh blocks")
print("\n".join(blocks))
PY
)"

for port in 4566 3002; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "walkthrough: port $port is in use; the walkthrough needs it free" >&2
        exit 1
    fi
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
export CARGO_INSTALL_ROOT="$WORK/cargo"
export PATH="$CARGO_INSTALL_ROOT/bin:$PATH"
LOG="$WORK/walkthrough.log"

# The background jobs the steps start (MiniStack, the gateway) are stopped however the steps end;
# their logs are shown when a step fails.
prelude='set -euo pipefail
on_exit() {
    status=$?
    if [ "$status" -ne 0 ]; then
        for f in ministack.log gateway.log; do
            [ -f "$f" ] && { echo "--- $PWD/$f (last lines)"; tail -n 30 "$f"; }
        done
    fi
    jobs -p | xargs -r kill 2>/dev/null || true
    wait 2>/dev/null || true
    exit "$status"
}
trap on_exit EXIT
'
echo "walkthrough: running the README's steps (log: $LOG)"
status=0
timeout 1200 bash -c "$prelude$script" 2>&1 | tee "$LOG" || status=$?
if ((status != 0)); then
    echo "walkthrough: FAILED (exit $status)" >&2
    exit "$status"
fi
if ! grep -qx "bob received: hello, bob" "$LOG"; then
    echo "walkthrough: FAILED: bob did not receive the message" >&2
    exit 1
fi
echo "walkthrough: passed — a message went from one client to another through the README's steps"
