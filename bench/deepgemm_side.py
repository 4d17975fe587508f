"""DeepGEMM (shared/anchors, July 2025) on the shapes of bench/gemm.ts, for the side-by-side in bench/NOTES.md.

Run on the GPU machine beside `npm run bench:gemm`, with the anchors unpacked as deepgemm_bench.py's
docstring says (PYTHONPATH=/tmp/dg2, deepgemm_bench.py importable):
    python3 deepgemm_side.py warm PART NPARTS     # JIT-compile this part's kernels (run parts in parallel)
    python3 deepgemm_side.py time out.json        # time everything (cache warm), write JSON rows
    python3 deepgemm_side.py hold S               # each shape back to back for S seconds (bench/gemm_clock.sh)
Each row: DeepGEMM kernel time from the profiler's device timeline with a 256 MB L2 flush before each call
(deepgemm_bench.py's method), the same calls timed as a CUDA graph of [flush, call] minus a graph of flushes
(bench/harness.ts's method), and for the normal shapes torch._scaled_mm (cuBLASLt) by the profiler method.
"""
import json, os, statistics, sys, torch
import cuda.bindings.nvrtc  # noqa: F401  (before deep_gemm, as its tests do)
import deep_gemm
from deep_gemm import get_col_major_tma_aligned_tensor
from deepgemm_bench import per_token, per_block, kernel_seconds

NORMAL = [(64, 2112, 7168), (64, 24576, 1536), (64, 32768, 512), (64, 7168, 16384), (64, 4096, 7168), (64, 7168, 2048),
          (128, 2112, 7168), (128, 24576, 1536), (128, 7168, 16384), (4096, 2112, 7168), (4096, 24576, 1536),
          (4096, 32768, 512), (4096, 7168, 16384), (4096, 4096, 7168), (4096, 7168, 2048)]
SHAPES = [dict(kind='normal', groups=1, m=m, n=n, k=k) for m, n, k in NORMAL] + [
    dict(kind='contiguous', groups=4, m=8192, n=4096, k=7168), dict(kind='contiguous', groups=4, m=8192, n=7168, k=2048),
    dict(kind='contiguous', groups=8, m=4096, n=4096, k=7168), dict(kind='contiguous', groups=8, m=4096, n=7168, k=2048),
    dict(kind='masked', groups=1, m=1024, n=4096, k=7168), dict(kind='masked', groups=1, m=1024, n=7168, k=2048),
    dict(kind='masked', groups=2, m=512, n=4096, k=7168), dict(kind='masked', groups=2, m=512, n=7168, k=2048),
    dict(kind='masked', groups=4, m=256, n=4096, k=7168), dict(kind='masked', groups=4, m=256, n=7168, k=2048)]

# DSK_GEMM_EXTRA_SHAPES ("MxNxK,c:GxMxNxK,..."), as bench/gemm.ts reads it: the same extra shapes at the same
# indices (25 on), so that DG_SHAPES can name them.
for x in filter(None, (y.strip() for y in os.environ.get('DSK_GEMM_EXTRA_SHAPES', '').split(','))):
    dims = [int(d) for d in (x[2:] if x.startswith('c:') else x).split('x')]
    if x.startswith('c:'):
        SHAPES.append(dict(kind='contiguous', groups=dims[0], m=dims[1], n=dims[2], k=dims[3]))
    else:
        SHAPES.append(dict(kind='normal', groups=1, m=dims[0], n=dims[1], k=dims[2]))

if os.environ.get('DG_SHAPES'):  # e.g. DG_SHAPES=0,1,2: only these shapes (indices as in bench/gemm.ts)
    SHAPES = [SHAPES[int(i)] for i in os.environ['DG_SHAPES'].split(',')]


