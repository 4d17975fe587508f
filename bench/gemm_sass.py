"""The SASS of the Hopper FP8 GEMM kernels (cuobjdump --dump-sass of an addon), for bench/NOTES.md.

    python3 gemm_sass.py sass.txt PREFIX [FILTER]
prints per kernel: QGMMA / HGMMA / LDL / STL / USETMAXREG counts, and the math K loop's opcode mix (the loop is
found as the first backward branch after the last QGMMA that jumps to or before the first QGMMA); writes the whole
function of m64n32, m64n128 and m256n128 to PREFIX_<kernel>.txt and each K loop to PREFIX_<kernel>_loop.txt.
With FILTER (e.g. `gemm` for DeepGEMM's JIT cubins): every function whose name contains it, numbered, full name printed.
"""
import collections, re, sys

src, prefix = sys.argv[1], sys.argv[2]
flt = sys.argv[3] if len(sys.argv) > 3 else None
funcs, cur = {}, None
for line in open(src, errors='replace'):
    m = re.search(r'Function : (\S+)', line)
    if m:
        cur = m.group(1); funcs[cur] = []; continue
    if cur is not None:
        funcs[cur].append(line.rstrip('\n'))

INS = re.compile(r'/\*([0-9a-f]{4,})\*/\s+(.*?);')


def parse(lines):
    out = []
    for l in lines:
        m = INS.search(l)
        if not m: continue
        addr, text = int(m.group(1), 16), m.group(2).strip()
        t = re.sub(r'^@!?U?P\w+\s+', '', text)
        out.append((addr, text, t.split()[0] if t else ''))
    return out


def short(name):
    m = re.search(r'kernelILi(\d+)ELi(\d+)ELi(\d+)E(Lb1E)?', name)  # <BM, BN, KS, DEEP>; KS 2: a split-K pair's kernel
    if not m:
        return name[:40]
    return f'm{m.group(1)}n{m.group(2)}' + ('s4' if m.group(4) else '') + ('.splitK' if m.group(3) == '2' else '')


for idx, (name, lines) in enumerate(funcs.items()):
    if (flt or 'fp8_gemm_sm90') not in name: continue
    ins = parse(lines)
    ops = [o for _, _, o in ins]
    count = lambda p: sum(1 for o in ops if o.startswith(p))
    k = f'f{idx}' if flt else short(name)
    if flt: print(f'{k} = {name}')
    q = [i for i, (_, _, o) in enumerate(ins) if o.startswith('QGMMA')]
    mix = ''
    if q:
        first_addr = ins[q[0]][0]
        back = None
        for i in range(q[-1], len(ins)):
            m = re.search(r'\bBRA\b.*?0x([0-9a-f]+)', ins[i][1])
            if m and int(m.group(1), 16) <= first_addr:
                back = i; break
        if back is not None:
            start_addr = int(re.search(r'0x([0-9a-f]+)', ins[back][1].split('BRA', 1)[1]).group(1), 16)
            s = next(i for i, (a, _, _) in enumerate(ins) if a >= start_addr)
            loop = ins[s:back + 1]
            c = collections.Counter(o if o.split('.')[0] in ('WARPGROUP', 'SYNCS', 'QGMMA', 'DEPBAR', 'BAR') else o.split('.')[0] for _, _, o in loop)
            # instructions from the last QGMMA's wait (first WARPGROUP.DEPBAR after it) to the loop's end
            mix = f' loop {len(loop)} ins [{start_addr:#x}, {ins[back][0]:#x}]: ' + ', '.join(f'{o} {n}' for o, n in c.most_common())
            if flt or k in ('m64n32', 'm64n128', 'm256n128', 'm256n128s4', 'm64n16', 'm128n128'):
                with open(f'{prefix}_{k}_loop.txt', 'w') as f:
                    f.write('\n'.join(f'{a:#06x} {t}' for a, t, _ in loop) + '\n')
    if flt or k in ('m64n32', 'm64n128', 'm256n128'):
        with open(f'{prefix}_{k}.txt', 'w') as f:
            f.write('\n'.join(lines) + '\n')
    print(f'{k}: {len(ins)} ins, QGMMA {count("QGMMA")}, HGMMA {count("HGMMA")}, LDL {count("LDL")}, STL {count("STL")}, '
          f'USETMAXREG {count("USETMAXREG")}, FFMA {count("FFMA")}, FMUL {count("FMUL")}, FSEL {count("FSEL")};{mix}')
