#!/bin/bash
# The expert-parallel GPU run in one command, on any machine with 2 or more GPUs (2x H200, 8x H200, ...):
# the EP tests on every GPU, `bench:ep`, DeepEP's own intranode test and tuner on the same GPUs, and the
# ours/DeepEP table. Nothing here needs a network.
#
#   bash bench/ep_device_run.sh LOGDIR [DEEPEP_ANCHORS_DIR]
#
# Environment: EP_BENCH_ARGS is passed to bench:ep (e.g. --probe --sms 24).
#
# DEEPEP_ANCHORS_DIR holds deepep-2025-09.tar.xz (../shared/anchors); DeepEP builds in the background
# (CPU only) while our tests and benchmark run, and runs on the GPUs after them, never at the same time.
set -u
log=${1:-/tmp/ep_run}
anchors=${2:-}
mkdir -p "$log"
cd "$(dirname "$0")/.."
# NVLink multicast stays off for everything started from here (a program using it can take the host's
# GPUs out of service); our kernels never use it.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a "$log/build.log"; }

dep_pid=
if [ -n "$anchors" ] && [ -f "$anchors/deepep-2025-09.tar.xz" ]; then
  # The build half of anchors/deepep_bench.sh, started now so that it overlaps our run.
  (
    tar -xJf "$anchors/deepep-2025-09.tar.xz" -C /tmp && cd /tmp/dep &&
      TORCH_CUDA_ARCH_LIST=9.0 DEP_NO_NVSHMEM=1 DISABLE_AGGRESSIVE_PTX_INSTRS=0 MAX_JOBS=16 python3 setup.py build_ext --inplace \
        > /tmp/deepep_build.log 2>&1
    echo "exit $?" >> /tmp/deepep_build.log
  ) &
  dep_pid=$!
  stamp "deepep build started (pid $dep_pid)"
fi

if node -e "require('./build/Release/deepseek_kernels.node')" 2>/dev/null; then
  stamp "prebuilt addon loads"
else
  stamp "building the addon"
  node scripts/build.mjs --native >> "$log/build.log" 2>&1 || stamp "addon build FAILED"
fi
node scripts/build.mjs --ts --if-needed >> "$log/build.log" 2>&1
{ nvidia-smi --query-gpu=index,name,memory.total,clocks.max.sm --format=csv; nvidia-smi topo -m; } > "$log/test.log" 2>&1

stamp "tests"
DSK_REQUIRE_CUDA=1 DSK_EP_TEST_LOG="$log/ep_ranks.log" timeout ${EP_TEST_TIMEOUT_S:-240} node node_modules/vitest/vitest.mjs run \
  test/ep_layout.test.ts test/ep_exchange_cuda.test.ts test/ep_moe_layer.test.ts test/ep_multi_gpu.test.ts >> "$log/test.log" 2>&1
test_rc=$?
stamp "tests exit $test_rc"

stamp "bench:ep"
timeout ${EP_BENCH_TIMEOUT_S:-240} node dist/bench/ep.js --out "$log/ep.json" ${EP_BENCH_ARGS:-} > "$log/bench.log" 2>&1
stamp "bench exit $?"

if [ -n "$dep_pid" ]; then
  for _ in $(seq 1 ${DEEPEP_WAIT_S:-240}); do kill -0 "$dep_pid" 2>/dev/null || break; sleep 1; done
  if kill -0 "$dep_pid" 2>/dev/null; then
    stamp "deepep build still running; not waiting longer"
  elif grep -q "exit 0" /tmp/deepep_build.log; then
    stamp "deepep run"
    # The run half of anchors/deepep_bench.sh.
    n=$(python3 -c 'import torch; print(torch.cuda.device_count())')
    (cd /tmp/dep && PYTHONPATH=/tmp/dep timeout ${DEEPEP_RUN_TIMEOUT_S:-240} python3 tests/test_intranode.py --num-processes "$n") > "$log/deepep_intranode.log" 2>&1
    stamp "deepep exit $?"
    node dist/bench/ep.js --compare "$log/ep.json" "$log/deepep_intranode.log" > "$log/compare.log" 2>&1
    cat "$log/compare.log" >> "$log/bench.log"
  else
    stamp "deepep build failed:"; tail -25 /tmp/deepep_build.log >> "$log/build.log"
  fi
fi
stamp "done"
