#!/usr/bin/env bash
# v6 (the promotion's cost per K block) device session for the FP8 GEMMs, with carried addons (no CUDA build on
# the device): the SASS of the K loop (whole functions of m64n32 / m64n128 / m256n128, both addons, plus an opcode
# count of the math loop), the correctness suite and the per-configuration check, DeepGEMM side by side (JIT-warmed
# in the background meanwhile), then bench:gemm per addon in one process each, alternating:
#   new      this branch (nodes/new.node.xz), its heuristic's picks
#   base     main's addon (nodes/base.node.xz), its own picks
#   probe    this branch built with DSK_FP8_GEMM_PROBE=1 (nodes/probe.node.xz): the promotion's arithmetic only in a
#            tile's last K block (wrong results, timing only), on PROBE_SHAPES after round 1: new - probe = what the
#            promotion's FMAs cost
#   yield    (YIELD=1) new.node with the promotion's FFMA control bits patched on the device (bench/ffma_yield.py,
#            DeepGEMM's "FFMA interleaving" recipe); VARIANTS lists what is benched (default "new base"), CHECKNODE
#            which addon the tests and gemm_check run on (default new); DGSASS=1 also dumps DeepGEMM's JIT cubins' SASS.
# Run from the root of the checkout the device machine received, with this worktree copied to .gpu/wt-gemm-c
# (dist/ built) and the DeepGEMM anchors in .dg/:
#   timeout 175 bash .gpu/wt-gemm-c/bench/gemm_v6.sh; tar -czf $OUT/logs.tgz -C /tmp v6logs
# Env: BUDGET (s, default 165) skips the optional steps when time runs short; SHAPES (default: all of bench/gemm.ts);
# CHECK=0 skips the tests and gemm_check (a timing-only call).
set -u
BUDGET=${BUDGET:-165}
CHECK=${CHECK:-1}
L=/tmp/v6logs
mkdir -p "$L"
OUT=$L
ROOT=$(pwd)
W=$ROOT/.gpu/wt-gemm-c
left() { echo $((BUDGET - SECONDS)); }
stamp() { echo "[$SECONDS s] $*" | tee -a "$OUT/steps.txt"; }
SHARG=()
[ -n "${SHAPES:-}" ] && SHARG=(--shapes "$SHAPES")

xz -dc .gpu/node.xz > /usr/local/bin/node && chmod +x /usr/local/bin/node
cd "$W" && tar -xJf ../node_modules.tar.xz
mkdir -p build/Release /tmp/nodes
for v in new base probe; do [ -f "nodes/$v.node.xz" ] && xz -dc "nodes/$v.node.xz" > "/tmp/nodes/$v.node"; done
use() { cp "/tmp/nodes/$1.node" build/Release/deepseek_kernels.node; }
if [ "${YIELD:-0}" = 1 ]; then
  python3 "$W/bench/ffma_yield.py" /tmp/nodes/new.node /tmp/nodes/yield.node > "$OUT/yield_patch.txt" 2>&1
  stamp "yield patch rc $?"
fi
VARIANTS=${VARIANTS:-new base}
use ${CHECKNODE:-new}
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv > "$OUT/gpu.txt" 2>&1
stamp unpacked

DG=/tmp/dg2
(
  tar -xJf "$W/.dg/deepgemm-2025-07.tar.xz" -C /tmp
  ln -sf $DG/third-party/cutlass/include/cutlass $DG/deep_gemm/include/cutlass
  ln -sf $DG/third-party/cutlass/include/cute $DG/deep_gemm/include/cute
  cd "$W/bench"
  for p in 0 1 2 3 4 5 6 7; do DG_SHAPES=${DG_SHAPES:-} PYTHONPATH=$DG:$W/.dg python3 deepgemm_side.py warm $p 8 > "$OUT/dgwarm$p.log" 2>&1 & done
  wait
) &
DGW=$!

# SASS of both addons: counts per kernel, whole functions of three kernels, the opcode mix of each K loop.
(
for v in new base $([ -f /tmp/nodes/yield.node ] && echo yield) probe; do
  cuobjdump --dump-sass "/tmp/nodes/$v.node" > "/tmp/sass_$v.txt" 2>&1
  python3 "$W/bench/gemm_sass.py" "/tmp/sass_$v.txt" "$OUT/sass_$v" > "$OUT/sass_summary_$v.txt" 2>&1
done
stamp sass
) &
SASSP=$!

