// Wall-clock time on the device, for bounded waits.
//
// One instruction family: the %globaltimer special register (nanoseconds, the same clock on every SM of
// the GPU and independent of the SM clock frequency, unlike clock64, whose rate changes with boost).
//   globaltimer_ns   mov.u64 %r, %globaltimer
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
namespace dsk::ptx {

__device__ __forceinline__ uint64_t globaltimer_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

}  // namespace dsk::ptx
#endif
