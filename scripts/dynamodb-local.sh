#!/usr/bin/env bash
# Start, stop and query a local DynamoDB-compatible server (MiniStack) for the tests.
#
#   scripts/dynamodb-local.sh start     # prints the endpoint URL as the last line of stdout
#   scripts/dynamodb-local.sh stop      # idempotent
#   scripts/dynamodb-local.sh status    # exit 0 if running and answering, 1 otherwise
#   scripts/dynamodb-local.sh endpoint  # prints the endpoint URL, exit 1 if not running
#
# MiniStack (PyPI, MIT) is installed into a virtualenv, by default
# $REPO/.cache/ministack-venv (override with MINISTACK_VENV), with a pinned boto3 beside it for
# the Python handlers MiniStack runs with that venv's interpreter. The server listens on a
# free loopback port; its pid, endpoint and log live in $REPO/.cache/.
# Other settings: MINISTACK_PYTHON (interpreter that creates the venv, default python3),
# MINISTACK_START_TIMEOUT (seconds to wait for the first answer, default 60).
# Only the endpoint goes to stdout; every other message goes to stderr.
set -euo pipefail

MINISTACK_VERSION=1.5.33
# MiniStack runs Python Lambda handlers with its own interpreter (the venv's python, whatever the
# function's Runtime says), so the venv is their site-packages: MiniStack brings botocore
# (==1.43.106) but not boto3, which AWS's samples import. The boto3 release of that botocore.
BOTO3_VERSION=1.43.106

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$REPO/.cache"
VENV="${MINISTACK_VENV:-$CACHE/ministack-venv}"
PYTHON="${MINISTACK_PYTHON:-python3}"
START_TIMEOUT="${MINISTACK_START_TIMEOUT:-60}"
PID_FILE="$CACHE/ministack.pid"
ENDPOINT_FILE="$CACHE/ministack.endpoint"
LOG_FILE="$CACHE/ministack.log"

log() { printf 'dynamodb-local: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    echo "usage: $0 start|stop|status|endpoint" >&2
    exit 2
}

# The pid recorded in the pid file, if that process is alive and is MiniStack.
running_pid() {
    local pid
    [[ -f "$PID_FILE" ]] || return 1
    pid="$(<"$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled pid: the process must be MiniStack.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q ministack || return 1
    echo "$pid"
}

recorded_endpoint() {
    [[ -f "$ENDPOINT_FILE" ]] || return 1
    local endpoint
    endpoint="$(<"$ENDPOINT_FILE")"
    [[ -n "$endpoint" ]] || return 1
    echo "$endpoint"
}

# Whether a DynamoDB ListTables request to $1 succeeds (HTTP 200 with TableNames).
# MiniStack does not verify SigV4 signatures (unless AUTH=true), but it reads the
# account from the Authorization header, so send one like the SDK's with key `test`.
answers() {
    "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import json, sys, urllib.request
req = urllib.request.Request(
    sys.argv[1] + "/",
    data=b"{}",
    method="POST",
    headers={
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64,
        "X-Amz-Date": "20260101T000000Z",
    },
)
try:
    with urllib.request.urlopen(req, timeout=2) as resp:
        ok = resp.status == 200 and "TableNames" in json.load(resp)
except Exception:
    ok = False
sys.exit(0 if ok else 1)
PY
}

ensure_venv() {
    if [[ -x "$VENV/bin/python" ]] && ! "$VENV/bin/python" -c '' 2>/dev/null; then
        # The interpreter the venv was made from is gone: make it anew.
        if [[ -f "$VENV/pyvenv.cfg" ]]; then
            log "virtualenv $VENV is broken; recreating it"
            rm -rf "$VENV"
        else
            die "$VENV/bin/python does not run and $VENV is not a virtualenv; remove it or set MINISTACK_VENV"
        fi
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set MINISTACK_PYTHON or install python3)"
        log "creating virtualenv $VENV"
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv "$VENV" >&2 ||
            die "'$PYTHON -m venv' failed (on Debian: apt-get install -y python3-venv)"
    fi
    local installed
    installed="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("ministack"))' 2>/dev/null || true)"
    if [[ "$installed" != "$MINISTACK_VERSION" ]]; then
        log "installing ministack==$MINISTACK_VERSION into $VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            "ministack==$MINISTACK_VERSION" >&2 ||
            die "pip install ministack==$MINISTACK_VERSION failed"
    fi
    ensure_boto3
}

# Also for a MiniStack already running from a venv made before boto3 was installed here.
ensure_boto3() {
    local installed
    installed="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("boto3"))' 2>/dev/null || true)"
    if [[ "$installed" != "$BOTO3_VERSION" ]]; then
        log "installing boto3==$BOTO3_VERSION into $VENV (for Python handlers run by MiniStack)"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            "boto3==$BOTO3_VERSION" >&2 ||
            die "pip install boto3==$BOTO3_VERSION failed"
    fi
}