if [ "$CHECK" = 1 ]; then
  # Correctness: the test suite and the per-configuration check (three processes over the configurations).
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

wait $DGW 2>/dev/null
(cd bench && DG_SHAPES=${DG_SHAPES:-} PYTHONPATH=$DG:$W/.dg timeout 70 python3 deepgemm_side.py time "$OUT/dg.json" > "$OUT/dg.log" 2>&1)
stamp "deepgemm timed"
if [ "${DGSASS:-0}" = 1 ]; then
  (
  mkdir -p "$OUT/dg_sass"
  for c in $(find "${DG_JIT_CACHE_DIR:-$HOME/.deep_gemm}" -name kernel.cubin 2>/dev/null); do
    d=$(basename "$(dirname "$c")")
    cuobjdump -sass "$c" > "/tmp/dgs_$d.txt" 2>&1
    python3 "$W/bench/gemm_sass.py" "/tmp/dgs_$d.txt" "$OUT/dg_sass/$d" gemm > "$OUT/dg_sass/$d.summary.txt" 2>&1
  done
  stamp "deepgemm sass"
  ) &
  DGSP=$!
fi

# new / base / probe / new / base: each addon in its own process, alternating
for r in 1 2; do
  if [ $r = 2 ] && [ -f /tmp/nodes/probe.node ] && [ "$(left)" -gt 20 ]; then
    use probe
    timeout $(($(left) - 5)) node dist/bench/gemm.js --no-cublas --shapes "${PROBE_SHAPES:-0,4,6,8,9,12,13,14}" --json "$OUT/gemm_probe.json" > "$OUT/bench_probe.log" 2>&1
    stamp "bench probe rc $?"
  fi
  for v in $VARIANTS; do
    [ "$(left)" -gt 25 ] || break
    use $v
    timeout $(($(left) - 5)) node dist/bench/gemm.js --no-cublas "${SHARG[@]}" --json "$OUT/gemm_${v}_$r.json" --deepgemm "$OUT/dg.json" > "$OUT/bench_${v}_$r.log" 2>&1
    stamp "bench $v round $r rc $?"
  done
done
use new
wait $SASSP 2>/dev/null
[ -n "${DGSP:-}" ] && wait $DGSP 2>/dev/null

python3 - "$OUT" > "$OUT/table.txt" <<'PY'
import json, os, sys
out = sys.argv[1]
cols, rows = [], {}
for f in [f'gemm_{v}_{r}.json' for r in (1, 2) for v in ('new', 'yield', 'base')] + ['gemm_probe.json']:
    p = os.path.join(out, f)
    if not os.path.exists(p): continue
    name = f[5:-5]; cols.append(name)
    for r in json.load(open(p)).get('rows', []):
        d = rows.setdefault(r['shape'], {})
        d[name] = (r.get('us'), r.get('config'))
        if r.get('DeepGEMM us'): d['DG'] = (r.get('DeepGEMM us'), '')
print('| shape | ' + ' | '.join(cols) + ' | DG |')
for s, d in rows.items():
    cells = []
    for c in cols + ['DG']:
        u, cfg = d.get(c, (None, ''))
        cells.append('-' if u is None else (f'{u:.1f} {cfg}' if c.endswith('_1') else f'{u:.1f}'))
    print(f'| {s} | ' + ' | '.join(cells) + ' |')
PY
echo "===== steps"; cat "$OUT/steps.txt"
echo "===== sass new"; cut -c1-260 "$OUT/sass_summary_new.txt" 2>/dev/null
echo "===== sass base"; cut -c1-260 "$OUT/sass_summary_base.txt" 2>/dev/null
echo "===== yield sass"; cut -c1-200 "$OUT/sass_summary_yield.txt" 2>/dev/null; cat "$OUT/yield_patch.txt" 2>/dev/null
echo "===== deepgemm sass"; cat "$OUT"/dg_sass/*.summary.txt 2>/dev/null | cut -c1-400
echo "===== check"; cat "$OUT"/check_*.log 2>/dev/null | grep -vE "^PASS" | cut -c1-220 | tail -8; cat "$OUT"/check_*.log 2>/dev/null | grep -c "^PASS"
echo "===== deepgemm"; tail -2 "$OUT/dg.log"
echo "===== table"; cat "$OUT/table.txt"
echo "===== tests"; grep -E "×|Test Files|Tests |FAIL|AssertionError|expected" "$OUT/test.log" 2>/dev/null | cut -c1-300 | tail -12
