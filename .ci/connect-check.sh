#!/usr/bin/env bash
# `task-mcp connect` recipes against the real clients that run offline, exactly as printed:
# - a server started with no configuration in an empty folder leaves the folder empty;
# - claude-desktop: the printed mcp-remote command and environment, driven over stdio like
#   Claude Desktop does (initialize, tools/list, tools/call);
# - inspector: the printed command line (the Inspector's --cli mode), run verbatim;
# - curl: the three printed commands, run verbatim (initialize, tools/list, tools/call);
# - claude-code, vscode, cursor and messages-api: parsed (those clients need an account or a UI).
# npm packages are the versions src/connect.rs pins, installed into target/ci-artifacts/connect.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$repo/.ci/lib.sh"
cd "$repo"
work="${CARGO_TARGET_DIR:-$repo/target}/ci-artifacts/connect"
rm -rf "${work:?}/root" "${work:?}/home"
mkdir -p "$work/root" "$work/home" "$work/npm"
command -v jq >/dev/null || apt_install jq
command -v curl >/dev/null || apt_install curl

pin() { sed -n "s/^pub const $1: &str = \"\(.*\)\";/\1/p" src/connect.rs; }
remote=$(pin MCP_REMOTE)
inspector=$(pin INSPECTOR)
if [ -z "$remote" ] || [ -z "$inspector" ]; then
    echo "pins not found in src/connect.rs" >&2
    exit 1
fi
(cd "$work/npm" && [ -f package.json ] || echo '{"private":true}' >package.json)
(cd "$work/npm" && npm install --no-audit --no-fund --loglevel=error "$remote" "$inspector" >/dev/null)
export PATH="$work/npm/node_modules/.bin:$PATH"

cargo build --locked -q --bin task-mcp
bin="$repo/target/debug/task-mcp"
port=$(free_port)
envs=(env -i PATH="$PATH" HOME="$work/home" TASK_MCP_ROOT="$work/root" PORT="$port")
"${envs[@]}" "$bin" serve >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q "connect a client" "$work/server.log" && break; sleep 0.1; done
grep -q "connect a client: task-mcp connect" "$work/server.log" || { cat "$work/server.log"; exit 1; }

step "first run leaves the folder empty" test -z "$(ls -A "$work/root")"
connect() { "${envs[@]}" "$bin" connect "$@"; }

desktop() { connect claude-desktop --json --show-token | (cd "$work/npm" && python3 "$repo/tests/connect/mcp_remote_stdio.py"); }
step "claude-desktop: mcp-remote over stdio" desktop

inspect() {
    local cmd out
    cmd=$(connect inspector --json | jq -r .command) || return 1
    out=$(cd "$work/npm" && bash -c "$cmd") || return 1
    jq -e '.tools | map(.name) | index("change_open") != null' <<<"$out" >/dev/null
}
step "inspector --cli, verbatim" inspect

curls() {
    local cmd i=0
    while IFS= read -r -d '' cmd; do
        i=$((i + 1))
        bash -c "$cmd" | grep -q '"result"' || { echo "curl command $i got no result" >&2; return 1; }
    done < <(connect curl --json | jq -j '.commands[] + "\u0000"')
    [ "$i" -eq 3 ]
}
step "curl recipe, verbatim" curls

parsed() {
    local url="https://127.0.0.1:$port/mcp" all
    all=$(connect --json)
    jq -e --arg u "$url" '.clients.vscode.config.servers["task-mcp"] | .url == $u and .type == "http" and (.headers.Authorization | startswith("Bearer "))' <<<"$all" >/dev/null &&
    jq -e --arg u "$url" '.clients.cursor.config.mcpServers["task-mcp"] | .url == $u and (.headers.Authorization | startswith("Bearer "))' <<<"$all" >/dev/null &&
    jq -e --arg u "$url" '.clients["claude-code"].command | contains("--transport http task-mcp " + $u)' <<<"$all" >/dev/null &&
    jq -e '.clients["messages-api"].body.mcp_servers[0] | .type == "url" and .name == "task-mcp"' <<<"$all" >/dev/null
}
step "claude-code, vscode, cursor, messages-api parse" parsed
unknown() {
    local rc=0
    connect emacs 2>/dev/null || rc=$?
    [ "$rc" -eq 2 ]
}
step "an unknown client exits 2" unknown

echo "connect-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
