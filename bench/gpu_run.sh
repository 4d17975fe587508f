#!/usr/bin/env bash
# One device session for the FP8 GEMMs: build (with the ptxas report), the SASS record, the correctness
# tests, DeepGEMM side by side (JIT-warmed in the background while we build and test), bench:gemm, and,
# with time left, the per-configuration sweep. Logs go to $OUT/logs.tgz; summaries are printed last.
#
# Run from the root of the checkout the device machine received, with the worktree copied to
# .gpu/wt-gemm and the anchors (deepgemm-2025-07.tar.xz, deepgemm_bench.py) in .gpu/wt-gemm/.dg:
#   bash .gpu/wt-gemm/bench/gpu_run.sh [full|nosweep|nodg|final]
# final: build, per-configuration smoke check (bench/gemm_check), DeepGEMM from a carried JIT cache
# (.dg/dgcache.tar), bench:gemm, then the test suite in the time left.
# v3: as final, plus (AB_SHAPES=i,j,...) bench:gemm with the scales forced onto the cp.async path and
# (TRACE_SPECS="M,N,K[,config] ...") per-step clock64 traces of CTA 0.
set -u
MODE=${1:-full}
BUDGET=${BUDGET:-560}
ROOT=$(pwd)
W=$ROOT/.gpu/wt-gemm
L=/tmp/logs
OUT=${OUT:-/tmp/out}
mkdir -p "$L" "$OUT"
left() { echo $((BUDGET - SECONDS)); }
stamp() { echo "[$SECONDS s] $*" | tee -a "$L/steps.txt"; }

xz -dc .gpu/node.xz > /usr/local/bin/node && chmod +x /usr/local/bin/node
cd "$W" && tar -xJf ../node_modules.tar.xz
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv > "$L/gpu.txt" 2>&1
stamp unpacked

DG=/tmp/dg2
if [ "$MODE" != nodg ]; then
  (
    tar -xJf "$W/.dg/deepgemm-2025-07.tar.xz" -C /tmp
    ln -sf $DG/third-party/cutlass/include/cutlass $DG/deep_gemm/include/cutlass
    ln -sf $DG/third-party/cutlass/include/cute $DG/deep_gemm/include/cute
    if [ -f "$W/.dg/dgcache.tar" ]; then tar -xf "$W/.dg/dgcache.tar" -C "$HOME"; fi
    cd "$W/bench"
    if [ "$MODE" != final ] && [ "$MODE" != v3 ]; then
      for p in 0 1 2 3 4 5 6 7; do PYTHONPATH=$DG:$W/.dg python3 deepgemm_side.py warm $p 8 > "$L/dgwarm$p.log" 2>&1 & done
    fi
    wait
  ) &
  DGW=$!
fi

(time DSK_PTXAS_VERBOSE=1 node scripts/build.mjs) > "$L/build.log" 2>&1 || echo "BUILD FAILED"
stamp built
python3 - "$L/build.log" > "$L/ptxas.txt" <<'EOF'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
fn = None
for l in lines:
    m = re.search(r"Compiling entry function '(\S+)' for '(sm_\w+)'", l)
    if m: fn = m.group(1) + ' ' + m.group(2)
    if fn and ('spill' in l or 'Used' in l) and ('fp8' in fn): print(fn, '|', l.strip())
EOF

OBJ=$(find build -name 'fp8_gemm_sm90.cu.o' | head -1)
if [ -n "$OBJ" ]; then
  cuobjdump --dump-sass "$OBJ" > "$L/sass_sm90.txt" 2>&1
  python3 - "$L/sass_sm90.txt" > "$L/sass_summary.txt" <<'EOF'
import re, sys
cur, stats = None, {}
for l in open(sys.argv[1]):
    m = re.search(r'Function : (\S+)', l)
    if m: cur = m.group(1); stats[cur] = {'QGMMA': 0, 'HGMMA': 0, 'LDL': 0, 'STL': 0, 'FFMA': 0, 'lines': 0}; continue
    if cur is None: continue
    s = stats[cur]; s['lines'] += 1
    for op in ('QGMMA', 'HGMMA', 'LDL', 'STL', 'FFMA'):
        if re.search(r'\b' + op + r'\b', l): s[op] += 1
for f, s in stats.items(): print(f, s)
EOF
fi
PORT=$(find build -name 'fp8_gemm.cu.o' | head -1)
[ -n "$PORT" ] && cuobjdump --dump-sass "$PORT" 2>&1 | grep -cE "HMMA" > "$L/sass_portable_hmma.txt"
stamp sass

export DSK_CUBLASLT=$(find / -name 'libcublasLt.so.*' -path '*nvidia*' 2>/dev/null | head -1)
H=$(find / -name cublasLt.h 2>/dev/null | head -1)
[ -n "$H" ] && grep -nE "SCALE_MODE =|_SCALE_POINTER =|SCALE_VEC128_32F|SCALE_BLK128x128_32F|DESC_TRANSA =" "$H" > "$L/cublaslt_enums.txt"
echo "cublasLt: $DSK_CUBLASLT header: $H" >> "$L/cublaslt_enums.txt"

