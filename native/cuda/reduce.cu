// Reductions over the last dim. Rows up to kWarpRowMax elements get one warp each (8 per block); longer
// rows (logits over a 129280-token vocabulary) get a whole block. softmax sums in the canonical order of
// row_sum.cuh, argmax reduces (order key, index) pairs, topk runs the block radix select of select.cuh.
#include "../math/order_key.h"
#include "../math/softmax_math.h"
#include "common.cuh"
#include "reduce.h"
#include "row_sum.cuh"
#include "select.cuh"
#include "vec.cuh"

namespace dsk::cuda {

namespace {

constexpr int kThreads = 256;        // warp-per-row kernels: 8 rows per block
constexpr int kBlockThreads = 512;   // block-per-row kernels: one block streams a whole row (128 registers a thread)
constexpr int64_t kWarpRowMax = 8192;
// A block-per-row pass is bound by the loads each thread has in flight (one block cannot fill the memory
// system): each thread loads kRowUnroll vectors of 8 before it uses any.
constexpr int kRowUnroll = 4;

template <bool kBlock>
constexpr int threads_of() { return kBlock ? kBlockThreads : kThreads; }

struct RowArgs {
  const void* x; int64_t xs; DType dt; int64_t rows, n; bool vec;
};

// Row index and the thread's (position, width) within the group that owns the row.
template <bool kBlock>
__device__ __forceinline__ int64_t row_of() { return kBlock ? blockIdx.x : static_cast<int64_t>(blockIdx.x) * (kThreads / 32) + (threadIdx.x >> 5); }
template <bool kBlock>
__device__ __forceinline__ int group_rank() { return kBlock ? threadIdx.x : (threadIdx.x & 31); }
template <bool kBlock>
__device__ __forceinline__ int group_width() { return kBlock ? kBlockThreads : 32; }

// Calls use(i0, v, cnt) for every 8-element vector of the group's share of a row, kRowUnroll loads at a time.
template <bool kBlock, class UseFn>
__device__ __forceinline__ void for_each_vec8(const RowArgs& p, int64_t base, UseFn&& use) {
  const int64_t step = static_cast<int64_t>(group_width<kBlock>()) * 8;
  for (int64_t i0 = static_cast<int64_t>(group_rank<kBlock>()) * 8; i0 < p.n; i0 += step * kRowUnroll) {
    float v[kRowUnroll][8];
    int cnt[kRowUnroll];
#pragma unroll
    for (int u = 0; u < kRowUnroll; ++u) {
      const int64_t j = i0 + u * step;
      cnt[u] = j < p.n ? static_cast<int>(min64(8, p.n - j)) : 0;
      if (cnt[u] > 0) load_vec<8>(p.x, p.dt, base + j, cnt[u], p.vec, v[u]);
    }
#pragma unroll
    for (int u = 0; u < kRowUnroll; ++u)
      if (cnt[u] > 0) use(i0 + u * step, v[u], cnt[u]);
  }
}

__device__ __forceinline__ float warp_max(float m) {
#pragma unroll
  for (int off = 16; off >= 1; off >>= 1) m = max_ignore_nan(m, __shfl_xor_sync(0xffffffffu, m, off));
  return m;
}

template <bool kBlock>
__global__ void __launch_bounds__(threads_of<kBlock>(), 1) softmax_kernel(RowArgs p, bool log, void* out, DType odt) {
  __shared__ float scratch[33];
  const int64_t r = row_of<kBlock>();
  if (!kBlock && r >= p.rows) return;
  const int64_t base = r * p.xs;
  float m = kNegInf;
  for_each_vec8<kBlock>(p, base, [&](int64_t, const float (&v)[8], int cnt) {
#pragma unroll
    for (int k = 0; k < 8; ++k)
      if (k < cnt) m = max_ignore_nan(m, v[k]);
  });
  m = warp_max(m);
  if (kBlock) {
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = m;
    __syncthreads();
    m = kNegInf;
    for (int w = 0; w < kBlockThreads / 32; ++w) m = max_ignore_nan(m, scratch[w]);
    __syncthreads();
  }
  const float s = row_sum<kBlock>(p.n, scratch, [&](float acc, int64_t i0, int cnt) {
    float v[8];
    load_vec<8>(p.x, p.dt, base + i0, cnt, p.vec, v);
#pragma unroll
    for (int k = 0; k < 8; ++k)
      if (k < cnt) acc = __fadd_rn(acc, portable_exp(__fsub_rn(v[k], m)));
    return acc;
  });
  const float ls = log_sum(s);
  for_each_vec8<kBlock>(p, base, [&](int64_t i0, const float (&v)[8], int cnt) {
    float o[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) o[k] = softmax_out(v[k], m, s, ls, log);
    store_vec<8>(out, odt, r * p.n + i0, cnt, p.vec && (p.n % 8 == 0), o);
  });
}

__device__ __forceinline__ void better(uint32_t& k, int64_t& i, uint32_t k2, int64_t i2) {
  if (k2 > k || (k2 == k && i2 < i)) { k = k2; i = i2; }
}

template <bool kBlock>
__global__ void __launch_bounds__(threads_of<kBlock>()) argmax_kernel(RowArgs p, int32_t* out) {
  __shared__ uint32_t sk[kBlockThreads / 32];
  __shared__ int64_t si[kBlockThreads / 32];
  const int64_t r = row_of<kBlock>();
  if (!kBlock && r >= p.rows) return;
  uint32_t bk = 0;
  int64_t bi = INT64_MAX;
  for_each_vec8<kBlock>(p, r * p.xs, [&](int64_t i0, const float (&v)[8], int cnt) {
#pragma unroll
    for (int k = 0; k < 8; ++k)
      if (k < cnt) better(bk, bi, float_order_key(v[k]), i0 + k);
  });
#pragma unroll
  for (int off = 16; off >= 1; off >>= 1) {
    uint32_t k2 = __shfl_xor_sync(0xffffffffu, bk, off);
    int64_t i2 = __shfl_xor_sync(0xffffffffu, bi, off);
    better(bk, bi, k2, i2);
  }
  if (kBlock) {
    if ((threadIdx.x & 31) == 0) { sk[threadIdx.x >> 5] = bk; si[threadIdx.x >> 5] = bi; }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < kBlockThreads / 32; ++w) better(bk, bi, sk[w], si[w]);
      out[r] = static_cast<int32_t>(bi);
    }
  } else if ((threadIdx.x & 31) == 0) {
    out[r] = static_cast<int32_t>(bi);
  }
}

