#!/usr/bin/env bash
# v4 (BM 256) device session for the FP8 GEMMs, with carried addons (no CUDA build on the device): the SASS
# record, the correctness suite and the per-configuration check, DeepGEMM side by side (JIT-warmed in the
# background meanwhile), then bench:gemm in one process per variant so that every figure of the v4 table
# comes from the same session:
#   new      this branch, the heuristic's picks (BM 256 on the large shapes)
#   old      this branch, m128n128.mcA forced (v3's pick on every large shape)
#   base     main before v4 (its own picks), to show the other kernels did not move
#   FORCE="cfg ..." (default m256n128.mcA m256n112.mcA): this branch with each configuration forced
# Run from the root of the checkout the device machine received, with this worktree copied to
# .gpu/wt-gemm256 (dist/ built), the addons as nodes/{new,base}.node.xz and the DeepGEMM anchors in .dg/:
#   bash .gpu/wt-gemm256/bench/gemm_v4.sh
# Logs and JSON go to $L (/tmp/v4logs); the caller tars them into $OUT (one file: the device returns few), e.g.
#   timeout 300 bash .gpu/wt-gemm256/bench/gemm_v4.sh; tar -czf $OUT/logs.tgz -C /tmp v4logs
# Env: BUDGET (s, default 230) skips the optional steps when time runs short; LARGE = the large shapes.
set -u
BUDGET=${BUDGET:-230}
L=/tmp/v4logs
LARGE=${LARGE:-9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24}
mkdir -p "$L"
OUT=$L
ROOT=$(pwd)
W=$ROOT/.gpu/wt-gemm256
left() { echo $((BUDGET - SECONDS)); }
stamp() { echo "[$SECONDS s] $*" | tee -a "$OUT/steps.txt"; }

xz -dc .gpu/node.xz > /usr/local/bin/node && chmod +x /usr/local/bin/node
cd "$W" && tar -xJf ../node_modules.tar.xz
mkdir -p build/Release /tmp/nodes
for v in new base; do xz -dc "nodes/$v.node.xz" > "/tmp/nodes/$v.node"; done
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
  for p in 0 1 2 3 4 5 6 7; do PYTHONPATH=$DG:$W/.dg python3 deepgemm_side.py warm $p 8 > "$OUT/dgwarm$p.log" 2>&1 & done
  wait
) &
DGW=$!

# SASS of the Hopper kernels in the carried addon: QGMMA in the main loop, no local-memory traffic.
cuobjdump --dump-sass /tmp/nodes/new.node > /tmp/sass.txt 2>&1
python3 - /tmp/sass.txt > "$OUT/sass_summary.txt" <<'EOF'
import re, sys
cur, stats = None, {}
for l in open(sys.argv[1], errors='replace'):
    m = re.search(r'Function : (\S+)', l)
    if m: cur = m.group(1); stats[cur] = {'QGMMA': 0, 'HGMMA': 0, 'LDL': 0, 'STL': 0, 'USETMAXREG': 0, 'lines': 0}; continue
    if cur is None: continue
    s = stats[cur]; s['lines'] += 1
    for op in s:
        if op != 'lines' and re.search(r'\b' + op + r'\b', l): s[op] += 1
for f, s in stats.items():
    if 'fp8_gemm_sm90' in f: print(f, s)
EOF
grep -E "QGMMA" /tmp/sass.txt | sed 's/^ *//' | awk '{$1=""; print}' | sort | uniq -c | head -20 > "$OUT/sass_qgmma_kinds.txt"
stamp sass

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
(cd bench && PYTHONPATH=$DG:$W/.dg timeout 70 python3 deepgemm_side.py time "$OUT/dg.json" > "$OUT/dg.log" 2>&1)
stamp "deepgemm timed"

timeout 70 node dist/bench/gemm.js --no-cublas --json "$OUT/gemm_new.json" --deepgemm "$OUT/dg.json" > "$OUT/bench_new.log" 2>&1
stamp "bench new rc $?"
timeout 45 node dist/bench/gemm.js --no-cublas --config m128n128.mcA --shapes "$LARGE" --json "$OUT/gemm_old.json" --deepgemm "$OUT/dg.json" > "$OUT/bench_old.log" 2>&1
stamp "bench old (m128n128.mcA) rc $?"
for c in ${FORCE:-m256n128.mcA m256n112.mcA}; do
  [ "$(left)" -gt 25 ] || break
  timeout 45 node dist/bench/gemm.js --no-cublas --config "$c" --shapes "$LARGE" --json "$OUT/gemm_$c.json" > "$OUT/bench_$c.log" 2>&1
  stamp "bench $c rc $?"
done
if [ "$(left)" -gt 40 ]; then
  use base
  timeout $(($(left) - 5)) node dist/bench/gemm.js --no-cublas --json "$OUT/gemm_base.json" --deepgemm "$OUT/dg.json" > "$OUT/bench_base.log" 2>&1
  stamp "bench base rc $?"
  use new
fi

python3 - "$OUT" > "$OUT/table.txt" <<'PY'
import json, os, sys, glob
out = sys.argv[1]
cols, rows = [], {}
for f in ['gemm_new.json', 'gemm_old.json'] + sorted(os.path.basename(x) for x in glob.glob(os.path.join(out, 'gemm_m*.json'))) + ['gemm_base.json']:
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
        cells.append('-' if u is None else (f'{u:.1f} {cfg}' if c in ('new', 'base') else f'{u:.1f}'))
    print(f'| {s} | ' + ' | '.join(cells) + ' |')
PY
echo "===== steps"; cat "$OUT/steps.txt"
echo "===== sass"; sed 's/_ZN3dsk4cuda4sm9020fp8_gemm_sm90_kernelI//' "$OUT/sass_summary.txt" 2>/dev/null | cut -c1-200
echo "===== check"; cat "$OUT"/check_*.log | grep -vE "^PASS" | cut -c1-220 | tail -12; cat "$OUT"/check_*.log | grep -c "^PASS"
echo "===== deepgemm"; tail -2 "$OUT/dg.log"
echo "===== table"; cat "$OUT/table.txt"
echo "===== tests"; grep -E "×|Test Files|Tests |FAIL|AssertionError|expected" "$OUT/test.log" | cut -c1-300 | tail -16
