# Shared by the .ci/ scripts (sourced, never run): Debian installs, a step runner with pass/fail
# counts, a free loopback port, and the Python venv the monitoring checks read rules with.
# shellcheck shell=bash

# apt_install PKG...: installs Debian packages quietly; fails (status 1) when not root.
apt_install() {
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null; then
        echo "missing $*; install it (Debian packages: $*)" >&2
        return 1
    fi
    echo "installing $* from Debian" >&2
    apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# step NAME CMD...: runs CMD, prints "--- ok" or "--- FAILED", counts into $passed / $failed.
passed=0
failed=0
step() {
    local name=$1
    shift
    echo "=== $name"
    if "$@"; then
        echo "--- ok: $name"
        passed=$((passed + 1))
    else
        echo "--- FAILED: $name"
        failed=$((failed + 1))
    fi
}

# free_port: a TCP port free on 127.0.0.1 right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# monitoring_venv DIR: a venv at DIR with PyYAML and promql-parser (rules and dashboards parsing).
monitoring_venv() {
    local dir=$1
    if [[ ! -x $dir/bin/python ]]; then
        python3 -m venv "$dir" || return 1
    fi
    "$dir/bin/python" -c 'import yaml, promql_parser' 2>/dev/null ||
        "$dir/bin/pip" install -q 'pyyaml==6.0.3' 'promql-parser==0.11.0'
}

# A task-mcp server for the checks: `server_start NAME BIN LOG_FILE [VAR=value...]` runs
# `BIN serve` in the current folder with HOST=127.0.0.1 PORT=0 plus the given settings,
# waits up to $ready_timeout_s (default 30) for its "listening on" line, and sets server_pid and
# server_port; `server_stop` ends it (SIGTERM, then SIGKILL after 10 s).
server_pid=""
# shellcheck disable=SC2034  # read by the scripts that source this file
server_port=""
server_start() {
    local name=$1 server_bin=$2 log_file=$3
    shift 3
    (exec env HOST=127.0.0.1 PORT=0 "$@" "$server_bin" serve) >"$log_file" 2>&1 &
    server_pid=$!
    local deadline=$((SECONDS + ${ready_timeout_s:-30}))
    server_port=""
    # shellcheck disable=SC2034  # server_port is read by the scripts that source this file
    until server_port="$(grep -o -m1 'listening on https://127\.0\.0\.1:[0-9]*' "$log_file" | grep -o '[0-9]*$')"; do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "the $name server exited before it listened:" >&2
            cat "$log_file" >&2
            return 1
        fi
        if ((SECONDS > deadline)); then
            echo "the $name server did not listen within ${ready_timeout_s:-30}s" >&2
            return 1
        fi
        sleep 0.1
    done
}
server_stop() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
