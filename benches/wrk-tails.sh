#!/usr/bin/env bash
# Tails by wrk's own measure: MCP ping and tools/call echo (JSON answers) against task-mcp and the
# rmcp peer, each pinned to CPU 1, wrk (1 thread, 32 keep-alive TLS connections) on CPU 0,
# alternating server order over two passes; prints requests/s and wrk's p99 with ratios.
#
#   cargo build --release --bins && benches/wrk-tails.sh
#
# Needs wrk (Debian: apt-get install wrk). Settings: DURATION (6s), WARMUP (2s), CONNS (32),
# PEERS (../shared/peers).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
peers="${PEERS:-$repo/../shared/peers}"
duration="${DURATION:-6s}"
warmup="${WARMUP:-2s}"
conns="${CONNS:-32}"
bin="$repo/target/release/task-mcp"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -x "$bin" ] || { echo "missing $bin: run cargo build --release --bins" >&2; exit 1; }
# shellcheck source=peer-lib.sh source-path=SCRIPTDIR
. "$repo/benches/peer-lib.sh"
ours_port=$(port)
start_ours "$ours_port"
rmcp_port=$(port)
start_rmcp "$rmcp_port" json

ping='{"jsonrpc":"2.0","id":1,"method":"ping"}'
call='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}'

# run SERVER ROW: "req/s p99 failed" by wrk.
run() {
    local server=$1 row=$2 url tok="" body
    [ "$row" = ping ] && body=$ping || body=$call
    if [ "$server" = ours ]; then
        url="https://127.0.0.1:$ours_port/mcp"
        tok=$token
    else
        url="https://127.0.0.1:$rmcp_port/mcp"
    fi
    # The answer is checked once before measuring: a wrong one stops the run.
    local auth=()
    [ -n "$tok" ] && auth=(-H "Authorization: Bearer $tok")
    curl -sk -m 5 "$url" "${auth[@]}" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2025-06-18' \
        -d "$body" | grep -q '"result"' || { echo "$server answered no result to $row" >&2; exit 1; }
    BODY=$body TOKEN=$tok taskset -c 0 wrk -t1 -c"$conns" -d"$warmup" -s "$repo/benches/wrk-mcp.lua" "$url" >/dev/null
    BODY=$body TOKEN=$tok taskset -c 0 wrk -t1 -c"$conns" -d"$duration" -s "$repo/benches/wrk-mcp.lua" "$url" |
        awk '$1 == "wrk-summary" { print $2, $3, $4 }'
}

measure_alternating ping json

echo "wrk tails: $(date -u +%Y-%m-%dT%H:%MZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $conns TLS connections, wrk -t1, ${warmup} warm-up, ${duration} measured, server on CPU 1, wrk on CPU 0"
echo
echo "| request | pass | task-mcp req/s (wrk p99 ms) | rmcp req/s (wrk p99 ms) | ratio |"
echo "|---|---|---|---|---|"
# shellcheck disable=SC2016 # markdown backticks, not command substitutions
declare -A names=([ping]='`ping`, JSON answer' [json]='`tools/call` echo, JSON answer')
for row in ping json; do
    for pass in 1 2; do
        read -r o_rps o_p99 o_fail <<<"${res[$pass,$row,ours]}"
        read -r r_rps r_p99 r_fail <<<"${res[$pass,$row,rmcp]}"
        ratio=$(python3 -c "print(f'{$o_rps / max($r_rps, 0.1):.2f}x')")
        note=""
        [ "$o_fail" != 0 ] && note+=" (task-mcp: $o_fail failed)"
        [ "$r_fail" != 0 ] && note+=" (rmcp: $r_fail failed)"
        echo "| ${names[$row]} | $pass | $o_rps ($o_p99) | $r_rps ($r_p99) | $ratio$note |"
    done
done
