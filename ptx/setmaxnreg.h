// setmaxnreg (sm_90a): move registers between warpgroups (producer down, math warpgroups up).
#pragma once

namespace dsk::ptx {

// setmaxnreg.inc.sync.aligned.u32 N;
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(N) : "memory");
}

// setmaxnreg.dec.sync.aligned.u32 N;
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(N) : "memory");
}

}  // namespace dsk::ptx
