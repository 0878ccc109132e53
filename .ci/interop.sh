#!/usr/bin/env bash
# Interop against real MCP clients: the TypeScript SDK v1 (Streamable HTTP and HTTP+SSE), the
# Python SDK 1.x (both transports) and the Python SDK 2.x (default mode="auto": server/discover
# probe, then fallback to initialize).
#
# Needs a running server:
#   MCP_URL       the Streamable HTTP endpoint, e.g. https://127.0.0.1:8443/mcp
#   MCP_SSE_URL   the legacy SSE endpoint (default: MCP_URL with /mcp replaced by /sse)
#   MCP_TOKEN     a bearer token
#   MCP_CA        PEM file to verify the server certificate against (recommended for self-signed)
#   MCP_INSECURE  1 = skip TLS verification (when no MCP_CA)
#   MCP_TOOL / MCP_TOOL_ARGS   the tool to call (default: echo when listed, else a read-only one)
#   MCP_INTEROP_SKIP_INSTALL   1 = reuse installed clients
# Installs into tests/interop/ (node_modules, .venv-v1, .venv-v2). Exit status: 0 when all pass.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
dir="$here/tests/interop"
: "${MCP_URL:?set MCP_URL}" "${MCP_TOKEN:?set MCP_TOKEN}"
export MCP_URL MCP_TOKEN

if [[ "${MCP_INTEROP_SKIP_INSTALL:-0}" != 1 ]]; then
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
  for v in v1 v2; do
    [[ -x "$dir/.venv-$v/bin/python" ]] || python3 -m venv "$dir/.venv-$v"
    "$dir/.venv-$v/bin/pip" install -q --disable-pip-version-check -r "$dir/requirements-$v.txt"
  done
fi

node_env=()
if [[ -n "${MCP_CA:-}" ]]; then
  node_env+=("NODE_EXTRA_CA_CERTS=$MCP_CA")
  export MCP_CA
elif [[ "${MCP_INSECURE:-0}" == 1 ]]; then
  node_env+=("NODE_TLS_REJECT_UNAUTHORIZED=0")
  export MCP_INSECURE=1
fi

failed=()
run() {
  local name="$1"; shift
  echo "=== $name"
  if timeout 120 "$@"; then
    echo "--- $name: pass"
  else
    echo "--- $name: FAIL"
    failed+=("$name")
  fi
}

cd "$dir"
run "ts-v1 streamable-http" env "${node_env[@]}" node ts_client.mjs http
run "ts-v1 http+sse"        env "${node_env[@]}" node ts_client.mjs sse
run "py-v1 streamable-http" .venv-v1/bin/python py_client_v1.py http
run "py-v1 http+sse"        .venv-v1/bin/python py_client_v1.py sse
run "py-v2 auto (discover)" .venv-v2/bin/python py_client_v2.py

if ((${#failed[@]})); then
  echo "interop FAILED: ${failed[*]}"
  exit 1
fi
echo "interop: all clients passed"
