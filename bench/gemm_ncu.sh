#!/usr/bin/env bash
# Nsight Compute counters of our FP8 GEMM and DeepGEMM's on the same shapes, for bench/NOTES.md ("what limits
# each shape"): speed of light, pipe utilization, memory throughput, warp stall reasons, scheduler issue rate,
# one launch of each kernel (after a few warm-up launches), L2 not flushed by ncu between passes.
# Run on the GPU machine after bench/gemm_ab.sh (which unpacks node and DeepGEMM and warms DeepGEMM's JIT cache)
# from the checkout's root, with the addon to profile in build/Release:
#   bash bench/gemm_ncu.sh LOGDIR "12 0"      # indices of bench/gemm.ts's shapes
# BENCH_ARGS adds options to bench:gemm (e.g. "--config m128n160.mcA": one configuration instead of the pick).
# NCU_MODE=stall samples warp stalls per instruction and prints them per opcode (bench/ncu_stall_by_opcode.py).
# NCU_MODE=roof collects instead a few counters per kernel (cycles, clock, tensor-pipe and shared-memory bank
# utilization, DRAM and L2 bytes, instructions; those the machine's ncu knows) and prints one table of both
# kernels per shape (bench/gemm_ncu_table.py): what the BM 256 kernels are bound by (bench/NOTES.md, "v10").
set -u
OUT=${1:-/tmp/gemm_ncu}
SHAPES=${2:-12}
mkdir -p "$OUT"
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
[ -n "$NCU" ] || { echo "no ncu on this machine"; exit 1; }
SECTIONS=(--section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats --section LaunchStats --section Occupancy)
if [ "${NCU_MODE:-sections}" = roof ]; then
  "$NCU" --query-metrics --chip gh100 > /tmp/metrics_known.txt 2>&1
  grep -iE 'tensor|gmma|pipe_shared|data_bank' /tmp/metrics_known.txt > "$OUT/metrics_tensor_smem.txt"
  WANT="gpu__time_duration.sum sm__cycles_elapsed.max sm__cycles_elapsed.avg.per_second
    sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_elapsed
    l1tex__data_bank_reads.avg.pct_of_peak_sustained_elapsed l1tex__data_bank_writes.avg.pct_of_peak_sustained_elapsed
    l1tex__data_bank_reads.sum l1tex__data_bank_writes.sum
    dram__bytes_read.sum dram__bytes_write.sum lts__t_bytes.sum lts__t_sector_hit_rate.pct
    smsp__inst_executed.sum smsp__issue_active.avg.pct_of_peak_sustained_elapsed"
  M=""
  for w in $WANT; do grep -qw "^${w%%.*}" /tmp/metrics_known.txt && M="$M,$w"; done
  echo "metrics: ${M#,}" | tee "$OUT/metrics_used.txt"
  SECTIONS=(--metrics "${M#,}")
fi
if [ "${NCU_MODE:-sections}" = stall ]; then
  SECTIONS=(--section SourceCounters --page source --csv --print-source sass)
fi
for s in $SHAPES; do
  timeout 120 "$NCU" "${SECTIONS[@]}" --kernel-name regex:fp8_gemm_sm90 --launch-skip 3 --launch-count 1 \
    node dist/bench/gemm.js --no-cublas ${BENCH_ARGS:-} --shapes "$s" > "$OUT/ours_$s.txt" 2>&1
  echo "ours shape $s rc $?"
  (cd bench && DG_SHAPES=$s PYTHONPATH=/tmp/dg2:$(pwd)/../.gpu/anchors timeout 120 "$NCU" "${SECTIONS[@]}" --kernel-name regex:fp8_gemm_kernel \
    --launch-skip 3 --launch-count 1 python3 deepgemm_side.py time /tmp/dg_ncu_$s.json > "$OUT/deepgemm_$s.txt" 2>&1)
  echo "deepgemm shape $s rc $?"
done
if [ "${NCU_MODE:-sections}" = roof ]; then
  python3 bench/gemm_ncu_table.py "$OUT" $SHAPES
  exit 0
fi
if [ "${NCU_MODE:-sections}" = stall ]; then
  for s in $SHAPES; do for w in ours deepgemm; do
    python3 bench/ncu_stall_by_opcode.py "$OUT/${w}_$s.txt" 18 --listing "${NCU_LISTING:-1000000000}" > "$OUT/${w}_${s}_stalls.txt"
    head -20 "$OUT/${w}_${s}_stalls.txt"
  done; done
  exit 0
fi
# The lines worth comparing, side by side.
for s in $SHAPES; do
  for w in ours deepgemm; do
    echo "===== $w shape $s"
    grep -E "Duration|SM Frequency|Compute \(SM\) Throughput|Memory Throughput|L2 Cache Throughput|DRAM Throughput|Executed Ipc Active|Issue Slots Busy|No Eligible|Warp Cycles Per Issued|Registers Per|Stall|Tensor|One or More Eligible|Achieved Occupancy" "$OUT/${w}_$s.txt" | head -40
  done
done
