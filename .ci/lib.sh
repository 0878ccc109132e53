# Shared by the .ci/ scripts (sourced, never run): Debian installs, a step runner with pass/fail
# counts, a free loopback port, and the Python venv the monitoring checks read rules with.
# shellcheck shell=bash

# apt_install PKG...: installs Debian packages quietly; fails (status 1) when not root.
apt_install() {
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null; then
        echo "missing $*; install it (Debian packages: $*)" >&2
        return 1
    fi
    echo "installing $* from Debian" >&2
    apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# step NAME CMD...: runs CMD, prints "--- ok" or "--- FAILED", counts into $passed / $failed.
passed=0
failed=0
step() {
    local name=$1
    shift
    echo "=== $name"
    if "$@"; then
        echo "--- ok: $name"
        passed=$((passed + 1))
    else
        echo "--- FAILED: $name"
        failed=$((failed + 1))
    fi
}

# free_port: a TCP port free on 127.0.0.1 right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# monitoring_venv DIR: a venv at DIR with PyYAML and promql-parser (rules and dashboards parsing).
monitoring_venv() {
    local dir=$1
    if [[ ! -x $dir/bin/python ]]; then
        python3 -m venv "$dir" || return 1
    fi
    "$dir/bin/python" -c 'import yaml, promql_parser' 2>/dev/null ||
        "$dir/bin/pip" install -q 'pyyaml==6.0.3' 'promql-parser==0.11.0'
}
