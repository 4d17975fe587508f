#!/usr/bin/env bash
# The whole project on one GPU in one device command: the full test suite with DSK_REQUIRE_CUDA=1 (every
# CUDA suite must run, none may skip), then the benchmarks whose figures bench/NOTES.md quotes.
#   bash bench/lead_run.sh LOGDIR [tests|decode|bench|all]
# tests: the suite; decode: the suite, then bench:decode with its prefill profile; bench: bench:decode,
# bench:ops, bench:runtime; all: everything (about 2 minutes on the H100 with a carried addon).
# Expects node/npm on the PATH and a built addon (npm run build) or a carried one (build/Release).
set -u
log=${1:-/tmp/lead_run}
what=${2:-all}
mkdir -p "$log"
cd "$(dirname "$0")/.."
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a "$log/steps.log"; }
# A carried addon that loads is used as it is (building the CUDA code takes minutes there).
if node -e "require('./build/Release/deepseek_kernels.node')" 2>/dev/null; then part=--ts; else part=; fi
node scripts/build.mjs $part --if-needed > "$log/build.log" 2>&1 || { stamp "build FAILED"; tail -30 "$log/build.log"; exit 1; }
stamp built
nvidia-smi --query-gpu=name,clocks.sm,power.draw,temperature.gpu --format=csv > "$log/gpu.txt" 2>&1
if [ "$what" != bench ]; then
  DSK_REQUIRE_CUDA=1 timeout ${TEST_TIMEOUT:-330} npx vitest run > "$log/test.log" 2>&1
  stamp "tests exit $?"
  grep -E "×|FAIL|Test Files|Tests " "$log/test.log" | head -40
fi
if [ "$what" != tests ]; then
  timeout 200 node dist/bench/decode.js --profile > "$log/decode.log" 2>&1; stamp "bench:decode exit $?"
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  timeout 120 node dist/bench/ops.js > "$log/ops.log" 2>&1; stamp "bench:ops exit $?"
  timeout 60 node dist/bench/runtime.js > "$log/runtime.log" 2>&1; stamp "bench:runtime exit $?"
  cp bench/results/*.json "$log/" 2>/dev/null
fi
