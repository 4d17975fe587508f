// One-dimensional bulk copies between global and shared memory by the SM's copy engine (TMA), sm_90.
//
// One instruction family: cp.async.bulk (non-tensor). A single thread moves a whole token row; the data
// does not pass through registers, so a warp keeps many kilobytes in flight with one instruction.
//   bulk_load_1d(smem, gmem, bytes, mbar)  cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes
//                                          (completion is signalled on the mbarrier as transaction bytes)
//   bulk_store_1d(gmem, smem, bytes)       cp.async.bulk.global.shared::cta.bulk_group
//   bulk_commit()                          cp.async.bulk.commit_group   (closes a group of stores)
//   bulk_wait_read0()                      cp.async.bulk.wait_group.read 0  (the stores have read the
//                                          shared memory: the buffer can be refilled)
//   bulk_wait_read1()                      cp.async.bulk.wait_group.read 1  (all but the newest group have)
//   bulk_wait0()                           cp.async.bulk.wait_group 0   (the stores are complete)
//   fence_proxy_async_global()             fence.proxy.async.global     (global data this thread acquired
//                                          through the generic proxy, e.g. a ring slot after an acquire of
//                                          its tail, is then seen by the bulk loads it issues)
// bytes: a multiple of 16; addresses 16-byte aligned. smem arguments are shared-window addresses
// (__cvta_generic_to_shared).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
namespace dsk::ptx {

__device__ __forceinline__ void bulk_load_1d(uint32_t smem, const void* gmem, uint32_t bytes, uint32_t mbar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(smem), "l"(gmem),
               "r"(bytes), "r"(mbar)
               : "memory");
#endif
}
__device__ __forceinline__ void bulk_store_1d(void* gmem, uint32_t smem, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(gmem), "r"(smem), "r"(bytes) : "memory");
#endif
}
__device__ __forceinline__ void bulk_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
#endif
}
__device__ __forceinline__ void bulk_wait_read0() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
#endif
}
__device__ __forceinline__ void bulk_wait_read1() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.wait_group.read 1;" ::: "memory");
#endif
}
__device__ __forceinline__ void bulk_wait0() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
#endif
}

__device__ __forceinline__ void fence_proxy_async_global() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.global;" ::: "memory");
#endif
}

}  // namespace dsk::ptx
#endif
