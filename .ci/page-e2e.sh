#!/usr/bin/env bash
# End-to-end test of the status page (src/page) in headless Chromium (Debian `chromium`, driven by
# playwright-core).
#
# By default it builds the real server (cargo build --locked), starts it on a free loopback port
# with a throwaway OpenSpec tree (two active changes), a random token, ENABLE_TEST_TOOLS=true (the
# test calls `echo` and `slow`) and a short HEARTBEAT_MS, runs the test and stops the server.
# TASK_MCP_BIN=path/to/task-mcp tests that binary instead (e.g. a release build) without building.
# Against a server that is already running instead (then nothing is started):
#   TASK_MCP_URL=https://127.0.0.1:8443 TASK_MCP_TOKEN=... .ci/page-e2e.sh
#   The server needs ENABLE_TEST_TOOLS=true and at least one active change under openspec/changes/.
#
# Installs what it needs when missing (Debian chromium, nodejs/npm; playwright-core pinned in
# tests/e2e/package-lock.json). Screenshots and the server log: target/ci-artifacts/page-e2e/.
# Exit status: 0 only when every test passed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$repo/.ci/lib.sh"
e2e="$repo/tests/e2e"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
artifacts="$target_dir/ci-artifacts/page-e2e"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
ready_timeout_s="${PAGE_E2E_READY_TIMEOUT_S:-30}"
started_s=$SECONDS
mode=real
if [[ -n "${TASK_MCP_URL:-}" && -n "${TASK_MCP_TOKEN:-}" ]]; then mode=external; fi

log() { printf 'page-e2e: %s\n' "$*" >&2; }

# --- tools -----------------------------------------------------------------------------------

[[ -x "$CHROMIUM" ]] || apt_install chromium
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_install nodejs npm; fi
# playwright-core 1.65 needs node 20 (Debian 12's own nodejs is 18; NodeSource's 20 works).
if (($(node -p 'process.versions.node.split(".")[0]') < 20)); then
  log "node >= 20 is required by playwright-core (found $(node --version))"
  exit 1
fi
# npm ci only when package-lock.json changed since the last install (idempotent and quick).
stamp="$e2e/node_modules/.page-e2e-stamp"
if [[ ! -f "$stamp" || "$(sha256sum <"$e2e/package-lock.json")" != "$(cat "$stamp")" ]]; then
  (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
  sha256sum <"$e2e/package-lock.json" >"$stamp"
fi

# --- server ----------------------------------------------------------------------------------
rm -rf "$artifacts"
mkdir -p "$artifacts"
export ARTIFACTS="$artifacts"
server_log="$artifacts/server.log"
work="$(mktemp -d "${TMPDIR:-/tmp}/page-e2e.XXXXXX")"
server_pid=""
cleanup() {
  local rc=$?
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -s "$server_log" ]]; then
    log "server log (last 40 lines; all of it in $server_log):"
    tail -n 40 "$server_log" >&2 || true
  fi
  rm -rf "$work"
  log "finished with status $rc in $((SECONDS - started_s)) s; artifacts in $artifacts"
  exit $rc
}
trap cleanup EXIT

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

# wait_for_line REGEX: waits until the server log has a line matching REGEX; prints the match.
wait_for_line() {
  local deadline=$((SECONDS + ready_timeout_s)) found
  until found="$(grep -o -m1 -E "$1" "$server_log")"; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      log "the server exited before it was ready"
      return 1
    fi
    if ((SECONDS > deadline)); then
      log "the server was not ready after ${ready_timeout_s}s"
      return 1
    fi
    sleep 0.1
  done
  printf '%s\n' "$found"
}

case "$mode" in
  external)
    log "testing the running server at $TASK_MCP_URL"
    ;;
  real)
    bin="${TASK_MCP_BIN:-}"
    if [[ -z "$bin" ]]; then
      log "building the server (cargo build --locked)"
      (cd "$repo" && cargo build --locked --quiet)
      bin="$target_dir/debug/task-mcp"
    fi
    make_openspec_tree "$work/repo"
    token="e2e-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    # HEARTBEAT_MS is short so that a tool call of a second or two shows frames as it runs.
    (cd "$work/repo" && exec env HOST=127.0.0.1 PORT=0 TASK_MCP_ROOT="$work/repo" \
      AUTH_TOKENS="e2e:$token" ENABLE_TEST_TOOLS=true HEARTBEAT_MS=250 \
      "$bin" serve) >"$server_log" 2>&1 &
    server_pid=$!
    url="$(wait_for_line 'listening on https://127\.0\.0\.1:[0-9]+' | cut -d' ' -f3)"
    export TASK_MCP_URL="$url" TASK_MCP_TOKEN="$token" E2E_OPENSPEC_ROOT="$work/repo"
    log "real server at $TASK_MCP_URL (pid $server_pid)"
    ;;
esac

# --- test ------------------------------------------------------------------------------------
cd "$e2e"
node --test --test-concurrency=1 parsers.test.mjs page.test.mjs
if [[ "$mode" == real ]] && grep -E '"status":5[0-9][0-9]|"level":"error"' "$server_log" >&2; then
  log "the server logged errors (above)"
  exit 1
fi
