#!/usr/bin/env bash
# task-mcp against the rmcp peer, side by side: the same requests through the same load tool
# (task-mcp-load, rustls, keep-alive), both servers pinned to one core and the client to the
# other, alternating server order, two passes; prints a markdown table with ratios.
#
#   cargo build --release --bins && benches/side-by-side.sh
#
# Rows: MCP ping (JSON answer); tools/call echo (JSON answer); tools/call echo with
# _meta.progressToken; tools/call echo answered as SSE (ours: Accept: text/event-stream only;
# rmcp: its SSE mode, which refuses an Accept without application/json); the seed APIs' echo
# (POST /sse, NDJSON POST /mcp) against rmcp's SSE answer; JSON tools/call with IDLE (1000) idle
# keep-alive connections held open beside (ours: server memory per idle connection and threads,
# from /proc); JSON tools/call with a CPU-bound neighbour pinned to the server's core. The peer comes from ../shared/peers (run-peers.sh builds it; never part of this
# repository). Settings: DURATION (6s), WARMUP (2s), CONNS (32), ROWS (every row), PEERS (../shared/peers).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
peers="${PEERS:-$repo/../shared/peers}"
duration="${DURATION:-6s}"
warmup="${WARMUP:-2s}"
conns="${CONNS:-32}"
idle="${IDLE:-1000}"
read -r -a rows <<<"${ROWS:-ping json progress sse seed-sse seed-ndjson idle contended}"
bin="$repo/target/release/task-mcp"
load="$repo/target/release/task-mcp-load"
for f in "$bin" "$load"; do
    [ -x "$f" ] || { echo "missing $f: run cargo build --release --bins" >&2; exit 1; }
done
# shellcheck source=peer-lib.sh source-path=SCRIPTDIR
. "$repo/benches/peer-lib.sh"
# One client address holds the idle connections too: lift the per-address cap above them.
ours_port=$(port)
start_ours "$ours_port" MAX_CONNECTIONS_PER_IP=$((idle + conns + 64))
rmcp_json=$(port)
rmcp_sse=$(port)
start_rmcp "$rmcp_json" json
start_rmcp "$rmcp_sse" sse

# run SERVER ROW: one measurement as "req/s p99".
run() {
    local server=$1 row=$2 args=()
    case $row in
        ping) args=(ping) ;;
        json) args=(call --tool echo --args '{"text":"hi"}') ;;
        progress) args=(call --tool echo --args '{"text":"hi"}' --progress) ;;
        sse) args=(call --tool echo --args '{"text":"hi"}' --sse) ;;
        seed-sse) args=(seed-sse --tool echo --args '{"text":"hi"}') ;;
        seed-ndjson) args=(seed-ndjson --tool echo --args '{"text":"hi"}') ;;
        idle) args=(call --tool echo --args '{"text":"hi"}' --idle "$idle") ;;
        contended) args=(call --tool echo --args '{"text":"hi"}') ;;
    esac
    local hog=""
    if [ "$row" = contended ]; then
        # A CPU-bound neighbour on the server's core, the same for both servers.
        taskset -c 1 sh -c 'while :; do :; done' &
        hog=$!
    fi
    local target
    if [ "$server" = ours ]; then
        target=(--url "https://127.0.0.1:$ours_port" --insecure --token "$token" --server-pid "$ours_pid")
    elif [ "$row" = sse ] || [ "${row#seed-}" != "$row" ]; then
        # rmcp refuses an Accept without application/json (406); in its SSE mode it answers
        # SSE to the usual Accept of both. It has no seed APIs: their rows compare with this.
        args=(call --tool echo --args '{"text":"hi"}')
        target=(--url "https://127.0.0.1:$rmcp_sse/mcp" --insecure)
    else
        target=(--url "https://127.0.0.1:$rmcp_json/mcp" --insecure)
    fi
    taskset -c 0 "$load" "${args[@]}" "${target[@]}" -c "$conns" -d "$duration" --warmup "$warmup" --json |
        python3 -c 'import json,sys; v=json.load(sys.stdin); l=v["latency_ms"] or {}; i=v.get("idle") or {}; print(v["requests_per_second"], l.get("p99"), v["failed"], i.get("server_kib_per_idle_connection"), i.get("server_threads_with_idle"), i.get("answered"))'
    [ -z "$hog" ] || kill "$hog"
}

measure_alternating "${rows[@]}"

echo "side-by-side: $(date -u +%Y-%m-%dT%H:%MZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $conns TLS connections, ${warmup} warm-up, ${duration} measured, server on CPU 1, client on CPU 0"
echo
echo "| request | pass | task-mcp req/s (p99 ms) | rmcp req/s (p99 ms) | ratio |"
echo "|---|---|---|---|---|"
# shellcheck disable=SC2016 # markdown backticks, not command substitutions
declare -A names=([ping]='`ping`, JSON answer' [json]='`tools/call` echo, JSON answer'
    [progress]='`tools/call` echo with `_meta.progressToken`' [sse]='`tools/call` echo, SSE answer'
    [contended]='`tools/call` echo, JSON answer, a CPU-bound neighbour on the server core'
    [idle]="\`tools/call\` echo, JSON answer, $idle idle keep-alive connections open beside"
    [seed-sse]='seed `POST /sse` echo (rmcp: SSE answer)' [seed-ndjson]='seed NDJSON `POST /mcp` echo (rmcp: SSE answer)')
for row in "${rows[@]}"; do
    for pass in 1 2; do
        read -r o_rps o_p99 o_fail o_kib o_threads o_idle <<<"${res[$pass,$row,ours]}"
        read -r r_rps r_p99 r_fail _ _ r_idle <<<"${res[$pass,$row,rmcp]}"
        ratio=$(python3 -c "print(f'{$o_rps / max($r_rps, 0.1):.2f}x')")
        note=""
        [ "$o_fail" != 0 ] && note+=" (task-mcp: $o_fail failed)"
        [ "$r_fail" != 0 ] && note+=" (rmcp: $r_fail failed)"
        [ "$row" = idle ] && note+=" (task-mcp: $o_idle/$idle idle answered, $o_kib KiB each, $o_threads threads; rmcp: $r_idle/$idle answered)"
        echo "| ${names[$row]} | $pass | $o_rps ($o_p99) | $r_rps ($r_p99) | $ratio$note |"
    done
done
