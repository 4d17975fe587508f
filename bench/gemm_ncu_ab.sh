#!/usr/bin/env bash
# Cycle-count A/B of FP8 GEMM addons under Nsight Compute (clocks locked by ncu), for changes of 1-3% that the
# free-running bench cannot resolve (its bursty clock swings +-3% between runs: bench/NOTES.md, "v11").
# Per addon and shape: COUNT launches of our kernel (after 3 warm-up launches) under `ncu --metrics`, and the
# median of their cycles (sm__cycles_elapsed.max) and durations; DG=1 adds DeepGEMM's kernel on the same shapes.
# Run on the GPU machine after bench/gemm_ab.sh (which unpacks node, the addons into /tmp/nodes and DeepGEMM):
#   bash bench/gemm_ncu_ab.sh LOGDIR "new base" "9 10 12"     # indices of bench/gemm.ts's shapes
# Env: COUNT (launches profiled, default 3); DG=1 (DeepGEMM too); BENCH_ARGS (options for bench:gemm, e.g.
# "--config m256n128" to time one configuration instead of the heuristic's pick).
set -u
OUT=${1:-/tmp/gemm_ncu_ab}
VARIANTS=${2:-new base}
SHAPES=${3:-12}
COUNT=${COUNT:-3}
mkdir -p "$OUT"
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
[ -n "$NCU" ] || { echo "no ncu on this machine"; exit 1; }
METRICS=sm__cycles_elapsed.max,gpu__time_duration.sum
csv() {  # ncu --csv rows -> "cycles us" per profiled launch
  python3 - "$1" <<'PY'
import csv, sys
rows = [r for r in csv.reader(l for l in open(sys.argv[1], errors='replace') if l.startswith('"'))]
if not rows: sys.exit(0)
h = rows[0]; iid, im, iv = h.index('ID'), h.index('Metric Name'), h.index('Metric Value')
per = {}
for r in rows[1:]:
    per.setdefault(r[iid], {})[r[im]] = float(r[iv].replace(',', ''))
for k, d in per.items():
    cyc, dur = d.get('sm__cycles_elapsed.max'), d.get('gpu__time_duration.sum')
    if cyc is not None and dur is not None:
        print(f'{cyc:.0f} {dur / 1000:.2f}')  # duration in ns -> us
PY
}
for s in $SHAPES; do
  for v in $VARIANTS; do
    cp "/tmp/nodes/$v.node" build/Release/deepseek_kernels.node
    timeout 120 "$NCU" --csv --print-units base --metrics "$METRICS" --kernel-name regex:fp8_gemm_sm90 --launch-skip 3 --launch-count "$COUNT" \
      node dist/bench/gemm.js --no-cublas ${BENCH_ARGS:-} --shapes "$s" > "$OUT/${v}_$s.csv" 2>&1
    csv "$OUT/${v}_$s.csv" > "$OUT/${v}_$s.txt"
  done
  if [ "${DG:-0}" = 1 ]; then
    (cd bench && DG_SHAPES=$s PYTHONPATH=/tmp/dg2:$(pwd)/../.gpu/anchors timeout 120 "$NCU" --csv --print-units base --metrics "$METRICS" --kernel-name regex:fp8_gemm_kernel \
      --launch-skip 3 --launch-count "$COUNT" python3 deepgemm_side.py time /tmp/dg_ncu_ab_$s.json > "$OUT/DG_$s.csv" 2>&1)
    csv "$OUT/DG_$s.csv" > "$OUT/DG_$s.txt"
  fi
done
cp "/tmp/nodes/${VARIANTS%% *}.node" build/Release/deepseek_kernels.node
python3 - "$OUT" "$SHAPES" $VARIANTS $([ "${DG:-0}" = 1 ] && echo DG) <<'PY'
import os, statistics, sys
out, shapes, names = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
print('| shape | ' + ' | '.join(f'{n} kcycles (us)' for n in names) + ' | ' + ' | '.join(f'cycles {n} / {names[0]}' for n in names[1:]) + ' |')
for s in shapes:
    med = {}
    for n in names:
        p = os.path.join(out, f'{n}_{s}.txt')
        vals = [tuple(map(float, l.split())) for l in open(p)] if os.path.exists(p) else []
        med[n] = (statistics.median(v[0] for v in vals), statistics.median(v[1] for v in vals), len(vals)) if vals else None
    cells = [f'{m[0] / 1000:.1f} ({m[1]:.1f}, n={m[2]})' if m else '-' for m in (med[n] for n in names)]
    ratios = [f'{med[n][0] / med[names[0]][0]:.3f}' if med[names[0]] and med[n] else '-' for n in names[1:]]
    print(f'| {s} | ' + ' | '.join(cells) + ' | ' + ' | '.join(ratios) + ' |')
PY
