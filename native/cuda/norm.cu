// RMSNorm: one warp per row (8 rows per block) for many rows of up to kWarpRowMax elements; one block per row
// for longer rows, and for wide rows when there are few of them (a decode step's [B, 7168]: warps alone
// would leave most SMs idle and stream each row at one warp's latency-bound rate, ~80 us for 64 rows). The
// sum of squares follows the canonical order (row_sum.cuh) in both modes, so results equal the CPU
// reference's bits.
#include "../math/norm_math.h"
#include "common.cuh"
#include "norm.h"
#include "row_sum.cuh"
#include "vec.cuh"

namespace dsk::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kWarpRowMax = 16384;
constexpr int64_t kFewRows = 1024, kWideRow = 2048;  // at most kFewRows rows of kWideRow or more: a block each

struct NormArgs {
  const void* x; int64_t xs;
  const void* res; int64_t rs;
  DType dt;
  const void* w; DType wdt;
  int64_t rows, D;
  float eps;
  void* out; void* res_out;
  bool vec;
};

// h for elements i0 .. i0+cnt-1 of row r (the residual sum rounded to dt, written out when `store`).
__device__ __forceinline__ void load_h(const NormArgs& p, int64_t r, int64_t i0, int cnt, bool store, float* h) {
  load_vec<8>(p.x, p.dt, r * p.xs + i0, cnt, p.vec, h);
  if (p.res) {
    float rv[8];
    load_vec<8>(p.res, p.dt, r * p.rs + i0, cnt, p.vec, rv);
#pragma unroll
    for (int k = 0; k < 8; ++k) h[k] = round_to_dtype(__fadd_rn(h[k], rv[k]), p.dt);
    if (store) store_vec<8>(p.res_out, p.dt, r * p.D + i0, cnt, p.vec, h);
  }
}

template <bool kBlock>
__global__ void __launch_bounds__(kThreads) rms_norm_kernel(NormArgs p) {
  __shared__ float scratch[33];
  const int64_t r = kBlock ? blockIdx.x : static_cast<int64_t>(blockIdx.x) * (kThreads / 32) + (threadIdx.x >> 5);
  if (!kBlock && r >= p.rows) return;  // whole warps only: row_sum in warp mode has no block barrier
  float ss = row_sum<kBlock>(p.D, scratch, [&](float acc, int64_t i0, int cnt) {
    float h[8];
    load_h(p, r, i0, cnt, true, h);
#pragma unroll
    for (int k = 0; k < 8; ++k)
      if (k < cnt) acc = __fadd_rn(acc, __fmul_rn(h[k], h[k]));
    return acc;
  });
  const float inv = rms_inv(ss, p.D, p.eps);
  const int width = kBlock ? blockDim.x : 32, t = kBlock ? threadIdx.x : (threadIdx.x & 31);
  for (int64_t i0 = static_cast<int64_t>(t) * 8; i0 < p.D; i0 += static_cast<int64_t>(width) * 8) {
    int cnt = static_cast<int>(min64(8, p.D - i0));
    float h[8], w[8];
    load_h(p, r, i0, cnt, false, h);
    load_vec<8>(p.w, p.wdt, i0, cnt, p.vec, w);
#pragma unroll
    for (int k = 0; k < 8; ++k) h[k] = __fmul_rn(__fmul_rn(h[k], inv), w[k]);
    store_vec<8>(p.out, p.dt, r * p.D + i0, cnt, p.vec, h);
  }
}

}  // namespace

void rms_norm(const void* x, int64_t x_stride, const void* residual, int64_t r_stride, DType dt, const void* weight, DType w_dt,
              int64_t rows, int64_t D, float eps, void* out, void* residual_out, Stream stream) {
  if (rows == 0 || D == 0) return;
  bool vec = D % 8 == 0 && vec_aligned(x, dt, x_stride, 8) && vec_aligned(out, dt, D, 8) && vec_aligned(weight, w_dt, 0, 8) &&
             (!residual || (vec_aligned(residual, dt, r_stride, 8) && vec_aligned(residual_out, dt, D, 8)));
  NormArgs p{x, x_stride, residual, r_stride, dt, weight, w_dt, rows, D, eps, out, residual_out, vec};
  if (D <= kWarpRowMax && !(rows <= kFewRows && D >= kWideRow)) {
    unsigned blocks = static_cast<unsigned>((rows + kThreads / 32 - 1) / (kThreads / 32));
    rms_norm_kernel<false><<<blocks, kThreads, 0, to_cuda(stream)>>>(p);
  } else {
    rms_norm_kernel<true><<<static_cast<unsigned>(rows), kThreads, 0, to_cuda(stream)>>>(p);
  }
}

}  // namespace dsk::cuda
