#!/usr/bin/env bash
# Shared by the side-by-side scripts (sourced, not run): the peer servers from ../shared/peers
# and the alternating two-pass loop, on top of bench-lib.sh (work directory, token, ports,
# task-mcp started pinned to CPU 1).
#
# Reads: repo, peers. Sets: work, pids, token; ours_pid after start_ours.
# shellcheck disable=SC2154 # repo and peers are the sourcing script's

[ -x "$peers/run-peers.sh" ] || { echo "missing $peers/run-peers.sh (the peer servers)" >&2; exit 1; }
bash "$peers/run-peers.sh" setup rmcp >/dev/null
# shellcheck source=bench-lib.sh source-path=SCRIPTDIR
. "$repo/benches/bench-lib.sh"

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
