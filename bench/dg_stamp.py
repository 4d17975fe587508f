#!/usr/bin/env python3
"""Stamp CTA 0 of DeepGEMM's FP8 GEMM kernel (the July 2025 anchor) with clock64, to set its prologue and tail beside
ours (bench/NOTES.md, "v17": at one tile per CTA our kernel takes 3.5-4k cycles more than DeepGEMM's at every K).

    python3 bench/dg_stamp.py /tmp/dg2     # patches deep_gemm/include/deep_gemm/fp8_gemm.cuh in place (once)

A diagnostic only: the patched kernel prints one line per launch from CTA 0's first math thread (launches 2-4 of
each JIT-compiled kernel, so a timing loop does not flood), ticks from the thread's first instruction:
    dsk-stamps cluster <producer after the cluster barrier> issued <producer: first stage's loads issued>
    full <math thread 0: first full wait done> stored <last tile's TMA store issued> drained <producer: last empty
    round done> end <math thread 0 at its end>
Our kernel's counterparts come from the trace build with bench/data/v17/prologue_stamps.patch (bench/gemm_trace.ts).
Each edit anchors on an exact line of the anchor's source and fails loudly if the line is not there.
"""
import pathlib
import sys

MARK = '// dsk-stamps'

EDITS = [
    # (anchor line, text inserted after it)
    ('    const uint32_t lane_idx = get_lane_id();\n',
     f'    {MARK}: per-thread start; [0..5] the stamps, [6] the launch index (thread 0)\n'
     '    const long long dsk_t0 = clock64();\n'
     '    __shared__ long long dsk_st[8];\n'
     '    if (threadIdx.x == 0) {\n'
     '        for (int i = 0; i < 6; ++ i) dsk_st[i] = 0;\n'
     '        dsk_st[6] = blockIdx.x == 0 ? atomicAdd(&dsk_launches, 1u) : 0;\n'
     '    }\n'),
    ('    (kNumTMAMulticast > 1) ? cute::cluster_sync() : __syncthreads();\n',
     f'    if (threadIdx.x == kNumMathThreads) dsk_st[0] = clock64() - dsk_t0;  {MARK}\n'),
    ('                        full_barrier.arrive_and_expect_tx(SMEM_A_SIZE_PER_STAGE + SMEM_B_SIZE_PER_STAGE + SMEM_SCALES_A_SIZE_PER_STAGE);\n',
     f'                        if (dsk_st[1] == 0) dsk_st[1] = clock64() - dsk_t0;  {MARK}\n'),
    ('                    full_barriers[s]->wait((scheduler.current_iter * kNumIterations + k_iter) & 1);\n\n'
     '                    // TODO: remove some useless computation for unaligned Ms\n',
     f'                    if (threadIdx.x == 0 and dsk_st[2] == 0) dsk_st[2] = clock64() - dsk_t0;  {MARK}\n'),
    ('                cute::tma_store_arrive();\n            }\n',
     f'            if (threadIdx.x == 0) dsk_st[3] = clock64() - dsk_t0;  {MARK}\n'),
    ('                    empty_barriers[s]->wait((scheduler.current_iter * kNumIterations + 1) & 1);\n            }\n',
     f'            if (threadIdx.x == kNumMathThreads) *reinterpret_cast<volatile long long*>(&dsk_st[4]) = clock64() - dsk_t0;  {MARK}\n'),
    ('            __syncwarp();\n        }\n    }\n',
     f'    {MARK}: math thread 0 of CTA 0 waits for the producer\'s last stamp, then prints\n'
     '    if (threadIdx.x == 0 and blockIdx.x == 0 and dsk_st[6] >= 2 and dsk_st[6] < 5) {\n'
     '        while (kNumTMAMulticast > 1 and *reinterpret_cast<volatile long long*>(&dsk_st[4]) == 0) {}\n'
     '        printf("dsk-stamps launch %lld cluster %lld issued %lld full %lld stored %lld drained %lld end %lld\\n", dsk_st[6],\n'
     '               dsk_st[0], dsk_st[1], dsk_st[2], dsk_st[3], dsk_st[4], clock64() - dsk_t0);\n'
     '    }\n'),
]
# the launch counter, a file-scope device variable (one per JIT-compiled module)
PRELUDE = ('namespace deep_gemm {\n', f'namespace deep_gemm {{\n\n__device__ unsigned dsk_launches = 0;  {MARK}\n')


def main() -> None:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else '/tmp/dg2')
    path = root / 'deep_gemm' / 'include' / 'deep_gemm' / 'fp8_gemm.cuh'
    src = path.read_text()
    if MARK in src:
        print(f'{path}: already stamped')
        return
    if src.count(PRELUDE[0]) != 1:
        sys.exit(f'{path}: the namespace line is not there once')
    src = src.replace(PRELUDE[0], PRELUDE[1])
    for anchor, text in EDITS:
        if src.count(anchor) != 1:
            sys.exit(f'{path}: anchor not found exactly once: {anchor.strip()[:80]}')
        src = src.replace(anchor, anchor + text)
    path.write_text(src)
    print(f'{path}: stamped ({len(EDITS)} places)')


if __name__ == '__main__':
    main()
