// Global loads and stores with explicit cache behaviour, for bulk copies of token rows between GPUs.
//
// One instruction family: ld.global / st.global with cache-eviction qualifiers.
//   ld_nc_na_*   ld.global.nc.L1::no_allocate.L2::256B  read-only (non-coherent) path, no L1 allocation,
//                                                       L2 prefetch of the surrounding 256 bytes. For data
//                                                       that nothing writes while the kernel runs (the
//                                                       token rows being sent, the expert outputs).
//   ld_na_*      ld.global.L1::no_allocate              coherent weak load that does not allocate in L1: for
//                                                       ring-buffer slots, which a peer rewrites while the
//                                                       kernel runs (read after an acquire of their tail).
//   st_na_*      st.global.L1::no_allocate              plain weak store that does not allocate in L1: the
//                                                       data is for another GPU or a later kernel.
//   ld_plain_*   ld.global                              ordinary weak load (metadata beside the payload).
// All take generic pointers to global memory (local or a peer's memory mapped through CUDA IPC).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
namespace dsk::ptx {

__device__ __forceinline__ int4 ld_nc_na_v4(const int4* p) {
  int4 v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.s32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
__device__ __forceinline__ int32_t ld_nc_na_b32(const int32_t* p) {
  int32_t v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.s32 %0, [%1];" : "=r"(v) : "l"(p));
  return v;
}
__device__ __forceinline__ float ld_nc_na_f32(const float* p) {
  float v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.f32 %0, [%1];" : "=f"(v) : "l"(p));
  return v;
}
__device__ __forceinline__ int4 ld_na_v4(const int4* p) {
  int4 v;
  asm volatile("ld.global.L1::no_allocate.v4.s32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
__device__ __forceinline__ int32_t ld_na_b32(const int32_t* p) {
  int32_t v;
  asm volatile("ld.global.L1::no_allocate.s32 %0, [%1];" : "=r"(v) : "l"(p));
  return v;
}
__device__ __forceinline__ float ld_na_f32(const float* p) {
  float v;
  asm volatile("ld.global.L1::no_allocate.f32 %0, [%1];" : "=f"(v) : "l"(p));
  return v;
}
__device__ __forceinline__ void st_na_v4(int4* p, int4 v) {
  asm volatile("st.global.L1::no_allocate.v4.s32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
               : "memory");
}
__device__ __forceinline__ void st_na_b32(int32_t* p, int32_t v) {
  asm volatile("st.global.L1::no_allocate.s32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ void st_na_f32(float* p, float v) {
  asm volatile("st.global.L1::no_allocate.f32 [%0], %1;" ::"l"(p), "f"(v) : "memory");
}
__device__ __forceinline__ int32_t ld_plain_b32(const int32_t* p) {
  int32_t v;
  asm volatile("ld.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ float ld_plain_f32(const float* p) {
  float v;
  asm volatile("ld.global.f32 %0, [%1];" : "=f"(v) : "l"(p) : "memory");
  return v;
}

}  // namespace dsk::ptx
#endif
