#!/usr/bin/env bash
# Shared by the bench scripts (sourced, not run): a work directory removed on exit with every
# started server killed, a fresh bearer token, free ports, and task-mcp started pinned to CPU 1.
#
# Reads: repo; ours_bin (default target/release/task-mcp). Sets: work, pids, token; ours_pid
# after start_ours.
# shellcheck disable=SC2154 # repo is the sourcing script's

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
token="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

# A free TCP port on 127.0.0.1.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits up to 10 s for something to listen on port $1.
wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    return 1
}

# start_ours PORT [VAR=value...]: task-mcp on CPU 1 with test tools, the token and no rate limit
# (the peers have none), plus the settings given; sets ours_pid and waits for the port.
start_ours() {
    local p=$1
    shift
    mkdir -p "$work/root"
    env -i PATH="$PATH" HOME="$work" TASK_MCP_ROOT="$work/root" STATE_DIR="$work/state" PORT="$p" \
        AUTH_TOKENS="bench:$token" ENABLE_TEST_TOOLS=true RATE_LIMIT=0 LOG_LEVEL=warn "$@" \
        taskset -c 1 "${ours_bin:-$repo/target/release/task-mcp}" serve >"$work/ours.log" 2>&1 &
    ours_pid=$!
    pids+=("$ours_pid")
    wait_port "$p"
}
