#!/usr/bin/env bash
# Same-run A/B of FP8 GEMM addons in one device command: the tests and the per-configuration check of the
# new addon, then bench:gemm (normal shapes) and optionally bench:decode alternating v2 / v3 / new, so the
# three are compared under the same clocks. Run from the root of the checkout the device machine received,
# with this worktree copied to .gpu/wt-gemm (its dist/ built) and the addons in .gpu/wt-gemm/nodes/:
#   v2.node.xz (main before the v3 merge), v3.node.xz (main), new.node.xz (this branch)
#   bash .gpu/wt-gemm/bench/gemm_ab.sh            # tests + check + 2 rounds of bench:gemm (~90 s)
#   DECODE=1 bash .gpu/wt-gemm/bench/gemm_ab.sh   # + one bench:decode per addon
#   SWEEP=1 ...                                   # + per-config sweep of the decode-size shapes (v2, new)
# Logs and JSON go to $OUT; a summary table is printed last.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0)) s] $*" | tee -a "$OUT/steps.log"; }
xz -dc .gpu/node.xz > /usr/local/bin/node && chmod +x /usr/local/bin/node
cd .gpu/wt-gemm && tar -xJf ../node_modules.tar.xz
mkdir -p build/Release /tmp/nodes
for v in v2 v3 new; do xz -dc "nodes/$v.node.xz" > "/tmp/nodes/$v.node"; done
use() { cp "/tmp/nodes/$1.node" build/Release/deepseek_kernels.node; }
nvidia-smi --query-gpu=name,clocks.sm,power.draw,temperature.gpu --format=csv > "$OUT/gpu.txt" 2>&1
stamp ready

use new
DSK_REQUIRE_CUDA=1 timeout 90 node node_modules/vitest/vitest.mjs run test/ops_fp8_gemm.test.ts > "$OUT/test.log" 2>&1
stamp "ops_fp8_gemm test rc $?"
grep -E "Tests |Test Files|FAIL|×" "$OUT/test.log" | head -20
timeout 120 node dist/bench/gemm_check.js > "$OUT/check.log" 2>&1
stamp "gemm_check rc $?"
tail -2 "$OUT/check.log"

for round in 1 2; do
  for v in v2 v3 new; do
    use $v
    timeout 60 node dist/bench/gemm.js --only normal --no-cublas --json "$OUT/gemm_${v}_$round.json" > "$OUT/gemm_${v}_$round.log" 2>&1
    stamp "bench:gemm $v round $round rc $?"
  done
done

if [ "${DECODE:-0}" = 1 ]; then
  for v in v2 v3 new; do
    use $v
    timeout 150 node dist/bench/decode.js > "$OUT/decode_$v.log" 2>&1
    stamp "bench:decode $v rc $?"
  done
fi

if [ "${SWEEP:-0}" = 1 ]; then
  export DSK_GEMM_EXTRA_SHAPES=8x1536x7168,8x576x7168,8x24576x1536,8x7168x16384,8x18432x7168,8x7168x18432,8x7168x2048,64x18432x7168,64x7168x18432
  for v in v2 new; do
    use $v
    timeout 120 node dist/bench/gemm.js --sweep --configs m64n32.mcA,m64n56.mcA,m64n96,m64n96.mcA,m64n128,m64n128.mcB \
      --shapes 1,3,5,25,26,27,28,29,30,31,32,33 --json "$OUT/sweep_$v.json" > "$OUT/sweep_$v.log" 2>&1
    stamp "sweep $v rc $?"
  done
fi

use new
python3 - "$OUT" <<'EOF'
import json, sys, glob, os
out = sys.argv[1]
runs = {}
for f in sorted(glob.glob(os.path.join(out, 'gemm_*_*.json'))):
    v, r = os.path.basename(f)[5:-5].split('_')
    try:
        d = json.load(open(f))
    except Exception:
        continue
    for row in d.get('rows', d if isinstance(d, list) else []):
        runs.setdefault(row['shape'], {}).setdefault(v, []).append((row.get('us'), row.get('config')))
print('| shape | v2 us (config) | v3 us (config) | new us (config) |')
print('|---|---|---|---|')
for s, vs in runs.items():
    cells = []
    for v in ('v2', 'v3', 'new'):
        xs = [u for u, _ in vs.get(v, []) if u]
        cfg = vs.get(v, [(None, '-')])[0][1]
        cells.append(f"{min(xs):.1f} / {max(xs):.1f} ({cfg})" if xs else '-')
    print(f"| {s} | " + ' | '.join(cells) + ' |')
for v in ('v2', 'v3', 'new'):
    f = os.path.join(out, f'decode_{v}.log')
    if os.path.exists(f):
        print(f'--- decode {v}')
        print(''.join(l for l in open(f) if 'tok' in l or 'prefill' in l or 'decode' in l)[-1500:])
EOF
stamp done
