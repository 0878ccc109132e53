#!/usr/bin/env bash
# The real Prometheus against a real task-mcp: start the server (plain metrics port on, OTLP
# export on towards a closed port), send traffic (probes, an authenticated tool call over JSON and
# over SSE, an unauthenticated request, a status stream, a legacy SSE stream), then
#   1. scrape the metrics port, `promtool check metrics` the scrape, and check that every metric a
#      rule or dashboard of monitoring/ reads is in it (monitoring/scripts/check_monitoring.py);
#   2. run /usr/bin/prometheus with monitoring/'s rule files, scraping the server every second,
#      and query its HTTP API: the target is up, our series are there with the right values,
#      and every recording and alerting rule evaluates without error.
#
#   .ci/prometheus-e2e.sh
#
# Installs what it needs (Debian prometheus, curl, jq, python3-venv; PyYAML and promql-parser in
# a venv under target/). Ends with "prometheus-e2e: N passed, M failed"; non-zero if any failed.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
# shellcheck source=lib.sh source-path=SCRIPTDIR
. .ci/lib.sh
ROOT=$PWD
MON=$ROOT/monitoring
WORK=$ROOT/target/prometheus-e2e
VENV=$ROOT/target/monitoring-check/venv
TOKEN=prometheus-e2e-admin-token-0123456789
rm -rf "$WORK"
mkdir -p "$WORK"

