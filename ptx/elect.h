// elect.sync: pick one active lane of the warp (sm_90).
#pragma once
#include <cstdint>

namespace dsk::ptx {

// elect.sync _|p, 0xffffffff;  -> true in exactly one lane of the (fully active) warp.
__device__ __forceinline__ bool elect_one() {
  uint32_t pred;
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "elect.sync _|p, 0xffffffff;\n\t"
      "selp.u32 %0, 1, 0, p;\n\t}"
      : "=r"(pred));
  return pred != 0;
}

}  // namespace dsk::ptx
