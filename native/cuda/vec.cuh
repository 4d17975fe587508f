// Vector loads and stores of 4 or 8 consecutive elements as f32 (f32 and bf16 get 8/16-byte accesses;
// other dtypes, or cnt short of the vector, go element by element through load_f32/store_f32).
// The caller guarantees alignment when it asks for the vector path (`vec`).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../core/dtype.h"

namespace dsk::cuda {

__host__ __device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__host__ __device__ __forceinline__ int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

__device__ __forceinline__ void bf16x2_to_f32(uint32_t w, float& a, float& b) {
  a = bits_f32(w << 16);
  b = bits_f32(w & 0xffff0000u);
}
__device__ __forceinline__ uint32_t f32x2_to_bf16(float a, float b) {
  return static_cast<uint32_t>(f32_to_bf16(a)) | (static_cast<uint32_t>(f32_to_bf16(b)) << 16);
}

// v[0..N) = p[i .. i+N) for N = 4 or 8; elements at or past `cnt` are left as 0.
template <int N>
__device__ __forceinline__ void load_vec(const void* p, DType dt, int64_t i, int cnt, bool vec, float* v) {
  static_assert(N == 4 || N == 8, "4 or 8 elements");
  if (vec && cnt == N) {
    if (dt == DType::F32) {
      const float4* s = reinterpret_cast<const float4*>(static_cast<const float*>(p) + i);
#pragma unroll
      for (int k = 0; k < N / 4; ++k) {
        float4 a = s[k];
        v[4 * k] = a.x; v[4 * k + 1] = a.y; v[4 * k + 2] = a.z; v[4 * k + 3] = a.w;
      }
      return;
    }
    if (dt == DType::BF16) {
      const uint16_t* s = static_cast<const uint16_t*>(p) + i;
      if (N == 8) {
        uint4 a = *reinterpret_cast<const uint4*>(s);
        bf16x2_to_f32(a.x, v[0], v[1]); bf16x2_to_f32(a.y, v[2], v[3]);
        bf16x2_to_f32(a.z, v[4], v[5]); bf16x2_to_f32(a.w, v[6], v[7]);
      } else {
        uint2 a = *reinterpret_cast<const uint2*>(s);
        bf16x2_to_f32(a.x, v[0], v[1]); bf16x2_to_f32(a.y, v[2], v[3]);
      }
      return;
    }
  }
#pragma unroll
  for (int k = 0; k < N; ++k) v[k] = k < cnt ? load_f32(p, dt, i + k) : 0.0f;
}

template <int N>
__device__ __forceinline__ void store_vec(void* p, DType dt, int64_t i, int cnt, bool vec, const float* v) {
  if (vec && cnt == N) {
    if (dt == DType::F32) {
      float4* d = reinterpret_cast<float4*>(static_cast<float*>(p) + i);
#pragma unroll
      for (int k = 0; k < N / 4; ++k) d[k] = make_float4(v[4 * k], v[4 * k + 1], v[4 * k + 2], v[4 * k + 3]);
      return;
    }
    if (dt == DType::BF16) {
      uint16_t* d = static_cast<uint16_t*>(p) + i;
      if (N == 8)
        *reinterpret_cast<uint4*>(d) = make_uint4(f32x2_to_bf16(v[0], v[1]), f32x2_to_bf16(v[2], v[3]),
                                                  f32x2_to_bf16(v[4], v[5]), f32x2_to_bf16(v[6], v[7]));
      else
        *reinterpret_cast<uint2*>(d) = make_uint2(f32x2_to_bf16(v[0], v[1]), f32x2_to_bf16(v[2], v[3]));
      return;
    }
  }
#pragma unroll
  for (int k = 0; k < N; ++k)
    if (k < cnt) store_f32(p, dt, i + k, v[k]);
}

// Whether rows starting at p + r*stride (elements of dt) are all aligned for N-element vectors.
inline bool vec_aligned(const void* p, DType dt, int64_t stride, int N) {
  int64_t bytes = static_cast<int64_t>(dtype_size(dt)) * N;
  if (dt != DType::F32 && dt != DType::BF16) return false;
  int64_t align = bytes > 16 ? 16 : bytes;
  return reinterpret_cast<uintptr_t>(p) % align == 0 && (stride * dtype_size(dt)) % align == 0;
}

}  // namespace dsk::cuda