free_port() {
    "$VENV/bin/python" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Send a signal to MiniStack's process group and wait for the leader to exit.
kill_group() {
    local pid="$1" i
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
    kill -CONT -- "-$pid" 2>/dev/null || true # a stopped process would not act on TERM
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    # Whatever is left of the group (the leader, or children it left behind).
    kill -KILL -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < 25; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
}

clear_state() { rm -f "$PID_FILE" "$ENDPOINT_FILE"; }

cmd_stop() {
    local pid
    if pid="$(running_pid)"; then
        log "stopping MiniStack (pid $pid)"
        kill_group "$pid"
    elif [[ -f "$PID_FILE" ]]; then
        log "MiniStack was not running; removing stale state"
    fi
    clear_state
}

# One attempt to start MiniStack on a fresh port. Returns 0 when it answers,
# 75 when the port was taken in the meantime (worth another try), 1 otherwise.
start_once() {
    local port endpoint pid started elapsed_ms
    port="$(free_port)"
    endpoint="http://127.0.0.1:$port"
    : >"$LOG_FILE"
    # setsid makes MiniStack the leader of its own process group (and session),
    # so `stop` can signal the whole group and a Ctrl-C in the terminal does not
    # reach it before the caller's cleanup does.
    # AWS_ENDPOINT_URL: MiniStack hands it to the Lambda functions it runs (provided.* bootstraps),
    # so that their AWS SDK reaches MiniStack's DynamoDB instead of AWS (tests with real functions).
    GATEWAY_PORT="$port" BIND_HOST=127.0.0.1 PERSIST_STATE=0 AWS_ENDPOINT_URL="$endpoint" \
        "$VENV/bin/python" -c 'import os, sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])' \
        "$VENV/bin/ministack" </dev/null >>"$LOG_FILE" 2>&1 &
    pid=$!
    echo "$pid" >"$PID_FILE"
    echo "$endpoint" >"$ENDPOINT_FILE"
    started="${EPOCHREALTIME//[!0-9]/}"
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null || true
            clear_state
            if grep -qi 'address already in use' "$LOG_FILE"; then
                log "port $port was taken before MiniStack bound it"
                return 75
            fi
            log "MiniStack exited during startup; last lines of $LOG_FILE:"
            tail -n 40 "$LOG_FILE" >&2
            return 1
        fi
        if answers "$endpoint"; then
            elapsed_ms=$(((${EPOCHREALTIME//[!0-9]/} - started) / 1000))
            log "MiniStack $MINISTACK_VERSION answers at $endpoint (pid $pid, ready after $elapsed_ms ms)"
            return 0
        fi
        elapsed_ms=$(((${EPOCHREALTIME//[!0-9]/} - started) / 1000))
        if ((elapsed_ms >= START_TIMEOUT * 1000)); then
            log "MiniStack did not answer within $START_TIMEOUT s; last lines of $LOG_FILE:"
            tail -n 40 "$LOG_FILE" >&2
            kill_group "$pid"
            clear_state
            return 1
        fi
        sleep 0.2
    done
}

cmd_start() {
    local pid endpoint attempt rc
    mkdir -p "$CACHE"
    if pid="$(running_pid)"; then
        if endpoint="$(recorded_endpoint)" && [[ -x "$VENV/bin/python" ]] && answers "$endpoint"; then
            log "MiniStack already running (pid $pid)"
            ensure_boto3
            echo "$endpoint"
            return 0
        fi
        log "MiniStack (pid $pid) does not answer; restarting it"
        kill_group "$pid"
    fi
    clear_state
    ensure_venv
    for attempt in 1 2 3; do
        rc=0
        start_once || rc=$?
        if ((rc == 0)); then
            recorded_endpoint
            return 0
        fi
        ((rc == 75)) || exit 1
    done
    die "could not start MiniStack: $attempt attempts lost their port to another process"
}

cmd_status() {
    local pid endpoint
    if pid="$(running_pid)" && endpoint="$(recorded_endpoint)" && answers "$endpoint"; then
        echo "MiniStack is running at $endpoint (pid $pid)"
        return 0
    fi
    if pid="$(running_pid)"; then
        echo "MiniStack is running (pid $pid) but does not answer"
    else
        echo "MiniStack is not running"
    fi
    return 1
}

cmd_endpoint() {
    local endpoint
    if running_pid >/dev/null && endpoint="$(recorded_endpoint)"; then
        echo "$endpoint"
        return 0
    fi
    log "MiniStack is not running (start it with: $0 start)"
    return 1
}

[[ $# -eq 1 ]] || usage
case "$1" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
endpoint) cmd_endpoint ;;
*) usage ;;
esac
