#!/usr/bin/env bash
# Nsight Compute counters of our FP8 GEMM and DeepGEMM's on the same shapes, for bench/NOTES.md ("what limits
# each shape"): speed of light, pipe utilization, memory throughput, warp stall reasons, scheduler issue rate,
# one launch of each kernel (after a few warm-up launches), L2 not flushed by ncu between passes.
# Run on the GPU machine after bench/gemm_ab.sh (which unpacks node and DeepGEMM and warms DeepGEMM's JIT cache)
# from the checkout's root, with the addon to profile in build/Release:
#   bash bench/gemm_ncu.sh LOGDIR "12 0"      # indices of bench/gemm.ts's shapes
set -u
OUT=${1:-/tmp/gemm_ncu}
SHAPES=${2:-12}
mkdir -p "$OUT"
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
[ -n "$NCU" ] || { echo "no ncu on this machine"; exit 1; }
SECTIONS=(--section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats --section LaunchStats --section Occupancy)
for s in $SHAPES; do
  timeout 120 "$NCU" "${SECTIONS[@]}" --kernel-name regex:fp8_gemm_sm90 --launch-skip 3 --launch-count 1 \
    node dist/bench/gemm.js --no-cublas --shapes "$s" > "$OUT/ours_$s.txt" 2>&1
  echo "ours shape $s rc $?"
  (cd bench && DG_SHAPES=$s PYTHONPATH=/tmp/dg2:$(pwd)/../.gpu/anchors timeout 120 "$NCU" "${SECTIONS[@]}" --kernel-name regex:fp8_gemm_kernel \
    --launch-skip 3 --launch-count 1 python3 deepgemm_side.py time /tmp/dg_ncu_$s.json > "$OUT/deepgemm_$s.txt" 2>&1)
  echo "deepgemm shape $s rc $?"
done
# The lines worth comparing, side by side.
for s in $SHAPES; do
  for w in ours deepgemm; do
    echo "===== $w shape $s"
    grep -E "Duration|SM Frequency|Compute \(SM\) Throughput|Memory Throughput|L2 Cache Throughput|DRAM Throughput|Executed Ipc Active|Issue Slots Busy|No Eligible|Warp Cycles Per Issued|Registers Per|Stall|Tensor|One or More Eligible|Achieved Occupancy" "$OUT/${w}_$s.txt" | head -40
  done
done
