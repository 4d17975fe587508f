// Named CTA barriers: synchronize a subset of the block's warps (e.g. one warpgroup).
#pragma once
#include <cstdint>

namespace dsk::ptx {

// bar.sync id, count;  (id 1..15; 0 is __syncthreads; count a multiple of 32)
__device__ __forceinline__ void named_barrier_sync(uint32_t id, uint32_t count) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(count) : "memory");
}

}  // namespace dsk::ptx
