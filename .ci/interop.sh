#!/usr/bin/env bash
# Interop against the real MCP SDK clients, over TLS with a bearer token:
#   the TypeScript SDK v1 (npm @modelcontextprotocol/sdk, Streamable HTTP and HTTP+SSE),
#   the Python SDK 1.x (PyPI mcp, Streamable HTTP and HTTP+SSE),
#   the Python SDK 2.x in its default mode="auto" (server/discover probe, then fallback).
# Each client initializes, lists tools, calls `echo` and `slow` (with progress), lists and reads
# resources, expects -32602 for an unknown tool, pings and closes; the TS client also cancels two
# `slow` calls (SSE and JSON answers) and the Python 2.x client abandons one after a timeout, and
# nothing may arrive for a cancelled request. Any failed step, transport error, SDK warning or
# stray stderr output fails the run, and so does a 5xx or error record in the server log.
#
# By default the script builds the server (cargo build --locked), starts it twice on a free
# loopback port with a throwaway TASK_MCP_ROOT, a random token and ENABLE_TEST_TOOLS=true (once
# stateless, the default, and once with MCP_SESSIONS=stateful, where clients open the GET stream
# and DELETE their session), trusts the self-signed certificate the server writes into
# $TASK_MCP_ROOT/.task-mcp/ as the CA, runs every client, and stops the server.
# TASK_MCP_BIN=path/to/task-mcp tests that binary instead (e.g. a release build) without building.
#
# Against a server that is already running instead (nothing is started):
#   MCP_URL       the Streamable HTTP endpoint, e.g. https://127.0.0.1:8443/mcp
#   MCP_SSE_URL   the legacy SSE endpoint (default: MCP_URL with /mcp replaced by /sse)
#   MCP_TOKEN     a bearer token
#   MCP_CA        PEM file to verify the server certificate against; MCP_INSECURE=1 skips checks
#   MCP_TOOL / MCP_TOOL_ARGS   the tool to call (default: echo when listed, else a read-only one)
#
# Clients are installed idempotently into tests/interop/ (node_modules from package-lock.json,
# .venv-v1 and .venv-v2 from the exactly pinned requirements files); MCP_INTEROP_SKIP_INSTALL=1
# reuses them as they are. Server and client logs: target/ci-artifacts/interop/.
# Exit status: 0 only when every client passed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$repo/.ci/lib.sh"
dir="$repo/tests/interop"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
artifacts="$target_dir/ci-artifacts/interop"
client_timeout_s="${MCP_INTEROP_CLIENT_TIMEOUT_S:-90}"
ready_timeout_s="${MCP_INTEROP_READY_TIMEOUT_S:-30}"  # read by server_start (lib.sh)
started_s=$SECONDS

log() { printf 'interop: %s\n' "$*" >&2; }

# --- tools -----------------------------------------------------------------------------------

# Records the hash of an input file next to what it installed, so a re-run skips the install.
stamp_ok() { [[ -f "$2" && "$(sha256sum <"$1")" == "$(cat "$2")" ]]; }
stamp_write() { sha256sum <"$1" >"$2"; }

install_clients() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_install nodejs npm; fi
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  if ((major < 18)); then log "node >= 18 is required (found $(node --version))"; exit 1; fi
  python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv python3-pip

  if ! stamp_ok "$dir/package-lock.json" "$dir/node_modules/.interop-stamp"; then
    log "installing the TypeScript SDK (npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    stamp_write "$dir/package-lock.json" "$dir/node_modules/.interop-stamp"
  fi
  local v
  for v in v1 v2; do
    if ! stamp_ok "$dir/requirements-$v.txt" "$dir/.venv-$v/.interop-stamp"; then
      log "installing the Python SDK $v (pip)"
      [[ -x "$dir/.venv-$v/bin/python" ]] || python3 -m venv "$dir/.venv-$v"
      "$dir/.venv-$v/bin/pip" install -q --disable-pip-version-check -r "$dir/requirements-$v.txt"
      stamp_write "$dir/requirements-$v.txt" "$dir/.venv-$v/.interop-stamp"
    fi
  done
}

# --- server ----------------------------------------------------------------------------------
work=""

cleanup() {
  local rc=$?
  server_stop
  if [[ -n "$work" ]]; then rm -rf "$work"; fi
  exit $rc
}
trap cleanup EXIT

