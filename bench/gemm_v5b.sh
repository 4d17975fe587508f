#!/usr/bin/env bash
# v5b (BM 64: two partial accumulators) device session for the small-M FP8 GEMMs, with carried addons (no CUDA
# build on the device): the SASS record, the correctness suite and the per-configuration check, DeepGEMM side by
# side on the small-M shapes (JIT-warmed in the background meanwhile), bench:gemm per addon in one process each,
# the clock64 trace, then forced BM 64 configurations for the heuristic:
#   new      this branch (nodes/new.node.xz), its heuristic's picks
#   base     main before v5b (nodes/base.node.xz), its own picks: the "current pick" column
#   trace    (call 1) this branch built with DSK_FP8_GEMM_TRACE_BUILD=1 (nodes/trace.node.xz), for bench/gemm_trace.ts
#   alt      (call 2) call 1's build, two partial accumulators in every BM 64 kernel (nodes/alt.node.xz)
# Call 2 (CALL=2): no trace; forced runs per addon (FORCE2="addon:config:shapes ...") instead of call 1's FORCE list.
# Run from the root of the checkout the device machine received, with this worktree copied to .gpu/wt-gemm-b
# (dist/ built) and the DeepGEMM anchors in .dg/:
#   timeout 280 bash .gpu/wt-gemm-b/bench/gemm_v5b.sh; tar -czf $OUT/logs.tgz -C /tmp v5blogs
# Env: BUDGET (s, default 250) skips the optional steps when time runs short; SMALL = the M <= 128 shapes.
set -u
BUDGET=${BUDGET:-250}
CALL=${CALL:-1}
L=/tmp/v5blogs
SMALL=${SMALL:-0,1,2,3,4,5,6,7,8}
DG_SMALL=${DG_SMALL:-$SMALL}
mkdir -p "$L"
OUT=$L
ROOT=$(pwd)
W=$ROOT/.gpu/wt-gemm-b
left() { echo $((BUDGET - SECONDS)); }
stamp() { echo "[$SECONDS s] $*" | tee -a "$OUT/steps.txt"; }

xz -dc .gpu/node.xz > /usr/local/bin/node && chmod +x /usr/local/bin/node
cd "$W" && tar -xJf ../node_modules.tar.xz
mkdir -p build/Release /tmp/nodes
for v in new base trace alt; do [ -f "nodes/$v.node.xz" ] && xz -dc "nodes/$v.node.xz" > "/tmp/nodes/$v.node"; done
use() { cp "/tmp/nodes/$1.node" build/Release/deepseek_kernels.node; }
use new
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv > "$OUT/gpu.txt" 2>&1
stamp unpacked

DG=/tmp/dg2
(
  tar -xJf "$W/.dg/deepgemm-2025-07.tar.xz" -C /tmp
  ln -sf $DG/third-party/cutlass/include/cutlass $DG/deep_gemm/include/cutlass
  ln -sf $DG/third-party/cutlass/include/cute $DG/deep_gemm/include/cute
  cd "$W/bench"
  for p in 0 1 2 3 4 5 6 7 8; do DG_SHAPES=$DG_SMALL PYTHONPATH=$DG:$W/.dg python3 deepgemm_side.py warm $p 9 > "$OUT/dgwarm$p.log" 2>&1 & done
  wait
) &
DGW=$!

# SASS of the Hopper kernels in the carried addon: QGMMA in the main loop, no local-memory traffic.
(
cuobjdump --dump-sass /tmp/nodes/new.node > /tmp/sass.txt 2>&1
python3 - /tmp/sass.txt > "$OUT/sass_summary.txt" <<'EOF'
import re, sys
cur, stats = None, {}
for l in open(sys.argv[1], errors='replace'):
    m = re.search(r'Function : (\S+)', l)
    if m: cur = m.group(1); stats[cur] = {'QGMMA': 0, 'HGMMA': 0, 'LDL': 0, 'STL': 0, 'USETMAXREG': 0, 'WARPGROUP.DEPBAR': 0, 'lines': 0}; continue
    if cur is None: continue
    s = stats[cur]; s['lines'] += 1
    for op in s:
        if op != 'lines' and re.search(r'\b' + re.escape(op) + r'\b', l): s[op] += 1
for f, s in stats.items():
    if 'fp8_gemm_sm90' in f: print(f, s)
EOF
# the m64n32 main loop as compiled (QGMMA, the wait_group depbars, the barrier ops around them)
awk '/Function : .*fp8_gemm_sm90_kernelILi64ELi32E/{f=1;next} /Function :/{f=0} f && /QGMMA|DEPBAR|SYNCS|WARPGROUP/' /tmp/sass.txt | sed 's/^ *//' | cut -c1-120 > "$OUT/sass_m64n32_loop.txt"
awk '/Function : .*fp8_gemm_sm90_kernelILi64ELi128E/{f=1;next} /Function :/{f=0} f && /QGMMA|DEPBAR|SYNCS|WARPGROUP/' /tmp/sass.txt | sed 's/^ *//' | cut -c1-120 > "$OUT/sass_m64n128_loop.txt"
stamp sass
) &
SASSP=$!

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

