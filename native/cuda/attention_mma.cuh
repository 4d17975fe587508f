// Warp-level tensor-core helpers for the attention kernels (sm_80+): ldmatrix, mma.sync m16n8k16 bf16 with
// f32 accumulation, cp.async. Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16"), with
// g = lane / 4 and t = lane % 4:
//   A (16x16, row-major): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
//   B (16x8, "col"):      b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g)
//   C (16x8, f32):        c0,c1 = (g, 2t..2t+1), c2,c3 = (g+8, 2t..2t+1)
// So the C fragments of two adjacent n-tiles, packed to bf16 pairs, are exactly the A fragment of a
// 16x16 tile: that is how probabilities P = softmax(S) feed P.V without leaving registers.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace dsk::cuda::mma {

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// c += a * b (bf16 inputs, f32 accumulators).
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as a bf16 pair (round to nearest even); `lo` lands in the low half (the lower column).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// Two floats as a bf16 pair plus the bf16 pair of what that rounding lost: x = hi + lo to ~2^-16.
// P.V runs as P_hi.V + P_lo.V so the probabilities keep (nearly) f32 precision: with plain bf16 P the
// GPU's attention drifts ~2^-9 from the f32 reference, which FP8 activation quantization downstream
// amplifies into visible CPU/GPU differences of a whole model (one extra mma per P.V step).
__device__ __forceinline__ void pack_bf16_split(float lo, float hi, uint32_t& big, uint32_t& rest) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  big = *reinterpret_cast<uint32_t*>(&v);
  rest = pack_bf16(lo - __bfloat162float(v.x), hi - __bfloat162float(v.y));
}

// One online-softmax step over a warp's 16-row score tile (this thread's rows g and g + 8; a quad of lanes
// shares a row), scores already in log2 units: with the tile's per-thread row maxima mx, updates the running
// maxima m and the per-thread partial row sums l, turns s into exp2(s - m) and rescales the O accumulators.
template <int NT, int OT>
__device__ __forceinline__ void online_softmax_step(float (&s)[NT][4], float (&mx)[2], float (&m)[2], float (&l)[2],
                                                    float (&o)[OT][4]) {
  float mu[2], alpha[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    const float mn = fmaxf(m[r], mx[r]);
    mu[r] = mn == -INFINITY ? 0.f : mn;  // a row with nothing visible yet: keep exp2 away from inf - inf
    alpha[r] = exp2f(m[r] - mu[r]);
    m[r] = mn;
    l[r] *= alpha[r];
  }
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      s[nt][e] = exp2f(s[nt][e] - mu[e >> 1]);
      l[e >> 1] += s[nt][e];  // per-thread partial row sum; the quad is summed at the end
    }
#pragma unroll
  for (int i = 0; i < OT; ++i) {
    o[i][0] *= alpha[0];
    o[i][1] *= alpha[0];
    o[i][2] *= alpha[1];
    o[i][3] *= alpha[1];
  }
}

// The end of a warp's 16 query rows: each of this thread's rows g and g + 8 (query `row0 + g + 8r`, stored
// when below `len`) is O / l, with l the quad's partial sums added, written as bf16 pairs to
// out + query * row_stride (columns from `cols` on are not written).
template <int OT>
__device__ __forceinline__ void store_o_rows(const float (&o)[OT][4], const float (&l)[2], int64_t row0, int64_t len,
                                             __nv_bfloat16* out, int64_t row_stride, int cols) {
  const int g = (threadIdx.x & 31) >> 2, t4 = threadIdx.x & 3;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float lr = l[r];
    lr += __shfl_xor_sync(0xffffffffu, lr, 1);
    lr += __shfl_xor_sync(0xffffffffu, lr, 2);
    const float inv = lr > 0.f ? 1.f / lr : 0.f;
    const int64_t q = row0 + g + 8 * r;
    if (q >= len) continue;
    __nv_bfloat16* orow = out + q * row_stride;
#pragma unroll
    for (int i = 0; i < OT; ++i) {
      const int col = i * 8 + 2 * t4;
      if (col < cols) *reinterpret_cast<uint32_t*>(orow + col) = pack_bf16(o[i][2 * r] * inv, o[i][2 * r + 1] * inv);
    }
  }
}

// 16-byte global -> shared copy; when !valid the destination is zero-filled and nothing is read.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

}  // namespace dsk::cuda::mma