# start_server NAME [VAR=value...]: a fresh root and server; sets MCP_URL, MCP_CA.
start_server() {
  local name="$1"; shift
  local root="$work/$name"
  local log_file="$artifacts/server-$name.log"
  mkdir -p "$root/openspec/specs" "$root/openspec/changes/archive"
  printf '# Project\n\nInterop test repository.\n' >"$root/openspec/project.md"
  # One active change, for the clients' slug completion.
  mkdir -p "$root/openspec/changes/add-interop"
  printf '# Change: Interop\n\n## Why\nA change for completions.\n' >"$root/openspec/changes/add-interop/proposal.md"
  cd "$root"
  server_start "$name" "$bin" "$log_file" TASK_MCP_ROOT="$root" STATE_DIR="$root/.task-mcp" \
    AUTH_TOKENS="interop:$token" ENABLE_TEST_TOOLS=true "$@" || exit 1
  cd "$repo"
  local port=$server_port
  export MCP_URL="https://127.0.0.1:$port/mcp" MCP_SSE_URL="https://127.0.0.1:$port/sse"
  export MCP_CA="$root/.task-mcp/tls-cert.pem"
  log "$name server on $MCP_URL (pid $server_pid)"
}

# A server-side fault seen by no client is still a fault: 5xx answers or error records fail.
check_server_log() {
  local name="$1"
  local log_file="$artifacts/server-$name.log"
  if grep -E '"status":5[0-9][0-9]|"level":"error"' "$log_file" >&2; then
    log "the $name server logged errors (above)"
    failed+=("server $name log")
  fi
}

# --- clients ---------------------------------------------------------------------------------
failed=()
passed=()

# run NAME CMD...: a pass needs exit status 0 and an empty stderr (SDKs print warnings there).
run() {
  local name="$1"; shift
  local out="$artifacts/client-${name//[^A-Za-z0-9]/_}"
  local t0=$SECONDS rc=0
  echo "=== $name"
  timeout "$client_timeout_s" "$@" >"$out.stdout" 2>"$out.stderr" || rc=$?
  cat "$out.stdout"
  if [[ -s "$out.stderr" ]]; then
    sed 's/^/  stderr: /' "$out.stderr"
    ((rc != 0)) || rc=1
  fi
  if ((rc == 0)); then
    echo "--- $name: pass ($((SECONDS - t0)) s)"
    passed+=("$name")
  else
    echo "--- $name: FAIL (status $rc)"
    failed+=("$name")
  fi
}

run_clients() {
  local label="$1" node_env=()
  if [[ -n "${MCP_CA:-}" ]]; then
    node_env+=("NODE_EXTRA_CA_CERTS=$MCP_CA")
  elif [[ "${MCP_INSECURE:-0}" == 1 ]]; then
    node_env+=("NODE_TLS_REJECT_UNAUTHORIZED=0")
  fi
  cd "$dir"
  run "$label ts-v1 streamable-http" env "${node_env[@]}" node ts_client.mjs http
  run "$label ts-v1 http+sse" env "${node_env[@]}" node ts_client.mjs sse
  run "$label py-v1 streamable-http" .venv-v1/bin/python py_client_v1.py http
  run "$label py-v1 http+sse" .venv-v1/bin/python py_client_v1.py sse
  run "$label py-v2 auto (discover probe, fallback)" .venv-v2/bin/python py_client_v2.py
  cd "$repo"
}

# --- main ------------------------------------------------------------------------------------
rm -rf "$artifacts"
mkdir -p "$artifacts"
if [[ "${MCP_INTEROP_SKIP_INSTALL:-0}" != 1 ]]; then install_clients; fi

if [[ -n "${MCP_URL:-}" ]]; then
  : "${MCP_TOKEN:?set MCP_TOKEN with MCP_URL}"
  export MCP_URL MCP_TOKEN
  [[ -z "${MCP_CA:-}" ]] || export MCP_CA
  [[ "${MCP_INSECURE:-0}" != 1 ]] || export MCP_INSECURE
  log "testing the running server at $MCP_URL"
  run_clients external
else
  bin="${TASK_MCP_BIN:-}"
  if [[ -z "$bin" ]]; then
    log "building the server (cargo build --locked)"
    (cd "$repo" && cargo build --locked --quiet)
    bin="$target_dir/debug/task-mcp"
  fi
  work="$(mktemp -d "${TMPDIR:-/tmp}/interop.XXXXXX")"
  token="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  export MCP_TOKEN="$token"
  unset MCP_INSECURE MCP_TOOL MCP_TOOL_ARGS

  start_server stateless HEARTBEAT_MS=100
  run_clients stateless
  server_stop
  check_server_log stateless

  start_server stateful MCP_SESSIONS=stateful
  run_clients stateful
  server_stop
  check_server_log stateful
fi

echo
echo "interop: ${#passed[@]} passed, ${#failed[@]} failed in $((SECONDS - started_s)) s; logs in $artifacts"
if ((${#failed[@]})); then
  printf 'interop FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "interop: all clients passed"
