#!/usr/bin/env bash
# Isolation benchmark (issue 7): what a dead or silent OTLP collector, or another client being
# rate-limited, costs a well-behaved client. The server is pinned to one core, the clients to the
# other, 32 keep-alive TLS connections of MCP `ping` (or MODE=call for an echo tools/call).
#
#   cargo build --release --bins && benches/isolation.sh        # ~2 minutes
#   DURATION=20s MODE=call benches/isolation.sh
#
# Prints one markdown table: req/s, p50/p99 of the well-behaved client per scenario, and its
# change against the baseline that has the same limiter settings.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/task-mcp
load=target/release/task-mcp-load
[[ -x $bin && -x $load ]] || { echo "build first: cargo build --release --bins" >&2; exit 1; }
duration="${DURATION:-10s}"
mode="${MODE:-ping}"
server_cpu="${SERVER_CPU:-1}"
client_cpu="${CLIENT_CPU:-0}"
port="${PORT:-18443}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

good_token="good-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
noisy_token="noisy-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat >"$work/tokens.json" <<EOF
[{"name":"good","sha256":"$(printf '%s' "$good_token" | $bin hash-token)","role":"writer"},
 {"name":"noisy","sha256":"$(printf '%s' "$noisy_token" | $bin hash-token)","role":"writer","rateLimit":60}]
EOF

# A collector that accepts connections and never answers (a hung collector).
python3 - "$work/silent.port" <<'EOF' &
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1024)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
held = []
while True:
    c, _ = s.accept(); held.append(c)
EOF
pids+=($!)
for _ in $(seq 50); do [[ -s $work/silent.port ]] && break; sleep 0.1; done
silent_port="$(cat "$work/silent.port")"

# start_server NAME [VAR=value...]: a fresh root, the server pinned, waits until it answers.
start_server() {
  local name="$1"; shift
  mkdir -p "$work/$name"
  env -i PATH="$PATH" PORT="$port" TASK_MCP_ROOT="$work/$name" AUTH_TOKENS_FILE="$work/tokens.json" \
    ENABLE_TEST_TOOLS=true LOG_LEVEL=warn "$@" \
    taskset -c "$server_cpu" "$bin" serve >"$work/$name.log" 2>&1 &
  server=$!
  pids+=("$server")
  for _ in $(seq 100); do
    if $bin healthcheck "https://127.0.0.1:$port/health/live" >/dev/null 2>&1 \
      || curl -skf "https://127.0.0.1:$port/health/live" >/dev/null 2>&1; then
      return
    fi
    sleep 0.05
  done
  echo "server $name did not start" >&2; cat "$work/$name.log" >&2; exit 1
}
stop_server() { kill "$server"; wait "$server" 2>/dev/null || true; }

# run_good NAME: the well-behaved client; prints its JSON report to $work/NAME.json.
run_good() {
  local args=("$mode" --url "https://127.0.0.1:$port" --ca "$work/$1/.task-mcp/tls-cert.pem"
    --token "$good_token" -c 32 --warmup 2s -d "$duration" --json)
  taskset -c "$client_cpu" "$load" "${args[@]}" >"$work/$1.json" || true
}
# run_noisy NAME: a second client hammering with the rate-limited token, 8 connections.
run_noisy() {
  taskset -c "$client_cpu" "$load" ping --url "https://127.0.0.1:$port" \
    --ca "$work/$1/.task-mcp/tls-cert.pem" --token "$noisy_token" -c 8 -d "$duration" \
    --warmup 2s --json >"$work/$1.noisy.json" || true
}

high=6000000 # per minute (and as burst): the limiter runs on every request, never refuses the good client
scenario() {
  local name="$1" noisy="$2"; shift 2
  start_server "$name" "$@"
  if [[ $noisy == yes ]]; then
    run_noisy "$name" &
    local np=$!
    run_good "$name"
    wait "$np" || true
  else
    run_good "$name"
  fi
  stop_server
}

scenario no-limiter no RATE_LIMIT=0
scenario limiter no RATE_LIMIT=$high RATE_LIMIT_BURST=$high
scenario dead-collector no RATE_LIMIT=$high RATE_LIMIT_BURST=$high OTEL_ENABLED=true \
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:9/v1/traces OTEL_TRACES_SAMPLER_ARG=1.0
scenario silent-collector no RATE_LIMIT=$high RATE_LIMIT_BURST=$high OTEL_ENABLED=true \
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:$silent_port/v1/traces" OTEL_TRACES_SAMPLER_ARG=1.0
scenario noisy-neighbour yes RATE_LIMIT=$high RATE_LIMIT_BURST=$high

python3 - "$work" "$mode" "$duration" <<'EOF'
import json, sys, os
work, mode, duration = sys.argv[1:]
def load(name):
    with open(os.path.join(work, name + ".json")) as f:
        return json.load(f)
rows = ["no-limiter", "limiter", "dead-collector", "silent-collector", "noisy-neighbour"]
data = {r: load(r) for r in rows}
def rps(d): return d.get("requests_per_second") or d.get("rps") or 0.0
def lat(d, k): return (d.get("latency_ms") or {}).get(k, float("nan"))
base = rps(data["limiter"])
print(f"| scenario ({mode}, 32 connections, {duration}) | req/s | p50 ms | p99 ms | failed (kinds) | vs limiter baseline |")
print("|---|---|---|---|---|---|")
for r in rows:
    d = data[r]
    change = "" if r in ("no-limiter", "limiter") else f"{(rps(d) / base - 1) * 100:+.1f} %"
    print(f"| {r} | {rps(d):,.0f} | {lat(d, 'p50'):.2f} | {lat(d, 'p99'):.2f} | {d.get('failed', '?')} {d.get('errors') or ''} | {change} |")
n = os.path.join(work, "noisy-neighbour.noisy.json")
if os.path.exists(n):
    d = json.load(open(n))
    print(f"\nnoisy neighbour (8 connections, token limited to 60/min): {d.get('requests', '?')} answered, "
          f"errors {d.get('errors')}")
EOF
