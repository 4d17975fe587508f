// The one summation order for row sums (RMS norms, softmax denominators, sampling masses), followed by the
// CPU reference and the CUDA kernels so their sums agree bit for bit:
//   - the row is cut into segments of kSumSegment (4096) elements; segment sums are added left to right;
//   - inside a segment, chunks of kSumChunk (8) consecutive elements are dealt to kSumLanes (32) lanes,
//     chunk c to lane c % 32; each lane adds its elements in index order into an accumulator starting at 0;
//   - the 32 lane accumulators combine by a butterfly: for off = 16, 8, 4, 2, 1: acc[l] += acc[l ^ off];
//     every lane then holds the segment sum.
// On the GPU a warp reduces one segment (lane = lane), warps of a block take segments in turn and one
// thread adds their sums in segment order (native/cuda/row_sum.cuh). Adds are plain f32 adds (__fadd_rn on
// the device, -ffp-contract=off on the host), so nothing is fused or reordered.
#pragma once
#include <cstdint>

#include "portable_math.h"

namespace dsk {

constexpr int kSumLanes = 32;
constexpr int kSumChunk = 8;
constexpr int kSumSegment = 4096;
constexpr int kSumChunksPerLane = kSumSegment / (kSumLanes * kSumChunk);  // 16

// Host version. chunk(acc, i0, cnt) adds elements i0 .. i0+cnt-1 (cnt <= 8) to acc in index order and
// returns the new acc.
template <class ChunkFn>
inline float canonical_row_sum(int64_t n, ChunkFn&& chunk) {
  float total = 0.0f;
  for (int64_t base = 0; base < n; base += kSumSegment) {
    float lane[kSumLanes];
    for (int l = 0; l < kSumLanes; ++l) lane[l] = 0.0f;
    for (int j = 0; j < kSumChunksPerLane; ++j)
      for (int l = 0; l < kSumLanes; ++l) {
        int64_t i0 = base + static_cast<int64_t>(j * kSumLanes + l) * kSumChunk;
        if (i0 < n) lane[l] = chunk(lane[l], i0, static_cast<int>(n - i0 < kSumChunk ? n - i0 : kSumChunk));
      }
    for (int off = kSumLanes / 2; off >= 1; off >>= 1) {
      float next[kSumLanes];
      for (int l = 0; l < kSumLanes; ++l) next[l] = lane[l] + lane[l ^ off];
      for (int l = 0; l < kSumLanes; ++l) lane[l] = next[l];
    }
    total = base == 0 ? lane[0] : total + lane[0];
  }
  return total;
}

}  // namespace dsk
