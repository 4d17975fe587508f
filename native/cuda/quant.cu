// FP8 quantization and SwiGLU. The formulas live in native/core (fp8_quant.h, swiglu.h) and use unfused
// f32 operations, so these kernels give the CPU reference's bits. amax is a max, which any reduction
// order computes exactly.
#include "../math/fp8_quant.h"
#include "../math/swiglu.h"
#include "common.cuh"
#include "quant.h"
#include "vec.cuh"

namespace dsk::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float warp_amax(float m) {
#pragma unroll
  for (int off = 16; off >= 1; off >>= 1) m = amax_combine(m, __shfl_xor_sync(0xffffffffu, m, off));
  return m;
}

// Packs 4 fp8 codes of v quantized with scale s into one little-endian word.
__device__ __forceinline__ uint32_t quantize4(const float* v, float s) {
  return static_cast<uint32_t>(fp8_quantize(v[0], s)) | (static_cast<uint32_t>(fp8_quantize(v[1], s)) << 8) |
         (static_cast<uint32_t>(fp8_quantize(v[2], s)) << 16) | (static_cast<uint32_t>(fp8_quantize(v[3], s)) << 24);
}

// Row-tile inputs: the plain tensor, or swiglu(gate, up) computed on the fly.
struct PlainInput {
  const void* x; int64_t stride; DType dt; bool vec;
  __device__ bool skip(int64_t) const { return false; }
  __device__ void load4(int64_t r, int64_t k, float* v) const { load_vec<4>(x, dt, r * stride + k, 4, vec, v); }
};
struct SwigluInput {
  const void* g; int64_t gs; const void* u; int64_t us; DType dt; bool vec;
  const int32_t* m_indices;  // optional: rows with a negative entry (contiguous-layout padding) are skipped
  __device__ bool skip(int64_t r) const { return m_indices && m_indices[r] < 0; }
  __device__ void load4(int64_t r, int64_t k, float* v) const {
    float a[4], b[4];
    load_vec<4>(g, dt, r * gs + k, 4, vec, a);
    load_vec<4>(u, dt, r * us + k, 4, vec, b);
#pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = swiglu_f32(a[i], b[i]);
  }
};

// One warp per 1x128 tile: each lane holds 4 consecutive values, the warp reduces amax, every lane
// quantizes its 4 and stores them as one word; lane 0 stores the scale.
template <class In>
__global__ void quantize_rows_kernel(In in, int64_t rows, int64_t K, uint8_t* q, float* scale) {
  const int lane = threadIdx.x & 31;
  const int64_t tiles_per_row = K / kQuantBlock, tiles = rows * tiles_per_row;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; t < tiles; t += warps) {
    int64_t r = t / tiles_per_row, k = (t % tiles_per_row) * kQuantBlock + lane * 4;
    if (in.skip(r)) continue;  // the whole warp: r is the same for all lanes
    float v[4];
    in.load4(r, k, v);
    float m = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; ++i) m = amax_update(m, v[i]);
    float s = fp8_scale_for(warp_amax(m));
    *reinterpret_cast<uint32_t*>(q + r * K + k) = quantize4(v, s);
    if (lane == 0) scale[t] = s;
  }
}

// One block per 128x128 weight block; warp w takes rows w, w+8, ..., lane takes 4 consecutive columns.
// Two passes over the block: amax, then quantize (the second read comes from L2).
__global__ void quantize_weight_kernel(const void* w, DType dt, int64_t N, int64_t K, bool vec, uint8_t* q, float* scale) {
  __shared__ float warp_max[kThreads / 32];
  const int64_t kb = (K + kQuantBlock - 1) / kQuantBlock;
  const int64_t n0 = blockIdx.x / kb * kQuantBlock, k0 = blockIdx.x % kb * kQuantBlock;
  const int64_t n1 = min64(n0 + kQuantBlock, N), k1 = min64(k0 + kQuantBlock, K);
  const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
  const int64_t k = k0 + lane * 4;
  const int cnt = static_cast<int>(k < k1 ? min64(4, k1 - k) : 0);
  float m = 0.0f;
  for (int64_t n = n0 + warp; n < n1; n += kThreads / 32) {
    if (!cnt) break;
    float v[4];
    load_vec<4>(w, dt, n * K + k, cnt, vec, v);
#pragma unroll
    for (int i = 0; i < 4; ++i)
      if (i < cnt) m = amax_update(m, v[i]);
  }
  m = warp_amax(m);
  if (lane == 0) warp_max[warp] = m;
  __syncthreads();
  m = 0.0f;
#pragma unroll
  for (int i = 0; i < kThreads / 32; ++i) m = amax_combine(m, warp_max[i]);
  const float s = fp8_scale_for(m);
  if (threadIdx.x == 0) scale[blockIdx.x] = s;
  for (int64_t n = n0 + warp; n < n1; n += kThreads / 32) {
    if (!cnt) break;
    float v[4];
    load_vec<4>(w, dt, n * K + k, cnt, vec, v);
    if (cnt == 4 && vec) {
      *reinterpret_cast<uint32_t*>(q + n * K + k) = quantize4(v, s);
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i)
        if (i < cnt) q[n * K + k + i] = fp8_quantize(v[i], s);
    }
  }
}

