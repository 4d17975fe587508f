// cp.async (LDGSTS): small asynchronous global->shared copies that complete on an mbarrier (sm_80+ / sm_90).
#pragma once
#include "common.h"

namespace dsk::ptx {

// cp.async.ca.shared.global [dst], [src], 4, src_bytes;  (src_bytes 0 -> writes zeros, reads nothing)
// dst is a shared-memory address.
__device__ __forceinline__ void cp_async_4(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(dst), "l"(src), "r"(valid ? 4 : 0) : "memory");
}

// cp.async.mbarrier.arrive.noinc.shared::cta.b64 [bar];  (arrive on `bar` once this thread's cp.asyncs land;
// .noinc: the arrival counts against the barrier's expected count)
__device__ __forceinline__ void cp_async_mbarrier_arrive_noinc(uint32_t bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(bar) : "memory");
}

// cp.async.cg.shared.global [dst], [src], 16;  (16 bytes, cached in L2 only; src and dst 16-byte aligned)
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src) : "memory");
}

}  // namespace dsk::ptx