constexpr int kSelectThreads = 512;

template <int kCap>
__global__ void __launch_bounds__(kSelectThreads) topk_kernel(RowArgs p, int k, void* values, int32_t* indices) {
  __shared__ SelectSmem<kSelectThreads, kCap> sm;
  const RowGroup g = row_group(p.n, kSumSegment);
  const int64_t r = blockIdx.x / g.size;
  const void* x = p.x;
  const DType dt = p.dt;
  const int64_t base = r * p.xs;
  int m = group_select_top<kSelectThreads, kCap>(g, k, [&](int64_t i, uint32_t& key) {
    key = float_order_key(load_f32(x, dt, base + i));
    return true;
  }, sm);
  if (g.rank != 0) return;  // the selection is in CTA 0; nothing reads another CTA's memory any more
  for (int j = threadIdx.x; j < m; j += kSelectThreads) {
    int64_t i = composite_index(sm.sel[j]);
    indices[r * k + j] = static_cast<int32_t>(i);
    convert_element(values, dt, r * k + j, x, dt, base + i);
  }
}

RowArgs row_args(const void* x, int64_t xs, DType dt, int64_t rows, int64_t n) {
  return RowArgs{x, xs, dt, rows, n, vec_aligned(x, dt, xs, 8)};
}

unsigned warp_rows_grid(int64_t rows) { return static_cast<unsigned>((rows + kThreads / 32 - 1) / (kThreads / 32)); }

}  // namespace

void softmax(const void* x, int64_t xs, DType dt, int64_t rows, int64_t n, bool log, void* out, DType out_dt, Stream stream) {
  if (rows == 0 || n == 0) return;
  RowArgs p = row_args(x, xs, dt, rows, n);
  p.vec = p.vec && vec_aligned(out, out_dt, n, 8);
  if (n <= kWarpRowMax) softmax_kernel<false><<<warp_rows_grid(rows), kThreads, 0, to_cuda(stream)>>>(p, log, out, out_dt);
  else softmax_kernel<true><<<static_cast<unsigned>(rows), kBlockThreads, 0, to_cuda(stream)>>>(p, log, out, out_dt);
}

void argmax(const void* x, int64_t xs, DType dt, int64_t rows, int64_t n, int32_t* out, Stream stream) {
  if (rows == 0 || n == 0) return;
  RowArgs p = row_args(x, xs, dt, rows, n);
  if (n <= kWarpRowMax) argmax_kernel<false><<<warp_rows_grid(rows), kThreads, 0, to_cuda(stream)>>>(p, out);
  else argmax_kernel<true><<<static_cast<unsigned>(rows), kBlockThreads, 0, to_cuda(stream)>>>(p, out);
}

void topk(const void* x, int64_t xs, DType dt, int64_t rows, int64_t n, int64_t k, void* values, int32_t* indices,
          const RowLaunch& rl, Stream stream) {
  if (rows == 0 || k == 0) return;
  RowArgs p = row_args(x, xs, dt, rows, n);
  const int ctas = row_group_ctas(rows, (n + kSumSegment - 1) / kSumSegment, 4, rl.sms, rl.clusters);
  if (k <= 256) launch_row_groups(topk_kernel<256>, rows, ctas, kSelectThreads, 0, to_cuda(stream), p, static_cast<int>(k), values, indices);
  else launch_row_groups(topk_kernel<kTopkMax>, rows, ctas, kSelectThreads, 0, to_cuda(stream), p, static_cast<int>(k), values, indices);
}

}  // namespace dsk::cuda