def setup(s):
    g, m, n, k = s['groups'], s['m'], s['n'], s['k']
    rows = g * m
    a = torch.randn(rows, k, device='cuda', dtype=torch.bfloat16)
    a8, sa = per_token(a)
    bs = [per_block(torch.randn(n, k, device='cuda', dtype=torch.bfloat16)) for _ in range(g)]
    b8 = torch.stack([x[0] for x in bs]) if g > 1 or s['kind'] != 'normal' else bs[0][0]
    sb = torch.stack([x[1] for x in bs]) if g > 1 or s['kind'] != 'normal' else bs[0][1]
    if s['kind'] == 'normal':
        d = torch.empty(m, n, device='cuda', dtype=torch.bfloat16)
        sa_t = get_col_major_tma_aligned_tensor(sa)
        fn = lambda: deep_gemm.gemm_fp8_fp8_bf16_nt((a8, sa_t), (b8, sb), d)
        sa_cl = sa.t().contiguous().t()
        cl = lambda: torch._scaled_mm(a8, b8.t(), scale_a=sa_cl, scale_b=sb.t(), out_dtype=torch.bfloat16)
        return fn, cl
    if s['kind'] == 'contiguous':
        d = torch.empty(rows, n, device='cuda', dtype=torch.bfloat16)
        idx = torch.arange(rows, device='cuda', dtype=torch.int32) // m
        sa_t = get_col_major_tma_aligned_tensor(sa)
        return (lambda: deep_gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a8, sa_t), (b8, sb), d, idx)), None
    a8, sa = a8.view(g, m, k), sa.view(g, m, k // 128)
    d = torch.empty(g, m, n, device='cuda', dtype=torch.bfloat16)
    mm = torch.full((g,), m, device='cuda', dtype=torch.int32)
    sa_t = get_col_major_tma_aligned_tensor(sa)
    return (lambda: deep_gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((a8, sa_t), (b8, sb), d, mm, m)), None


def graph_us(fn, calls, replays=9):
    flush = torch.empty(int(256e6 // 4), dtype=torch.int, device='cuda')
    fn()
    torch.cuda.synchronize()
    graphs = []
    for with_calls in (True, False):
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(calls):
                flush.zero_()
                if with_calls:
                    fn()
        graphs.append(g)
    times = ([], [])
    for _ in range(replays):
        for i, g in enumerate(graphs):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            g.replay()
            e1.record()
            e1.synchronize()
            times[i].append(e0.elapsed_time(e1))
    return (statistics.median(times[0]) - statistics.median(times[1])) * 1000 / calls


def main():
    mode = sys.argv[1]
    if mode == 'warm':
        part, nparts = int(sys.argv[2]), int(sys.argv[3])
        for i, s in enumerate(SHAPES):
            if i % nparts == part:
                fn, _ = setup(s)
                fn()
                torch.cuda.synchronize()
                print('warm', s, flush=True)
        return
    if mode == 'hold':  # each shape back to back (no flush) for S seconds: clock / power sampling (gemm_clock.sh)
        import time
        for s in SHAPES:
            fn, _ = setup(s)
            fn()
            torch.cuda.synchronize()
            t0, calls = time.time(), 0
            while time.time() - t0 < float(sys.argv[2]):
                for _ in range(50):
                    fn()
                calls += 50
                torch.cuda.synchronize()
            label = f"{s['m']}x{s['n']}x{s['k']}" if s['kind'] == 'normal' else f"{s['kind'][0]}:{s['groups']}x{s['m']}x{s['n']}x{s['k']}"
            print(f'hold {label} {int(t0 * 1000)} {int(time.time() * 1000)} {calls}', flush=True)
        return
    out, rows = sys.argv[2], []
    for s in SHAPES:
        fn, cl = setup(s)
        flops = 2 * s['groups'] * s['m'] * s['n'] * s['k']
        calls = 6 if flops > 3e14 else 12 if flops > 5e13 else 30
        row = dict(s)
        row['deepgemm_us'] = kernel_seconds(fn) * 1e6
        try:
            row['deepgemm_graph_us'] = graph_us(fn, calls)
        except Exception as e:  # noqa: BLE001
            row['deepgemm_graph_error'] = str(e)[:200]
        if cl is not None:
            try:
                row['torch_cublaslt_us'] = kernel_seconds(cl) * 1e6
            except Exception as e:  # noqa: BLE001
                row['torch_cublaslt_error'] = str(e)[:200]
        rows.append(row)
        print(f"{s['kind']:10} {s['groups']}x{s['m']}x{s['n']}x{s['k']}: DeepGEMM {row['deepgemm_us']:.1f} us "
              f"({flops / row['deepgemm_us'] / 1e6:.0f} TF/s), graph {row.get('deepgemm_graph_us', float('nan')):.1f} us, "
              f"cuBLASLt(torch) {row.get('torch_cublaslt_us', float('nan')):.1f} us", flush=True)
        torch.cuda.empty_cache()
        json.dump(rows, open(out, 'w'), indent=1)  # after every shape: a time limit keeps what was measured


if __name__ == '__main__':
    main()
