#!/usr/bin/env bash
# Shared by the side-by-side scripts (sourced, not run): the peer servers from ../shared/peers,
# a work directory removed on exit with every started server killed, free ports, and task-mcp
# started pinned to CPU 1 with a fresh bearer token.
#
# Reads: repo, peers. Sets: work, pids, token; ours_pid after start_ours.
# shellcheck disable=SC2154 # repo and peers are the sourcing script's

[ -x "$peers/run-peers.sh" ] || { echo "missing $peers/run-peers.sh (the peer servers)" >&2; exit 1; }
bash "$peers/run-peers.sh" setup rmcp >/dev/null
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
token="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

# shellcheck source=net-lib.sh source-path=SCRIPTDIR
. "$repo/benches/net-lib.sh"

# start_ours PORT [VAR=value...]: task-mcp on CPU 1 with test tools, the token and no rate limit
# (the peer has none), plus the settings given; sets ours_pid and waits for the port.
start_ours() {
    local p=$1
    shift
    mkdir -p "$work/root"
    env -i PATH="$PATH" HOME="$work" TASK_MCP_ROOT="$work/root" STATE_DIR="$work/state" PORT="$p" \
        AUTH_TOKENS="bench:$token" ENABLE_TEST_TOOLS=true RATE_LIMIT=0 LOG_LEVEL=warn "$@" \
        taskset -c 1 "$repo/target/release/task-mcp" serve >"$work/ours.log" 2>&1 &
    ours_pid=$!
    pids+=("$ours_pid")
    wait_port "$p"
}

# start_rmcp PORT MODE: the rmcp peer on CPU 1 over TLS, in json or sse mode.
start_rmcp() {
    PEER_CPUS=1 bash "$peers/run-peers.sh" rmcp "$1" "$2" tls >"$work/rmcp-$2.log" 2>&1 &
    pids+=($!)
    wait_port "$1"
}

# measure_alternating ROW...: `run SERVER ROW` (the sourcing script's) for both servers and every
# row, two passes, the servers' order swapped in the second; results in res[PASS,ROW,SERVER].
declare -A res
measure_alternating() {
    local pass row server order
    for pass in 1 2; do
        for row in "$@"; do
            order=(ours rmcp)
            [ "$pass" = 2 ] && order=(rmcp ours)
            for server in "${order[@]}"; do
                # shellcheck disable=SC2034 # res is read by the sourcing script
                res[$pass,$row,$server]=$(run "$server" "$row")
            done
        done
    done
}
