#!/usr/bin/env bash
# Where the cycles per launch go, ours beside DeepGEMM's (bench/NOTES.md, "v17": at one tile per CTA ours takes
# 3.5-4k cycles more at every K). CTA 0 of each kernel stamps clock64 from its first instruction:
#  - ours: the trace build with bench/data/v17/prologue_stamps.patch (its stamps tr[4..11] around the barrier setup,
#    the cluster barrier, setmaxnreg and the producer's first plan), read from DSK_FP8_GEMM_TRACE's file, beside
#    bench/gemm_trace.ts's per-step lines (first loads issued, first full wait done, epilogue, end);
#  - DeepGEMM: its kernel patched by bench/dg_stamp.py (cluster barrier passed, first stage issued, first full wait
#    done, last store issued, producer's last empty round, end), printed by the kernel itself.
# Build ours here first (no GPU needed):
#   git apply bench/data/v17/prologue_stamps.patch
#   sed -i 's/#define DSK_FP8_GEMM_TRACE_BUILD 0/#define DSK_FP8_GEMM_TRACE_BUILD 1/' native/cuda/hopper/fp8_gemm_sm90.cu
#   node scripts/build.mjs --native && xz -c build/Release/deepseek_kernels.node > .gpu/nodes/stamps.node.xz
#   git checkout native/cuda/hopper/fp8_gemm_sm90.cu
# then on the GPU machine, with node, node_modules and the anchors carried as for bench/gemm_ab.sh:
#   bash bench/gemm_prologue.sh LOGDIR [K list, default "128 2048 7168"]
# (The patched DeepGEMM kernel has 1 KB of static shared memory more: fine for its 256 x 128 picks at 4096 x 1024.)
set -u
OUT=${1:-/tmp/gemm_prologue}
KS=${2:-128 2048 7168}
mkdir -p "$OUT" build/Release
ROOT=$(pwd)
xz -dc .gpu/node.xz > /usr/local/bin/node && chmod +x /usr/local/bin/node
tar -xJf .gpu/node_modules.tar.xz
xz -dc .gpu/nodes/stamps.node.xz > build/Release/deepseek_kernels.node || { echo "no .gpu/nodes/stamps.node.xz"; exit 1; }

# Ours: one tile per CTA (4096 x 1024 x K), the pair (mcA) and the CTA alone.
SPECS=()
for k in $KS; do SPECS+=("4096,1024,$k,m256n128.mcA" "4096,1024,$k,m256n128"); done
rm -f /tmp/stamps.jsonl
DSK_FP8_GEMM_TRACE=/tmp/stamps.jsonl timeout 120 node dist/bench/gemm_trace.js --steps "${SPECS[@]}" > "$OUT/ours_trace.txt" 2>&1
python3 - > "$OUT/ours_prologue.txt" <<'PY'
import json
names = ['producer entry', 'barriers set', 'producer past cluster barrier', 'producer setmaxnreg', 'producer first tile',
         'producer first plan', 'math setmaxnreg', 'math past cluster barrier']
for line in open('/tmp/stamps.jsonl'):
    d = json.loads(line)
    w, t0 = d['w'], d['w'][0]
    prod, cons = d['prod'], d['cons']
    at = {n: (w[4 + i] - t0 if w[4 + i] else None) for i, n in enumerate(names)}
    at['first loads issued'] = w[prod + 1] - t0 if w[prod + 1] else None
    at['first full wait done'] = w[cons] - t0 if w[cons] else None
    at['end (math thread 0)'] = w[2] - t0
    print(f"{d['m']}x{d['n']}x{d['k']} {d['config']}: " + ', '.join(f'{n} {v}' for n, v in at.items()))
PY
cat "$OUT/ours_prologue.txt"

# DeepGEMM, stamped, on the same shapes (indices 25 on: DSK_GEMM_EXTRA_SHAPES, as bench/deepgemm_side.py reads it).
DGDIR=/tmp/dg2
tar -xJf .gpu/anchors/deepgemm-2025-07.tar.xz -C /tmp
ln -sf $DGDIR/third-party/cutlass/include/cutlass $DGDIR/deep_gemm/include/cutlass
ln -sf $DGDIR/third-party/cutlass/include/cute $DGDIR/deep_gemm/include/cute
python3 bench/dg_stamp.py $DGDIR
EXTRA=""; IDX=""; i=25
for k in $KS; do EXTRA="$EXTRA${EXTRA:+,}4096x1024x$k"; IDX="$IDX${IDX:+,}$i"; i=$((i + 1)); done
(cd bench && DSK_GEMM_EXTRA_SHAPES=$EXTRA DG_SHAPES=$IDX PYTHONPATH=$DGDIR:$ROOT/.gpu/anchors timeout 300 \
  python3 deepgemm_side.py time /tmp/dg_stamps.json) > "$OUT/dg_stdout.txt" 2>&1
grep -E "dsk-stamps|DeepGEMM" "$OUT/dg_stdout.txt"
