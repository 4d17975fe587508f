// Named CTA barriers, so groups of warps inside one block synchronize without stopping the others.
//
// One instruction family: bar.sync with a barrier id and a thread count.
//   bar_sync(id, n)   bar.sync id, n   wait until n threads (a multiple of 32) arrived at barrier `id`
//                                      (0..15; 0 is the one __syncthreads uses with every thread).
// Memory operations before the barrier are visible to the participating threads after it, and a release
// by one participant afterwards covers them (cumulativity): the pattern "every warp writes, bar.sync,
// one lane publishes a counter with st.release.sys" is how a group hands a chunk to another GPU.
#pragma once

#if defined(__CUDACC__)
namespace dsk::ptx {

__device__ __forceinline__ void bar_sync(int id, int nthreads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(nthreads) : "memory");
}

}  // namespace dsk::ptx
#endif
