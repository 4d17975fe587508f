"""Experimental (v6): patch the control bits of the promotion's FFMAs in a built addon, as a timing experiment.

    python3 ffma_yield.py in.node out.node [name-filter]     (needs cuobjdump: run it on the GPU machine)

DeepGEMM's README ("FFMA SASS interleaving") reports 10%+ for block-scaled FP8 GEMMs from flipping, in long runs of
FFMAs, the operand-reuse flag and the bit beside the stall count (instruction bit 109, read as `yield`) on every
other FFMA that shares a scale register, so the warp scheduler switches warps inside the promotion and the other
warpgroup's WGMMAs issue sooner. This script does that on our kernels: cuobjdump lists each function's SASS with
both 64-bit words of every instruction; in each run of >= 16 consecutive FFMAs (the first 9/16 of the run, as the
README's recipe), an FFMA whose B operand carries the reuse flag has reuse and yield cleared when that register is
new in the run or when the previous FFMA kept its reuse on the same register. The patched words are located by the
run's original bytes (which must occur in the file) and rewritten in place. Clearing a reuse flag only makes the
instruction read the register file; the yield bit changes scheduling, not results.
"""
import re, subprocess, sys

src, dst = sys.argv[1], sys.argv[2]
flt = sys.argv[3] if len(sys.argv) > 3 else 'fp8_gemm_sm90'
sass = subprocess.run(['cuobjdump', '-sass', src], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True).stdout

REUSE, YIELD = 1 << 59, 1 << 45
ins_re = re.compile(r'/\*([0-9a-f]{4,})\*/\s+(.*?);\s*/\*\s*0x([0-9a-f]{16})\s*\*/')
hi_re = re.compile(r'^\s*/\*\s*0x([0-9a-f]{16})\s*\*/\s*$')

funcs, cur, pending = [], None, None
for line in sass.splitlines():
    m = re.search(r'Function : (\S+)', line)
    if m:
        cur = (m.group(1), []); funcs.append(cur); pending = None; continue
    if cur is None: continue
    m = ins_re.search(line)
    if m:
        pending = [m.group(2).strip(), int(m.group(3), 16)]; continue
    m = hi_re.match(line)
    if m and pending is not None:
        cur[1].append((pending[0], pending[1], int(m.group(1), 16))); pending = None

data = bytearray(open(src, 'rb').read())
total = 0
for name, ins in funcs:
    if flt not in name: continue
    runs, run = [], []
    for x in ins + [('END', 0, 0)]:
        op = re.sub(r'^@!?P\w+\s+', '', x[0]).split()[0] if x[0] else ''
        if op == 'FFMA': run.append(x)
        else:
            if len(run) >= 16: runs.append(run)
            run = []
    changed = 0
    for run in runs:
        n = len(run) * 9 // 16
        orig = b''.join(lo.to_bytes(8, 'little') + hi.to_bytes(8, 'little') for _, lo, hi in run[:n])
        new, seen, last_kept, last_reg = [], set(), False, None
        for text, lo, hi in run[:n]:
            regs = re.findall(r'\bR(\d+)', text)
            b = regs[2] if len(regs) >= 4 else None  # FFMA Rd, Ra, Rb, Rc
            kept = False
            if hi & REUSE:
                if (b not in seen or (last_kept and b == last_reg)) and hi & YIELD:
                    hi ^= REUSE | YIELD; changed += 1
                else:
                    kept = True
            seen.add(b); last_kept, last_reg = kept, b
            new.append(lo.to_bytes(8, 'little') + hi.to_bytes(8, 'little'))
        pos = data.find(orig)
        hits = 0
        while pos != -1:
            data[pos:pos + len(orig)] = b''.join(new); hits += 1
            pos = data.find(orig, pos + len(orig))
        if hits == 0: sys.exit(f'{name}: run not found in the file')
    km = re.search(r'kernelILi(\d+)ELi(\d+)E', name)
    print(f'{"m%sn%s" % km.groups() if km else name[:60]}: {len(runs)} FFMA runs of >= 16 ({sum(len(r) for r in runs)} FFMAs), {changed} flipped')
    total += changed
open(dst, 'wb').write(data)
print('total flipped', total)
