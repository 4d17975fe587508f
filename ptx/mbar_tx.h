// Transaction-count mbarriers in shared memory, to wait for bulk copies (ptx/bulk_copy.h), sm_90.
//
// One instruction family: mbarrier (arrival count + transaction bytes, phase parity).
//   mbar_init(mbar, count)              mbarrier.init.shared::cta.b64
//   mbar_init_fence()                   fence.mbarrier_init.release.cluster + fence.proxy.async.shared::cta
//                                       (make the initialized barrier visible to the copy engine)
//   mbar_arrive_expect_tx(mbar, bytes)  mbarrier.arrive.expect_tx.shared::cta.b64 (arrive and announce the
//                                       bytes a bulk load will complete)
//   mbar_wait(mbar, phase)              mbarrier.try_wait.parity.shared::cta.b64 in a loop (the phase
//                                       with this parity has completed)
// mbar is a shared-window address of an 8-byte aligned u64.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
namespace dsk::ptx {

__device__ __forceinline__ void mbar_init(uint32_t mbar, uint32_t count) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(mbar), "r"(count) : "memory");
#endif
}
__device__ __forceinline__ void mbar_init_fence() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.mbarrier_init.release.cluster;\n\tfence.proxy.async.shared::cta;" ::: "memory");
#endif
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t mbar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(mbar), "r"(bytes) : "memory");
#endif
}
__device__ __forceinline__ void mbar_wait(uint32_t mbar, uint32_t phase) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "{\n\t.reg .pred p;\n"
      "WAIT_%=:\n\t"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n\t"
      "@!p bra WAIT_%=;\n}" ::"r"(mbar),
      "r"(phase)
      : "memory");
#endif
}

}  // namespace dsk::ptx
#endif
