#!/usr/bin/env bash
# Re-records every openspec CLI fixture (tests/fixtures/openspec/*.json) from the real CLI, pinned
# in .ci/openspec-cli.sh. Run it after changing a test's input tree or the pinned CLI version, then
# review the fixture diff like code: it is what `cargo test` will hold the engine to.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/openspec-cli.sh
rm -rf tests/fixtures/openspec
mkdir -p tests/fixtures/openspec
TASK_MCP_RECORD_GOLDEN=1 cargo test --locked --features live --test it
echo "recorded $(find tests/fixtures/openspec -name '*.json' | wc -l) fixtures"
