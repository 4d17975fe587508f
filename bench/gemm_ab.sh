#!/usr/bin/env bash
# Same-run A/B of FP8 GEMM addons on the GPU machine, in one device command (bench/NOTES.md, "Method"):
#  1. the SASS of each addon (cuobjdump + bench/gemm_sass.py: per-kernel QGMMA / LDL / STL counts, the K loop's
#     opcode mix, loop listings of m64n32 / m64n128 / m256n128), in the background;
#  2. correctness on the first addon: test/ops_fp8_gemm.test.ts with DSK_REQUIRE_CUDA=1 (every configuration
#     forced in turn) and bench/gemm_check.ts (each configuration in its own process, three at a time);
#  3. DeepGEMM from the anchors, JIT-warmed in the background meanwhile, then timed (bench/deepgemm_side.py);
#  4. bench:gemm with each addon in its own process, alternating, ROUNDS rounds, ours / DeepGEMM per shape;
#  5. a table: per shape, each run's time (config in round 1) and DeepGEMM's.
# Run from the root of a checkout whose dist/ is built, with node and node_modules carried in .gpu/ and:
#   .gpu/nodes/NAME.node.xz   the addons (xz of build/Release/deepseek_kernels.node), NAME e.g. new, base
#   .gpu/anchors/             deepgemm-2025-07.tar.xz and deepgemm_bench.py from ../shared/anchors
#   bash bench/gemm_ab.sh LOGDIR "new base"
# Env: BUDGET (s, default 280) skips the later rounds when time runs short; ROUNDS (2); SHAPES (indices of
# bench/gemm.ts, default all); CHECK=0 skips step 2; DG=0 skips step 3; DGSASS=1 also dumps DeepGEMM's SASS;
# BENCH_ARGS adds options to bench:gemm (e.g. --matched).
set -u
OUT=${1:-/tmp/gemm_ab}
VARIANTS=${2:-new base}
BUDGET=${BUDGET:-280}
ROUNDS=${ROUNDS:-2}
mkdir -p "$OUT" /tmp/nodes
ROOT=$(pwd)
left() { echo $((BUDGET - SECONDS)); }
stamp() { echo "[$SECONDS s] $*" | tee -a "$OUT/steps.txt"; }
SHARG=()
[ -n "${SHAPES:-}" ] && SHARG=(--shapes "$SHAPES")

xz -dc .gpu/node.xz > /usr/local/bin/node && chmod +x /usr/local/bin/node
tar -xJf .gpu/node_modules.tar.xz
mkdir -p build/Release
for v in $VARIANTS; do xz -dc ".gpu/nodes/$v.node.xz" > "/tmp/nodes/$v.node" || { echo "no .gpu/nodes/$v.node.xz"; exit 1; }; done
use() { cp "/tmp/nodes/$1.node" build/Release/deepseek_kernels.node; }
FIRST=${VARIANTS%% *}
use "$FIRST"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv > "$OUT/gpu.txt" 2>&1
stamp unpacked

DGDIR=/tmp/dg2
if [ "${DG:-1}" = 1 ]; then
  (
    tar -xJf .gpu/anchors/deepgemm-2025-07.tar.xz -C /tmp
    ln -sf $DGDIR/third-party/cutlass/include/cutlass $DGDIR/deep_gemm/include/cutlass
    ln -sf $DGDIR/third-party/cutlass/include/cute $DGDIR/deep_gemm/include/cute
    cd bench
    for p in 0 1 2 3 4 5 6 7; do
      DG_SHAPES=${DG_SHAPES:-} PYTHONPATH=$DGDIR:$ROOT/.gpu/anchors python3 deepgemm_side.py warm $p 8 > "$OUT/dgwarm$p.log" 2>&1 &
    done
    wait
  ) &
  DGW=$!
fi

(
  for v in $VARIANTS; do
    cuobjdump --dump-sass "/tmp/nodes/$v.node" > "/tmp/sass_$v.txt" 2>&1
    python3 bench/gemm_sass.py "/tmp/sass_$v.txt" "$OUT/sass_$v" > "$OUT/sass_summary_$v.txt" 2>&1
  done
  stamp sass
) &
SASSP=$!

