// Memory-model operations at system scope, for counters shared by GPUs (and the host) over NVLink/PCIe.
//
// One instruction family: ordered loads/stores/fences with .sys scope (PTX memory consistency model).
//   ld_acquire_sys_u64   ld.acquire.sys.global.u64   read a counter; later reads see what the writer
//                                                    published before its release store
//   st_release_sys_u64   st.release.sys.global.u64   publish a counter after this CTA's prior writes
//                                                    (ordered before it by bar.sync) to the peer
//   st_relaxed_sys_u64   st.relaxed.sys.global.u64   publish with no ordering (a value nobody reads data by)
//   ld_relaxed_sys_u32   ld.relaxed.sys.global.u32   poll a flag in host-mapped memory (abort word)
//   st_release_sys_u32 / ld_acquire_sys_u32           32-bit variants (notify flags)
//   atom_cas_sys_u32     atom.cas.sys.global.b32     first-writer-wins on a shared failure word
//   fence_acq_rel_sys    fence.acq_rel.sys           order a thread's earlier writes before its later ones
//                                                    for every observer in the system
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
namespace dsk::ptx {

__device__ __forceinline__ uint64_t ld_acquire_sys_u64(const uint64_t* p) {
  uint64_t v;
  asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void st_release_sys_u64(uint64_t* p, uint64_t v) {
  asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ void st_relaxed_sys_u64(uint64_t* p, uint64_t v) {
  asm volatile("st.relaxed.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ uint32_t ld_acquire_sys_u32(const uint32_t* p) {
  uint32_t v;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void st_release_sys_u32(uint32_t* p, uint32_t v) {
  asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ uint32_t ld_relaxed_sys_u32(const uint32_t* p) {
  uint32_t v;
  asm volatile("ld.relaxed.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ uint32_t atom_cas_sys_u32(uint32_t* p, uint32_t expected, uint32_t desired) {
  uint32_t old;
  asm volatile("atom.cas.sys.global.b32 %0, [%1], %2, %3;" : "=r"(old) : "l"(p), "r"(expected), "r"(desired) : "memory");
  return old;
}
__device__ __forceinline__ void fence_acq_rel_sys() { asm volatile("fence.acq_rel.sys;" ::: "memory"); }

}  // namespace dsk::ptx
#endif