// 8 consecutive elements per thread (one 128-tile's scale for all of them when K % 8 == 0).
__global__ void dequantize_kernel(const uint8_t* q, const float* scale, int64_t rows, int64_t K, bool weight, bool vec,
                                  void* out, DType out_dt) {
  const int64_t kb = (K + kQuantBlock - 1) / kQuantBlock;
  const int64_t groups_per_row = (K + 7) / 8, groups = rows * groups_per_row;
  DSK_GRID_STRIDE(g, groups) {
    int64_t r = g / groups_per_row, k = (g % groups_per_row) * 8;
    int cnt = static_cast<int>(min64(8, K - k));
    const float* srow = scale + (weight ? (r / kQuantBlock) * kb : r * kb);
    float v[8];
    if (vec && cnt == 8) {
      uint2 w = *reinterpret_cast<const uint2*>(q + r * K + k);
      float s = srow[k / kQuantBlock];
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = fp8_dequantize(static_cast<uint8_t>((i < 4 ? w.x : w.y) >> (8 * (i & 3))), s);
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = i < cnt ? fp8_dequantize(q[r * K + k + i], srow[(k + i) / kQuantBlock]) : 0.0f;
    }
    store_vec<8>(out, out_dt, r * K + k, cnt, vec, v);
  }
}

__global__ void swiglu_kernel(const void* gate, int64_t gs, const void* up, int64_t us, DType dt, int64_t rows, int64_t D,
                              bool vec, void* out) {
  const int64_t groups_per_row = (D + 7) / 8, groups = rows * groups_per_row;
  DSK_GRID_STRIDE(g, groups) {
    int64_t r = g / groups_per_row, d = (g % groups_per_row) * 8;
    int cnt = static_cast<int>(min64(8, D - d));
    float a[8], b[8];
    load_vec<8>(gate, dt, r * gs + d, cnt, vec, a);
    load_vec<8>(up, dt, r * us + d, cnt, vec, b);
#pragma unroll
    for (int i = 0; i < 8; ++i) a[i] = swiglu_f32(a[i], b[i]);
    store_vec<8>(out, dt, r * D + d, cnt, vec, a);
  }
}

}  // namespace

void quantize_activation(const void* x, DType dt, int64_t rows, int64_t K, int64_t x_stride, uint8_t* q, float* scale,
                         Stream stream) {
  int64_t tiles = rows * (K / kQuantBlock);
  if (tiles == 0) return;
  PlainInput in{x, x_stride, dt, vec_aligned(x, dt, x_stride, 4)};
  quantize_rows_kernel<<<grid_for(tiles, kThreads / 32), kThreads, 0, to_cuda(stream)>>>(in, rows, K, q, scale);
}

void swiglu_quant(const void* gate, int64_t gate_stride, const void* up, int64_t up_stride, DType dt, int64_t rows, int64_t D,
                  const int32_t* m_indices, uint8_t* q, float* scale, Stream stream) {
  int64_t tiles = rows * (D / kQuantBlock);
  if (tiles == 0) return;
  SwigluInput in{gate, gate_stride, up, up_stride, dt,
                 vec_aligned(gate, dt, gate_stride, 4) && vec_aligned(up, dt, up_stride, 4), m_indices};
  quantize_rows_kernel<<<grid_for(tiles, kThreads / 32), kThreads, 0, to_cuda(stream)>>>(in, rows, D, q, scale);
}

void quantize_weight(const void* w, DType dt, int64_t N, int64_t K, uint8_t* q, float* scale, Stream stream) {
  int64_t blocks = ((N + kQuantBlock - 1) / kQuantBlock) * ((K + kQuantBlock - 1) / kQuantBlock);
  if (blocks == 0) return;
  bool vec = vec_aligned(w, dt, K, 4) && K % 4 == 0 && reinterpret_cast<uintptr_t>(q) % 4 == 0;
  quantize_weight_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, to_cuda(stream)>>>(w, dt, N, K, vec, q, scale);
}

static void dequantize(const uint8_t* q, const float* scale, int64_t rows, int64_t K, bool weight, void* out, DType out_dt,
                       Stream stream) {
  int64_t groups = rows * ((K + 7) / 8);
  if (groups == 0) return;
  bool vec = K % 8 == 0 && reinterpret_cast<uintptr_t>(q) % 8 == 0 && vec_aligned(out, out_dt, K, 8);
  dequantize_kernel<<<grid_for(groups, kThreads), kThreads, 0, to_cuda(stream)>>>(q, scale, rows, K, weight, vec, out, out_dt);
}
void dequantize_activation(const uint8_t* q, const float* scale, int64_t rows, int64_t K, void* out, DType out_dt, Stream stream) {
  dequantize(q, scale, rows, K, false, out, out_dt, stream);
}
void dequantize_weight(const uint8_t* q, const float* scale, int64_t N, int64_t K, void* out, DType out_dt, Stream stream) {
  dequantize(q, scale, N, K, true, out, out_dt, stream);
}

void swiglu(const void* gate, int64_t gate_stride, const void* up, int64_t up_stride, DType dt, int64_t rows, int64_t D,
            void* out, Stream stream) {
  int64_t groups = rows * ((D + 7) / 8);
  if (groups == 0) return;
  bool vec = D % 8 == 0 && vec_aligned(gate, dt, gate_stride, 8) && vec_aligned(up, dt, up_stride, 8) && vec_aligned(out, dt, D, 8);
  swiglu_kernel<<<grid_for(groups, kThreads), kThreads, 0, to_cuda(stream)>>>(gate, gate_stride, up, up_stride, dt, rows, D, vec, out);
}

}  // namespace dsk::cuda