install_tools() {
    local missing=()
    command -v promtool >/dev/null || missing+=(prometheus)
    [[ -x /usr/bin/prometheus ]] || missing+=(prometheus)
    command -v curl >/dev/null || missing+=(curl)
    command -v jq >/dev/null || missing+=(jq)
    command -v python3 >/dev/null || missing+=(python3)
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    if ((${#missing[@]})); then
        apt_install "${missing[@]}" || return 1
    fi
    monitoring_venv "$VENV"
}

# Polls a command (up to $1 seconds) until it succeeds.
eventually() {
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 4; i++)); do
        "$@" && return 0
        sleep 0.25
    done
    "$@"
}

SERVER_PID=
PROM_PID=
cleanup() {
    [[ -n $PROM_PID ]] && kill "$PROM_PID" 2>/dev/null && wait "$PROM_PID" 2>/dev/null
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
}
trap cleanup EXIT

start_server() {
    cargo build --quiet --bin task-mcp || return 1
    PORT=$(free_port)
    METRICS_PORT=$(free_port)
    DEAD_PORT=$(free_port)
    mkdir -p "$WORK/root"
    env -i PATH="$PATH" HOME="$WORK" \
        TASK_MCP_ROOT="$WORK/root" STATE_DIR="$WORK/root/.task-mcp" HOST=127.0.0.1 PORT="$PORT" AUTH_TOKENS="$TOKEN" \
        ENABLE_TEST_TOOLS=true DEBUG_ENDPOINTS=true LOG_FORMAT=json LOG_LEVEL=info \
        ENABLE_PROMETHEUS=true PROMETHEUS_HOST=127.0.0.1 PROMETHEUS_PORT="$METRICS_PORT" \
        OTEL_ENABLED=true OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:$DEAD_PORT/v1/traces" \
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE=1 HEALTH_CHECK_INTERVAL_MS=1000 \
        "$ROOT/target/debug/task-mcp" >"$WORK/server.out" 2>"$WORK/server.log" &
    SERVER_PID=$!
    CA=$WORK/root/.task-mcp/tls-cert.pem
    BASE=https://127.0.0.1:$PORT
    eventually 30 curl -fs -o /dev/null "http://127.0.0.1:$METRICS_PORT/health/live" ||
        { tail -20 "$WORK/server.log"; return 1; }
    eventually 10 test -s "$CA"
}

api() {
    curl -sS --cacert "$CA" -H "Authorization: Bearer $TOKEN" "$@"
}

traffic() {
    local call ok=0
    call='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}'
    api -f -o /dev/null "$BASE/health/ready" || ok=1
    api -f -o /dev/null "$BASE/health/metrics" || ok=1
    api -f -o /dev/null "$BASE/debug/vars" || ok=1
    # A traced tool call: the response continues the caller's trace.
    api -f -D "$WORK/call.headers" -o "$WORK/call.json" -X POST "$BASE/mcp" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' -d "$call" || ok=1
    jq -e '.result' "$WORK/call.json" >/dev/null || { echo "tool call: $(cat "$WORK/call.json")"; ok=1; }
    grep -qi '^traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-' "$WORK/call.headers" ||
        { echo "no traceparent continuing the caller's trace"; ok=1; }
    # The same call answered as an SSE stream.
    api -f -o "$WORK/call.sse" -X POST "$BASE/mcp" -H 'Content-Type: application/json' \
        -H 'Accept: text/event-stream' -d "$call" || ok=1
    grep -q '^data:' "$WORK/call.sse" || { echo "no SSE answer"; ok=1; }
    # Unauthenticated: 401 and an auth failure.
    [[ $(curl -sS --cacert "$CA" -o /dev/null -w '%{http_code}' "$BASE/metrics") == 401 ]] || ok=1
    # Long-lived streams, cut by the client.
    api -o "$WORK/status.sse" --max-time 2 "$BASE/status/stream" 2>/dev/null
    grep -q '^event: stats' "$WORK/status.sse" || { echo "no status stream event"; ok=1; }
    api -o /dev/null --max-time 1 "$BASE/sse" 2>/dev/null
    # The JSON log lines carry the trace of the request they belong to.
    grep -q '"traceId":"4bf92f3577b34da6a3ce929d0e0e4736"' "$WORK/server.log" ||
        { echo "no access log line with the caller's trace id"; ok=1; }
    return $ok
}

scrape() {
    curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" >"$WORK/scrape.prom" &&
        echo "$(grep -vc '^#' "$WORK/scrape.prom") samples scraped"
}

promtool_check_metrics() {
    promtool check metrics <"$WORK/scrape.prom"
}

monitoring_reads_only_exported_metrics() {
    "$VENV/bin/python" "$MON/scripts/check_monitoring.py" "$WORK/scrape.prom" "$MON"
}

start_prometheus() {
    PROM_PORT=$(free_port)
    cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $MON/prometheus/rules/*.yml
scrape_configs:
  - job_name: task-mcp
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ["127.0.0.1:$METRICS_PORT"]
EOF
    promtool check config "$WORK/prometheus.yml" >/dev/null || return 1
    /usr/bin/prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
        --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
    PROM_PID=$!
    eventually 60 curl -fs -o /dev/null "http://127.0.0.1:$PROM_PORT/-/ready" ||
        { tail -20 "$WORK/prometheus.log"; return 1; }
}

# The first value of an instant query, or nothing.
query() {
    curl -fsS "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
        jq -r '.data.result[0].value[1] // empty'
}

# Waits until the query has a value for which the jq test `$2` (on `.`, a number) holds.
expect_query() {
    local q=$1 test=$2
    if eventually 30 bash -c "v=\$(curl -fsS 'http://127.0.0.1:$PROM_PORT/api/v1/query' --data-urlencode 'query=$q' | jq -r '.data.result[0].value[1] // empty'); [[ -n \$v ]] && jq -en \"\$v | tonumber | $test\" >/dev/null"; then
        echo "  $q = $(query "$q")"
    else
        echo "  $q: want a value with $test, got '$(query "$q")'"
        return 1
    fi
}

target_up() {
    expect_query 'up{job="task-mcp"}' '. == 1'
}

series_present() {
    local ok=0
    expect_query 'sum(http_server_requests_total{job="task-mcp"})' '. > 5' || ok=1
    expect_query 'http_server_requests_total{job="task-mcp",route="/mcp",method="POST",status="200"}' '. >= 2' || ok=1
    expect_query 'sum(http_server_request_duration_seconds_count{job="task-mcp"})' '. > 5' || ok=1
    expect_query 'process_resident_memory_bytes{job="task-mcp"}' '. > 1000000' || ok=1
    expect_query 'process_open_fds{job="task-mcp"}' '. > 3' || ok=1
    expect_query 'health_check_status{job="task-mcp",check="workspace"}' '. == 1' || ok=1
    expect_query 'health_check_status{job="task-mcp",check="trace_exporter"}' '. == 0.5' || ok=1
    expect_query 'count(health_check_status{job="task-mcp"})' '. == 5' || ok=1
    expect_query 'tool_executions_total{job="task-mcp",tool="echo",status="ok"}' '. >= 2' || ok=1
    expect_query 'sum(tool_active_executions{job="task-mcp"})' '. == 0' || ok=1
    expect_query 'auth_attempts_total{job="task-mcp",result="missing"}' '. >= 1' || ok=1
    expect_query 'sum(streaming_messages_total{job="task-mcp"})' '. >= 1' || ok=1
    expect_query 'trace_exporter_breaker_state{job="task-mcp"}' '. == 1' || ok=1
    expect_query 'trace_spans_dropped_total{job="task-mcp"}' '. > 0' || ok=1
    return $ok
}

rules_evaluated() {
    curl -fs "http://127.0.0.1:$PROM_PORT/api/v1/rules" |
        jq -e '[.data.groups[].rules[]] | length > 0 and all(.health != "unknown")' >/dev/null
}

rules_evaluate() {
    local doc bad n
    # Every group evaluates at least once on real data.
    eventually 30 rules_evaluated || { echo "some rules never evaluated"; return 1; }
    doc=$(curl -fsS "http://127.0.0.1:$PROM_PORT/api/v1/rules") || return 1
    n=$(jq '[.data.groups[].rules[]] | length' <<<"$doc")
    bad=$(jq -r '.data.groups[].rules[] | select(.health != "ok") | "\(.name): \(.health) \(.lastError // "")"' <<<"$doc")
    if [[ -n $bad ]]; then
        echo "$bad"
        return 1
    fi
    echo "  $n rules evaluate cleanly"
    # Recording rules yield values from the real series once two scrapes are in.
    expect_query 'task_mcp:http_requests:rate5m' '. >= 0' &&
        expect_query 'task_mcp:process_memory:ratio' '. > 0 and . < 1'
}

if ! install_tools; then
    echo "could not install the tools"
    echo "prometheus-e2e: 0 passed, 1 failed"
    exit 1
fi

step "start task-mcp with the metrics port" start_server
if [[ -z $SERVER_PID ]] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "prometheus-e2e: $passed passed, $((failed + 1)) failed"
    exit 1
fi
step "traffic: probes, tool calls (JSON, SSE), 401, streams, trace in logs" traffic
step "scrape the plain metrics port" scrape
step "promtool check metrics on the real scrape" promtool_check_metrics
step "every metric monitoring/ reads is in the real scrape" monitoring_reads_only_exported_metrics
step "start Prometheus with monitoring/'s rules" start_prometheus
step "Prometheus scrapes the server (up == 1)" target_up
step "our series through the Prometheus API" series_present
step "every recording and alerting rule evaluates" rules_evaluate

echo "prometheus-e2e: $passed passed, $failed failed"
((failed == 0))
