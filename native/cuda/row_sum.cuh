// Row sums on the GPU in the canonical order of native/math/row_sum.h, so they equal the CPU reference's
// bit for bit: a warp reduces a segment (lane l takes chunks l, l+32, ... of 8 elements, in order, then a
// xor butterfly); segment sums are added left to right. kBlock = false: the calling warp owns the row;
// kBlock = true: the whole block owns it, its warps take segments in turn and thread 0 adds their sums in
// segment order (scratch: 33 floats of shared memory; every thread must call).
#pragma once
#include <cuda_runtime.h>

#include "../math/row_sum.h"

namespace dsk::cuda {

__device__ __forceinline__ float butterfly_sum(float v) {
#pragma unroll
  for (int off = kSumLanes / 2; off >= 1; off >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// The sum of segment `seg` of a row of n elements, on every lane of the calling warp. chunk(acc, i0, cnt)
// adds elements i0 .. i0+cnt-1 (cnt <= 8) to acc in index order, with __fadd_rn.
template <class ChunkFn>
__device__ __forceinline__ float warp_segment_sum(int64_t seg, int64_t n, ChunkFn& chunk) {
  const int lane = threadIdx.x & 31;
  const int64_t base = seg * kSumSegment;
  float acc = 0.0f;
#pragma unroll 4
  for (int j = 0; j < kSumChunksPerLane; ++j) {
    int64_t i0 = base + static_cast<int64_t>(j * kSumLanes + lane) * kSumChunk;
    if (i0 < n) acc = chunk(acc, i0, static_cast<int>(n - i0 < kSumChunk ? n - i0 : kSumChunk));
  }
  return butterfly_sum(acc);
}

template <bool kBlock, class ChunkFn>
__device__ float row_sum(int64_t n, float* scratch, ChunkFn&& chunk) {
  const int lane = threadIdx.x & 31;
  const int warp = kBlock ? static_cast<int>(threadIdx.x >> 5) : 0;
  const int nw = kBlock ? static_cast<int>(blockDim.x >> 5) : 1;
  const int64_t nseg = (n + kSumSegment - 1) / kSumSegment;
  float total = 0.0f;
  for (int64_t s0 = 0; s0 < nseg; s0 += nw) {
    const int64_t seg = s0 + warp;
    float acc = 0.0f;
    if (seg < nseg) acc = warp_segment_sum(seg, n, chunk);
    if (kBlock) {
      if (lane == 0) scratch[warp] = acc;
      __syncthreads();
      if (threadIdx.x == 0)
        for (int w = 0; w < nw && s0 + w < nseg; ++w) total = s0 + w == 0 ? scratch[0] : __fadd_rn(total, scratch[w]);
      __syncthreads();
    } else {
      total = s0 == 0 ? acc : __fadd_rn(total, acc);
    }
  }
  if (kBlock) {
    if (threadIdx.x == 0) scratch[32] = total;
    __syncthreads();
    total = scratch[32];
    __syncthreads();
  }
  return total;
}

}  // namespace dsk::cuda
