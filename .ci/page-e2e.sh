#!/usr/bin/env bash
# End-to-end test of the status page (src/page) in headless Chromium.
#
# Against a server that is already running (this script then starts nothing):
#   TASK_MCP_URL=https://127.0.0.1:8443 TASK_MCP_TOKEN=... [TASK_MCP_CA=cert.pem] .ci/page-e2e.sh
#   The server needs ENABLE_TEST_TOOLS=true (the test calls `echo` and `slow`) and at least one
#   active change under its openspec/changes/.
# Otherwise it builds and starts the real server on 127.0.0.1:${PAGE_E2E_PORT:-18443} with a
# throwaway OpenSpec tree and a random token, and stops it at the end.
#   .ci/page-e2e.sh --mock   runs against tests/e2e/mock-server.mjs instead (development only).
#
# Needs node >= 18 and npm; installs Chromium from Debian (`chromium`) when it is missing.
# Screenshots land in tests/e2e/artifacts/.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
e2e="$repo/tests/e2e"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
port="${PAGE_E2E_PORT:-18443}"
ready_timeout_s="${PAGE_E2E_READY_TIMEOUT_S:-120}"
mode=real
if [[ "${1:-}" == "--mock" ]]; then mode=mock; fi
if [[ -n "${TASK_MCP_URL:-}" && -n "${TASK_MCP_TOKEN:-}" ]]; then mode=external; fi

log() { printf 'page-e2e: %s\n' "$*" >&2; }

# --- tools -----------------------------------------------------------------------------------
if [[ ! -x "$CHROMIUM" ]]; then
  if [[ "$(id -u)" -eq 0 ]]; then
    log "installing chromium from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    log "no Chromium at $CHROMIUM; install the Debian package 'chromium' or set CHROMIUM"
    exit 1
  fi
fi
command -v node >/dev/null || { log "node is required"; exit 1; }
(cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)

# --- server ----------------------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/page-e2e.XXXXXX")"
server_pid=""
cleanup() {
  local rc=$?
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -f "$work/server.log" ]]; then
    log "server log (last 40 lines):"
    tail -n 40 "$work/server.log" >&2 || true
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A small OpenSpec tree: two active changes with some tasks done, one archived.
make_openspec_tree() {
  local root="$1"
  mkdir -p "$root/openspec/specs/status-page" "$root/openspec/changes/archive"
  printf '# Project\n\nA repository for the page end-to-end test.\n' >"$root/openspec/project.md"
  printf '# status-page Specification\n\n## Purpose\nShow live server state.\n\n## Requirements\n### Requirement: Live numbers\nThe page SHALL show the request rate.\n\n#### Scenario: Traffic\n- **WHEN** requests arrive\n- **THEN** the total grows\n' \
    >"$root/openspec/specs/status-page/spec.md"
  local slug
  for slug in add-status-page harden-sse-framing; do
    mkdir -p "$root/openspec/changes/$slug/specs/status-page"
    printf '## Why\nThe %s change for the e2e test.\n\n## What Changes\n- Something useful.\n\n## Impact\n- Affected specs: status-page\n' "$slug" \
      >"$root/openspec/changes/$slug/proposal.md"
    printf '## ADDED Requirements\n### Requirement: %s\nThe server SHALL do %s.\n\n#### Scenario: It works\n- **WHEN** asked\n- **THEN** it works\n' "$slug" "$slug" \
      >"$root/openspec/changes/$slug/specs/status-page/spec.md"
  done
  printf '## 1. Implementation\n- [x] 1.1 Embed the page\n- [x] 1.2 Serve it with a CSP\n- [ ] 1.3 Stream statistics\n- [ ] 1.4 Test it in Chromium\n' \
    >"$root/openspec/changes/add-status-page/tasks.md"
  printf '## 1. Framing\n- [x] 1.1 CRLF\n- [ ] 1.2 Comments\n- [ ] 1.3 Split chunks\n' \
    >"$root/openspec/changes/harden-sse-framing/tasks.md"
}

wait_live() {
  local url="$1" deadline=$((SECONDS + ready_timeout_s))
  until curl -fsk --max-time 2 -o /dev/null "$url/health/live"; do
    if [[ -n "$server_pid" ]] && ! kill -0 "$server_pid" 2>/dev/null; then
      log "the server exited before it was live"
      return 1
    fi
    if ((SECONDS > deadline)); then
      log "no answer from $url/health/live after ${ready_timeout_s}s"
      return 1
    fi
    sleep 0.3
  done
}

case "$mode" in
  external)
    log "testing the running server at $TASK_MCP_URL"
    if [[ -n "${TASK_MCP_CA:-}" ]]; then export NODE_EXTRA_CA_CERTS="$TASK_MCP_CA"; fi
    ;;
  mock)
    port_free "$port" || { log "port $port is busy; set PAGE_E2E_PORT"; exit 1; }
    token="mock-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    MOCK_PORT="$port" MOCK_TOKEN="$token" node "$e2e/mock-server.mjs" >"$work/server.log" 2>&1 &
    server_pid=$!
    export TASK_MCP_URL="http://127.0.0.1:$port" TASK_MCP_TOKEN="$token"
    wait_live "$TASK_MCP_URL"
    log "mock server at $TASK_MCP_URL"
    ;;
  real)
    port_free "$port" || { log "port $port is busy; set PAGE_E2E_PORT"; exit 1; }
    log "building the server (release)"
    (cd "$repo" && cargo build --release --quiet)
    make_openspec_tree "$work/repo"
    token="e2e-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    # HEARTBEAT_MS is short so that a tool call of a second or two shows frames as it runs.
    (cd "$work/repo" && exec env HOST=127.0.0.1 PORT="$port" TASK_MCP_ROOT="$work/repo" \
      AUTH_TOKENS="$token" ENABLE_TEST_TOOLS=true HEARTBEAT_MS=250 \
      "$repo/target/release/task-mcp" serve) >"$work/server.log" 2>&1 &
    server_pid=$!
    export TASK_MCP_URL="https://127.0.0.1:$port" TASK_MCP_TOKEN="$token"
    wait_live "$TASK_MCP_URL"
    log "real server at $TASK_MCP_URL (pid $server_pid)"
    ;;
esac

# --- test ------------------------------------------------------------------------------------
cd "$e2e"
node --test --test-concurrency=1 parsers.test.mjs page.test.mjs