wait $DGW 2>/dev/null
(cd bench && DG_SHAPES=$DG_SMALL PYTHONPATH=$DG:$W/.dg timeout 50 python3 deepgemm_side.py time "$OUT/dg.json" > "$OUT/dg.log" 2>&1)
stamp "deepgemm timed"

# new / base / new / base: each addon twice, alternating, in one process per run
for r in 1 2; do
  for v in new base; do
    [ "$(left)" -gt 30 ] || break
    use $v
    timeout 30 node dist/bench/gemm.js --no-cublas --shapes "$SMALL" --json "$OUT/gemm_${v}_$r.json" --deepgemm "$OUT/dg.json" > "$OUT/bench_${v}_$r.log" 2>&1
    stamp "bench $v round $r rc $?"
  done
done
use new

if [ "$CALL" = 1 ] && [ "$(left)" -gt 30 ]; then
  use trace
  DSK_FP8_GEMM_TRACE=/tmp/trace.jsonl timeout 25 node dist/bench/gemm_trace.js --json "$OUT/trace.json" \
    64,2112,7168,m64n16 64,2112,7168,m64n32.mcA 64,4096,7168,m64n32.mcA 128,2112,7168,m64n32.mcB 64,7168,2048,m64n56.mcA 64,24576,1536,m64n96 > "$OUT/trace.log" 2>&1
  stamp "trace rc $?"
  use new
fi

# forced BM 64 configurations (new addon) over the small-M shapes, for the heuristic's per-K-block figures
if [ "$CALL" = 1 ]; then
for c in ${FORCE:-m64n16 m64n32.mcA m64n56.mcA m64n96 m64n128}; do
  [ "$(left)" -gt 20 ] || break
  timeout 20 node dist/bench/gemm.js --no-cublas --config "$c" --shapes "$SMALL" --json "$OUT/gemm_$c.json" > "$OUT/bench_$c.log" 2>&1
  stamp "bench $c rc $?"
done
else
for spec in ${FORCE2:-base:m64n128:$SMALL new:m64n128:$SMALL base:m64n16:0,4,6 alt:m64n16:0,4,6 alt:m64n32.mcA:0,4,6}; do
  IFS=: read -r v c sh <<< "$spec"
  [ "$(left)" -gt 15 ] || break
  [ -f "/tmp/nodes/$v.node" ] || continue
  use "$v"
  timeout 20 node dist/bench/gemm.js --no-cublas --config "$c" --shapes "$sh" --json "$OUT/gemm_f_${v}_$c.json" > "$OUT/bench_f_${v}_$c.log" 2>&1
  stamp "bench $v $c rc $?"
done
use new
fi
wait $SASSP 2>/dev/null

python3 - "$OUT" > "$OUT/table.txt" <<'PY'
import json, os, sys, glob
out = sys.argv[1]
cols, rows = [], {}
files = ['gemm_new_1.json', 'gemm_base_1.json', 'gemm_new_2.json', 'gemm_base_2.json'] + sorted(os.path.basename(x) for x in glob.glob(os.path.join(out, 'gemm_m*.json')) + glob.glob(os.path.join(out, 'gemm_f_*.json')))
for f in files:
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
        cells.append('-' if u is None else (f'{u:.1f} {cfg}' if c.startswith(('new_', 'base_')) else f'{u:.1f}'))
    print(f'| {s} | ' + ' | '.join(cells) + ' |')
PY
echo "===== steps"; cat "$OUT/steps.txt"
echo "===== sass"; sed 's/_ZN3dsk4cuda4sm9020fp8_gemm_sm90_kernelI//' "$OUT/sass_summary.txt" 2>/dev/null | cut -c1-220
echo "===== check"; cat "$OUT"/check_*.log | grep -vE "^PASS" | cut -c1-220 | tail -12; cat "$OUT"/check_*.log | grep -c "^PASS"
echo "===== deepgemm"; tail -2 "$OUT/dg.log"
echo "===== trace"; cat "$OUT/trace.log" | cut -c1-600
echo "===== table"; cat "$OUT/table.txt"
echo "===== tests"; grep -E "×|Test Files|Tests |FAIL|AssertionError|expected" "$OUT/test.log" | cut -c1-300 | tail -16
