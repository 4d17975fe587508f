// Helpers shared by the portable CUDA kernels.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../core/runtime.h"

namespace dsk::cuda {

inline cudaStream_t to_cuda(Stream s) { return reinterpret_cast<cudaStream_t>(s); }

// Grid for a grid-stride loop over n items: enough blocks to fill the GPU, never more than needed.
inline unsigned grid_for(int64_t n, int threads, int max_blocks = 132 * 16) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b < max_blocks ? b : max_blocks);
}

#define DSK_GRID_STRIDE(i, n) \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += static_cast<int64_t>(gridDim.x) * blockDim.x)

}  // namespace dsk::cuda