if [ "$MODE" = final ] || [ "$MODE" = v3 ]; then
  wait $DGW
  (cd bench && PYTHONPATH=$DG:$W/.dg timeout 60 python3 deepgemm_side.py time "$L/dg.json" > "$L/dg.log" 2>&1)
  [ -s "$L/dg.json" ] || cp "$W/.dg/dg_call1.json" "$L/dg.json"
  stamp dg-timed
  timeout 120 node dist/bench/gemm.js --json "$L/gemm.json" --deepgemm "$L/dg.json" > "$L/bench.log" 2>&1
  stamp benched
  # v3: the scale-path A/B (cp.async forced) on AB_SHAPES, in the same session as the bench above
  if [ -n "${AB_SHAPES:-}" ]; then
    DSK_FP8_GEMM_SCALES=cpasync timeout 40 node dist/bench/gemm.js --no-cublas --shapes "$AB_SHAPES" --json "$L/gemm_cpasync.json" > "$L/ab.log" 2>&1
    stamp ab
  fi
  # v3: clock64 traces of CTA 0 (bench/gemm_trace.ts) for TRACE_SPECS ("M,N,K[,config] ...")
  if [ -n "${TRACE_SPECS:-}" ]; then
    DSK_FP8_GEMM_TRACE=/tmp/trace.jsonl timeout 40 node dist/bench/gemm_trace.js --json "$L/trace.json" $TRACE_SPECS > "$L/trace.log" 2>&1
    stamp traced
  fi
  timeout 90 node dist/bench/gemm_check.js --timeout-ms 25000 > "$L/check.log" 2>&1
  stamp checked
  DSK_REQUIRE_CUDA=1 timeout 90 node node_modules/vitest/vitest.mjs run test/ops_fp8_gemm.test.ts > "$L/test.log" 2>&1
  stamp tested
  if [ -n "${SWEEP_CONFIGS:-}" ] && [ "$(left)" -gt 20 ]; then
    timeout $(left) node dist/bench/gemm.js --sweep --configs "$SWEEP_CONFIGS" --shapes "$SWEEP_SHAPES" --json "$L/sweep.json" > "$L/sweep.log" 2>&1
    stamp swept
  fi
  tar -czf "$OUT/logs.tgz" -C /tmp logs
  echo "===== steps"; cat "$L/steps.txt"
  echo "===== sass"; cut -c60-200 "$L/sass_summary.txt" 2>/dev/null
  echo "===== check"; grep -vE "^PASS" "$L/check.log" | cut -c1-200 | tail -30; grep -c "^PASS" "$L/check.log"
  echo "===== deepgemm"; grep -c us "$L/dg.log"
  echo "===== bench"; grep -v "^row " "$L/bench.log" | tail -32 | cut -c1-260
  echo "===== tests"; grep -E "×|Test Files|Tests |FAIL|AssertionError" "$L/test.log" | cut -c1-240 | tail -20
  echo "===== ptxas"; grep -c "0 bytes spill stores" "$L/ptxas.txt"; grep -v " 0 bytes spill stores" "$L/ptxas.txt" | grep spill | cut -c1-200 | head
  echo "===== ab (scales by cp.async)"; grep -v "^row " "$L/ab.log" 2>/dev/null | tail -28 | cut -c1-100
  echo "===== trace"; cut -c1-400 "$L/trace.log" 2>/dev/null | tail -8
  echo "===== sweep"; grep -v "^row " "$L/sweep.log" 2>/dev/null | cut -c1-200 | tail -30
  exit 0
fi

DSK_REQUIRE_CUDA=1 timeout 240 node node_modules/vitest/vitest.mjs run test/ops_fp8_gemm.test.ts > "$L/test.log" 2>&1
stamp tested

if [ "$MODE" != nodg ]; then
  wait $DGW
  stamp dg-warm
  (cd bench && PYTHONPATH=$DG:$W/.dg timeout 180 python3 deepgemm_side.py time "$L/dg.json" > "$L/dg.log" 2>&1)
  stamp dg-timed
  (cd "$HOME" && tar -cf "$OUT/dgcache.tar" .deep_gemm 2>/dev/null)
fi

timeout $(($(left) > 200 ? 200 : $(left))) node dist/bench/gemm.js --json "$L/gemm.json" --deepgemm "$L/dg.json" > "$L/bench.log" 2>&1
stamp benched
if [ "$MODE" = full ] && [ "$(left)" -gt 40 ]; then
  timeout $(left) node dist/bench/gemm.js --sweep --json "$L/sweep.json" > "$L/sweep.log" 2>&1
  stamp swept
fi

tar -czf "$OUT/logs.tgz" -C /tmp logs
echo "===== gpu"; cat "$L/gpu.txt"
echo "===== steps"; cat "$L/steps.txt"
echo "===== ptxas"; cut -c1-220 "$L/ptxas.txt" | grep -E "sm90|spill" | head -20
echo "===== sass"; cut -c1-200 "$L/sass_summary.txt" 2>/dev/null
echo "===== cublasLt"; cat "$L/cublaslt_enums.txt"
echo "===== tests"; grep -E "✓|×|passed|failed|Error|expected|failures|\+ " "$L/test.log" | cut -c1-300 | tail -60
echo "===== deepgemm"; tail -30 "$L/dg.log" 2>/dev/null
echo "===== bench"; tail -40 "$L/bench.log"
echo "===== sweep"; tail -45 "$L/sweep.log" 2>/dev/null
