#!/usr/bin/env bash
# The SM clock and power our FP8 GEMM runs at, against DeepGEMM's on the same shapes (bench/NOTES.md, "v8"): each
# addon, then DeepGEMM, runs every shape back to back (no L2 flush) for HOLD seconds while nvidia-smi samples
# clocks.sm, power.draw and the active clock-event (throttle) reasons every 50 ms. A compute-bound GEMM on an H100
# is power-bound: its time is its energy over the power cap, so a kernel that burns more per tile runs at a lower
# clock. Prints, per shape and kernel: us per call, median clock (MHz) and power (W), and the reason mask.
# Run after bench/gemm_ab.sh in the same device command (it unpacks node, the addons into /tmp/nodes and
# DeepGEMM into /tmp/dg2, and warms DeepGEMM's JIT cache for DG_SHAPES):
#   bash bench/gemm_clock.sh LOGDIR "new base" "12,13" [HOLD]
# SHAPES are indices of bench/gemm.ts (DeepGEMM's the same indices, bench/deepgemm_side.py).
set -u
OUT=${1:-/tmp/gemm_clock}
VARIANTS=${2:-new base}
SHAPES=${3:-12}
HOLD=${4:-3}
mkdir -p "$OUT"
ROOT=$(pwd)
Q=timestamp,clocks.sm,power.draw,clocks_event_reasons.active
nvidia-smi --query-gpu=$Q --format=csv,noheader,nounits -c 1 > /dev/null 2>&1 || Q=timestamp,clocks.sm,power.draw,clocks_throttle_reasons.active
nvidia-smi --query-gpu=$Q --format=csv,noheader,nounits -lms 50 > "$OUT/smi.csv" 2>&1 &
SMI=$!
for v in $VARIANTS; do
  cp "/tmp/nodes/$v.node" build/Release/deepseek_kernels.node
  node dist/bench/gemm.js --no-cublas --shapes "$SHAPES" --hold "$HOLD" ${FP8_STD:+--fp8-std $FP8_STD} 2>&1 | sed -n "s/^hold /hold $v /p" >> "$OUT/holds.txt"
done
if [ -d /tmp/dg2 ]; then
  (cd bench && DG_SHAPES=$SHAPES PYTHONPATH=/tmp/dg2:$ROOT/.gpu/anchors python3 deepgemm_side.py hold "$HOLD" 2>&1) | sed -n "s/^hold /hold DeepGEMM /p" >> "$OUT/holds.txt"
fi
sleep 0.3
kill $SMI 2>/dev/null
python3 - "$OUT" <<'PY'
import datetime, statistics, sys
out = sys.argv[1]
samples = []
for line in open(f'{out}/smi.csv'):
    f = [x.strip() for x in line.split(',')]
    try:
        t = datetime.datetime.strptime(f[0], '%Y/%m/%d %H:%M:%S.%f').timestamp() * 1000
        samples.append((t, float(f[1]), float(f[2]), f[3]))
    except (ValueError, IndexError):
        pass
print(f"{'kernel':10} {'shape':22} {'us/call':>8} {'MHz':>6} {'W':>6}  reasons (mask: count)")
for line in open(f'{out}/holds.txt'):
    _, who, shape, t0, t1, calls = line.split()
    t0, t1, calls = int(t0), int(t1), int(calls)
    win = [s for s in samples if t0 + 500 <= s[0] <= t1]
    if not win:
        print(f'{who:10} {shape:22} no samples'); continue
    reasons = {}
    for s in win: reasons[s[3]] = reasons.get(s[3], 0) + 1
    print(f"{who:10} {shape:22} {(t1 - t0) * 1000 / calls:8.1f} {statistics.median(s[1] for s in win):6.0f} "
          f"{statistics.median(s[2] for s in win):6.0f}  {' '.join(f'{k}: {c}' for k, c in sorted(reasons.items()))}")
PY
