#!/usr/bin/env bash
# Fuzz smoke: builds every cargo-fuzz target and runs each from its hand-made seeds for a bounded
# time; any crash, leak or failed property fails the step. Works with only the stable toolchain:
# RUSTC_BOOTSTRAP=1 lets stable rustc take the -Z flags cargo-fuzz passes (sanitizer, coverage).
#
#   .ci/fuzz-smoke.sh              # every target, FUZZ_SECONDS (default 15) each
#   FUZZ_SECONDS=60 .ci/fuzz-smoke.sh chunked_body
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-15}"
# The machine's default toolchain unless FUZZ_TOOLCHAIN names another (CI machines have one
# toolchain and cannot fetch more).
plus=()
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then plus=("+$FUZZ_TOOLCHAIN"); fi
export RUSTC_BOOTSTRAP=1

if ! cargo "${plus[@]}" fuzz --version >/dev/null 2>&1; then
    cargo "${plus[@]}" install cargo-fuzz --locked
fi
# libFuzzer is C++: cargo-fuzz builds it with the system C++ compiler.
if ! command -v c++ >/dev/null; then
    apt-get update && apt-get install -y --no-install-recommends g++
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cd fuzz && cargo "${plus[@]}" fuzz list)
fi

cd fuzz
cargo "${plus[@]}" fuzz build
start=$(date +%s)
for t in "${targets[@]}"; do
    corpus="corpus/$t"
    mkdir -p "$corpus"
    echo "== $t (${seconds}s)"
    # Seeds are read, the corpus collects new finds; -timeout flags hangs, -rss_limit_mb leaks.
    log="$(mktemp)"
    if ! cargo "${plus[@]}" fuzz run "$t" "$corpus" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz-smoke: $t failed; reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run $t fuzz/artifacts/$t/<file>" >&2
        exit 1
    fi
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
    rm -f "$log"
done
# slug_and_uri plants its fixture workspace under a per-process temporary directory.
rm -rf "${TMPDIR:-/tmp}"/task-mcp-fuzz-uri-*
echo "fuzz-smoke: ${#targets[@]} targets, $(( $(date +%s) - start ))s of fuzzing, no crash"
