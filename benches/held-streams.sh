#!/usr/bin/env bash
# Held streams: N legacy `GET /sse` streams, then N MCP `GET /mcp` streams (stateful sessions),
# each held through several heartbeats; prints the load tool's report (every heartbeat counted,
# the largest gap, server memory per stream and threads, from /proc).
#
#   cargo build --release --bins && benches/held-streams.sh
#   BIN=target/x86_64-unknown-linux-musl/release/task-mcp benches/held-streams.sh   # the static build
#
# Settings: STREAMS (10000), HOLD (6s), HEARTBEAT_MS (2000), BIN (target/release/task-mcp).
# Each stream is one descriptor on each side: 10,000 need a hard descriptor limit above 20,000
# for client and server together on one machine (the load tool raises its soft limit).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
streams="${STREAMS:-10000}"
hold="${HOLD:-6s}"
beat="${HEARTBEAT_MS:-2000}"
bin="${BIN:-$repo/target/release/task-mcp}"
load="$repo/target/release/task-mcp-load"
for b in "$bin" "$load"; do
    [ -x "$b" ] || { echo "missing $b: run cargo build --release --bins" >&2; exit 1; }
done
ours_bin=$bin
# shellcheck source=bench-lib.sh source-path=SCRIPTDIR
. "$repo/benches/bench-lib.sh"
port=$(port)

# kind: legacy | mcp-get
for kind in legacy mcp-get; do
    sessions=stateless
    extra=()
    if [ "$kind" = mcp-get ]; then
        sessions=stateful
        extra=(--mcp-get)
    fi
    # One client address holds every stream: the per-address cap is lifted (start_ours already
    # lifts the rate limit).
    start_ours "$port" HEARTBEAT_MS="$beat" MAX_STREAMS=$((streams * 2)) \
        MAX_CONNECTIONS_PER_IP=$((streams * 2)) MCP_SESSIONS="$sessions"
    echo "== $kind: $streams streams, heartbeat $beat ms, held $hold ($(basename "$bin"))"
    taskset -c 0 "$load" streams --url "https://127.0.0.1:$port" --insecure --token "$token" \
        -c "$streams" --hold "$hold" --heartbeat-ms "$beat" --server-pid "$ours_pid" "${extra[@]}"
    kill "$ours_pid"
    wait "$ours_pid" 2>/dev/null || true
done
