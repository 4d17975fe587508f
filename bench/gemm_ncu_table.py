"""Per shape, our FP8 GEMM kernel against DeepGEMM's from bench/gemm_ncu.sh NCU_MODE=roof logs (ncu --metrics, one
launch each, clocks locked by ncu): cycles, clock, tensor-pipe and shared-memory bank utilization, DRAM / L2 bytes,
instructions. Usage: python3 bench/gemm_ncu_table.py LOGDIR SHAPE_INDEX ..."""
import os, sys

COLS = [('gpu__time_duration.sum', 'us', 1e-3), ('sm__cycles_elapsed.max', 'kcycles', 1e-3),
        ('sm__cycles_elapsed.avg.per_second', 'GHz', 1e-9),
        # (ncu 2025 on GH100 knows no gmma cycles metric; its hmma, tensor and shared pipe cycles read the same value)
        ('sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_elapsed', 'tensor pipe %', 1),
        ('l1tex__data_bank_reads.avg.pct_of_peak_sustained_elapsed', 'smem rd %', 1),
        ('l1tex__data_bank_writes.avg.pct_of_peak_sustained_elapsed', 'smem wr %', 1),
        ('dram__bytes_read.sum', 'DRAM rd MB', 1e-6), ('dram__bytes_write.sum', 'DRAM wr MB', 1e-6),
        ('lts__t_bytes.sum', 'L2 MB', 1e-6), ('lts__t_sector_hit_rate.pct', 'L2 hit %', 1),
        ('smsp__inst_executed.sum', 'M inst', 1e-6), ('smsp__issue_active.avg.pct_of_peak_sustained_elapsed', 'issue %', 1)]
UNIT = {'ns': 1, 'us': 1e3, 'ms': 1e6, 'usecond': 1e3, 'nsecond': 1, 'msecond': 1e6, 'cycle': 1, 'byte': 1, 'Kbyte': 1e3,
        'Mbyte': 1e6, 'Gbyte': 1e9, 'KB': 1e3, 'MB': 1e6, 'GB': 1e9, '%': 1, 'hz': 1, 'Khz': 1e3, 'Mhz': 1e6, 'Ghz': 1e9,
        'cycle/nsecond': 1e9, 'cycle/usecond': 1e6, 'cycle/second': 1, 'inst': 1, 'Kinst': 1e3, 'Minst': 1e6,
        'Ginst': 1e9, 'Kcycle': 1e3, 'Mcycle': 1e6, 'sector': 1, 'Ksector': 1e3, 'Msector': 1e6}


def read(path):
    vals = {}
    if not os.path.exists(path):
        return vals
    for line in open(path, errors='replace'):
        parts = line.split()
        if len(parts) >= 2 and '__' in parts[0]:
            name, unit, num = parts[0], parts[-2] if len(parts) >= 3 else '', parts[-1].replace(',', '')
            try:
                v = float(num)
            except ValueError:
                continue
            vals[name] = v * UNIT.get(unit, 1)
    return vals


out, shapes = sys.argv[1], sys.argv[2:]
print('| shape | kernel | ' + ' | '.join(c[1] for c in COLS) + ' |')
print('|---|---|' + '---|' * len(COLS))
for s in shapes:
    for who in ('ours', 'deepgemm'):
        v = read(os.path.join(out, f'{who}_{s}.txt'))
        cells = []
        for key, _, scale in COLS:
            if key in v:
                x = v[key] * scale
                cells.append(f'{x:.3g}' if x < 100 else f'{x:.0f}')
            else:
                cells.append('-')
        print(f'| {s} | {who} | ' + ' | '.join(cells) + ' |')
