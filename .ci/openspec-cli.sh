#!/usr/bin/env bash
# Installs the OpenSpec CLI whose behaviour the engine matches byte for byte; the CLI-comparison
# tests (tests/it/openspec_cli.rs) fail when it is missing.
set -euo pipefail
want="1.13.2"
if command -v openspec >/dev/null 2>&1 && [ "$(openspec --version 2>/dev/null)" = "$want" ]; then
  exit 0
fi
npm install -g "@fission-ai/openspec@${want}"
openspec --version