if [ "${CHECK:-1}" = 1 ]; then
  DSK_REQUIRE_CUDA=1 timeout 110 node node_modules/vitest/vitest.mjs run test/ops_fp8_gemm.test.ts > "$OUT/test.log" 2>&1 &
  TP=$!
  CFGS=$(node -e "const d=require('./dist/lib/index'); console.log(d.ops.fp8GemmTesting.configs().join(' '))")
  i=0; P=(); PARTS=("" "" "")
  for c in $CFGS; do PARTS[$((i % 3))]="${PARTS[$((i % 3))]},$c"; i=$((i + 1)); done
  for j in 0 1 2; do
    timeout 110 node dist/bench/gemm_check.js --timeout-ms 40000 --configs "${PARTS[$j]#,}" > "$OUT/check_$j.log" 2>&1 &
    P+=($!)
  done
  wait $TP
  stamp "tests rc $?"
  for pid in "${P[@]}"; do wait $pid; done
  stamp checked
fi

DGARG=()
if [ "${DG:-1}" = 1 ]; then
  wait $DGW 2>/dev/null
  (cd bench && DG_SHAPES=${DG_SHAPES:-} PYTHONPATH=$DGDIR:$ROOT/.gpu/anchors timeout 70 python3 deepgemm_side.py time "$OUT/dg.json" > "$OUT/dg.log" 2>&1)
  stamp "deepgemm timed"
  [ -f "$OUT/dg.json" ] && DGARG=(--deepgemm "$OUT/dg.json")
  if [ "${DGSASS:-0}" = 1 ]; then
    mkdir -p "$OUT/dg_sass"
    for c in $(find "${DG_JIT_CACHE_DIR:-$HOME/.deep_gemm}" -name kernel.cubin 2>/dev/null); do
      d=$(basename "$(dirname "$c")")
      cuobjdump -sass "$c" > "/tmp/dgs_$d.txt" 2>&1
      python3 bench/gemm_sass.py "/tmp/dgs_$d.txt" "$OUT/dg_sass/$d" gemm > "$OUT/dg_sass/$d.summary.txt" 2>&1
    done
  fi
fi

for r in $(seq 1 "$ROUNDS"); do
  for v in $VARIANTS; do
    [ "$(left)" -gt 25 ] || break
    use "$v"
    timeout $(($(left) - 5)) node dist/bench/gemm.js --no-cublas ${BENCH_ARGS:-} "${SHARG[@]}" --json "$OUT/gemm_${v}_$r.json" "${DGARG[@]}" > "$OUT/bench_${v}_$r.log" 2>&1
    stamp "bench $v round $r rc $?"
  done
done
use "$FIRST"
wait $SASSP 2>/dev/null

python3 - "$OUT" $VARIANTS > "$OUT/table.txt" <<'PY'
import json, os, sys
out, variants = sys.argv[1], sys.argv[2:]
cols, rows = [], {}
for r in range(1, 10):
    for v in variants:
        p = os.path.join(out, f'gemm_{v}_{r}.json')
        if not os.path.exists(p): continue
        cols.append(f'{v}_{r}')
        for row in json.load(open(p)).get('rows', []):
            d = rows.setdefault(row['shape'], {})
            d[f'{v}_{r}'] = (row.get('us'), row.get('config'))
            if row.get('DeepGEMM us'): d['DG'] = (row.get('DeepGEMM us'), '')
print('| shape | ' + ' | '.join(cols) + ' | DG |')
for s, d in rows.items():
    cells = []
    for c in cols + ['DG']:
        u, cfg = d.get(c, (None, ''))
        cells.append('-' if u is None else (f'{u:.1f} {cfg}' if c.endswith('_1') else f'{u:.1f}'))
    print(f'| {s} | ' + ' | '.join(cells) + ' |')
PY
echo "===== steps"; cat "$OUT/steps.txt"
for v in $VARIANTS; do echo "===== sass $v"; cut -c1-300 "$OUT/sass_summary_$v.txt" 2>/dev/null; done
echo "===== check"; cat "$OUT"/check_*.log 2>/dev/null | grep -vE "^PASS" | cut -c1-220 | tail -8; cat "$OUT"/check_*.log 2>/dev/null | grep -c "^PASS"
echo "===== deepgemm"; tail -2 "$OUT/dg.log" 2>/dev/null
echo "===== table"; cat "$OUT/table.txt"
echo "===== tests"; grep -E "×|Test Files|Tests |FAIL|AssertionError|expected" "$OUT/test.log" 2>/dev/null | cut -c1-300 | tail -12
