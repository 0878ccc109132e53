#!/usr/bin/env bash
# The live test tier: the same integration tests as `cargo test`, with the outside programs they
# otherwise replay or stand in for run for real (`--features live`):
# - the openspec CLI re-runs every recorded case and fails on a stale fixture
#   (tests/fixtures/openspec/, re-recorded by .ci/record-openspec-golden.sh);
# - redis-server backs the shared rate-limit tests;
# - Python's opentelemetry-proto parses every exported OTLP body;
# - promtool checks the metrics exposition.
# Installs what is missing; a program still missing fails its tests with the install command.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
source .ci/lib.sh

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v promtool >/dev/null || need+=(prometheus)
if ((${#need[@]})); then apt_install "${need[@]}"; fi
bash .ci/openspec-cli.sh
python3 -c 'import opentelemetry.proto' 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check opentelemetry-proto==1.45.2

cargo test --locked --features live
