"""Warp-stall samples of one kernel from `ncu --section SourceCounters --page source --csv --print-source sass`
(bench/gemm_ncu.sh NCU_MODE=stall): per SASS opcode, and with --listing N the instructions executed at least N
times (the K loop) in address order, each with its samples and its fixed-latency (`wait`), short- and
long-scoreboard stalls: which dependency chains the math warps wait on between two K blocks' WGMMAs.
With --by-count the samples are also grouped by how often their instruction ran (power-of-two buckets): with T tiles
and KB K blocks per tile, the K loop's instructions run ~T x KB x warps times and the tile's ~T x warps, so the
buckets split the time between the K loop and the work around it (prologue, epilogue, scheduling).
Usage: python3 bench/ncu_stall_by_opcode.py FILE [TOP] [--listing MIN_EXECUTIONS] [--by-count] [--exec-range LO HI]"""
import argparse, csv, collections, io, sys

ap = argparse.ArgumentParser(description='warp-stall samples per SASS opcode (and the K loop listing) of one ncu log')
ap.add_argument('file')
ap.add_argument('top', nargs='?', type=int, default=16, help='opcodes to print')
ap.add_argument('--listing', type=int, metavar='MIN_EXECUTIONS', help='also list instructions executed this often')
ap.add_argument('--by-count', action='store_true', help='samples per execution-count bucket, with their top opcodes')
ap.add_argument('--exec-range', type=int, nargs=2, metavar=('LO', 'HI'),
                help='list every instruction executed LO..HI times, in address order, with its top stall reasons')
opts = ap.parse_args()
path, top, listing = opts.file, opts.top, opts.listing
text = open(path, errors='replace').read()
start = text.find('"Address"')
if start < 0:
    sys.exit(f'{path}: no source table')
rows = list(csv.reader(io.StringIO(text[start:])))
head = rows[0]
col = {h: i for i, h in enumerate(head)}
for need in ('Source', 'Warp Stall Sampling (All Samples)', 'Instructions Executed'):
    if need not in col:
        sys.exit(f'{path}: no "{need}" column')


def num(r, name):
    try:
        return float(r[col[name]].replace(',', '')) if name in col else 0.0
    except ValueError:
        return 0.0


def opcode(r):
    ins = r[col['Source']].strip()
    if ins.startswith('@'):
        ins = ins.split(None, 1)[1] if ' ' in ins else ins
    return ins.split()[0] if ins else '?'


rows = [r for r in rows[1:] if len(r) >= len(head)]
by = collections.Counter()
for r in rows:
    by[opcode(r)] += num(r, 'Warp Stall Sampling (All Samples)')
total = sum(by.values()) or 1
print(f'{path}: {total:.0f} samples')
for op, n in by.most_common(top):
    print(f'  {op:40s} {n:8.0f} {100 * n / total:5.1f}%')
if listing is not None:
    print(f'instructions executed >= {listing} times: samples all / wait / short_sb / long_sb')
    for r in rows:
        if num(r, 'Instructions Executed') >= listing:
            print(f"  {r[col['Address']][-6:]} {num(r, 'Warp Stall Sampling (All Samples)'):6.0f} {num(r, 'stall_wait'):5.0f} "
                  f"{num(r, 'stall_short_sb'):5.0f} {num(r, 'stall_long_sb'):5.0f}  {r[col['Source']].strip()}")
if opts.by_count:
    buckets = collections.defaultdict(lambda: [0.0, 0, collections.Counter()])
    for r in rows:
        n = num(r, 'Instructions Executed')
        if n <= 0:
            continue
        b = buckets[int(n).bit_length() - 1]
        smp = num(r, 'Warp Stall Sampling (All Samples)')
        b[0] += smp
        b[1] += 1
        b[2][opcode(r)] += smp
    print('samples by execution count (bucket [2^b, 2^(b+1))): samples, share, instructions, top opcodes by samples')
    for k in sorted(buckets):
        smp, cnt, ops = buckets[k]
        tops = ', '.join(f'{o} {v:.0f}' for o, v in ops.most_common(5))
        print(f'  2^{k:<2d} {smp:8.0f} {100 * smp / total:5.1f}% {cnt:5d}  {tops}')
if opts.exec_range:
    lo, hi = opts.exec_range
    reasons = [h for h in head if h.startswith('stall_') and not h.endswith('_pct')]
    print(f'instructions executed {lo}..{hi} times: executions, samples, top stall reasons')
    for r in rows:
        n = num(r, 'Instructions Executed')
        if lo <= n <= hi:
            top3 = sorted(((num(r, x), x[6:]) for x in reasons), reverse=True)[:3]
            why = ' '.join(f'{x}={v:.0f}' for v, x in top3 if v > 0)
            print(f"  {r[col['Address']][-6:]} {n:7.0f} {num(r, 'Warp Stall Sampling (All Samples)'):5.0f}  {r[col['Source']].strip()[:70]:70s} {why}")
