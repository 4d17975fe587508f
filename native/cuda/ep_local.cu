// The compute-SM halves of dispatch and combine: the per-expert layout a dispatch delivers (ep_expand),
// the per-(token, rank) weighted sums a combine sends (ep_reduce) and their sum at home (ep_sum).
//
// All three are plain memory work over the received (or own) tokens — ~K/W rows of H values each — that
// the exchange kernels once did inside their 20-24 SMs, where an SM's store or load rate bounded them
// (bench/NOTES.md, EP v5/v6). Here they run on the compute stream, with the whole GPU or, for the own
// tokens' part while an exchange runs, with the SMs it leaves free: a warp per token, 16-byte loads
// issued together before the stores or the adds.
#include "ep_common.cuh"

namespace dsk::cuda {

namespace {
constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / 32;
constexpr int kUnroll = 14;  // 16-byte loads in flight per lane while expanding
constexpr int kBatch = 4;    // rows whose loads are issued together per lane while reducing
constexpr int kVec = 2;      // 16-byte vectors per lane and row while reducing

// Received tokens of `part`: how many, and the i-th one (own tokens are [own_begin, own_begin + own)).
__device__ __forceinline__ int64_t part_count(EpPart part, int64_t R, int64_t own) {
  return part == EpPart::kOwn ? own : part == EpPart::kPeers ? R - own : R;
}
__device__ __forceinline__ int64_t part_token(EpPart part, int64_t i, int64_t own_begin, int64_t own) {
  return part == EpPart::kOwn ? own_begin + i : part == EpPart::kPeers && i >= own_begin ? i + own : i;
}

int grid_for(int64_t tokens) {
  const int64_t blocks = (tokens + kWarpsPerBlock - 1) / kWarpsPerBlock;
  return static_cast<int>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

// Shared memory an own-part block asks for and never uses: more than half an SM's, so that each block
// holds an SM alone. Launched next to an exchange, a copy kernel's many short blocks would otherwise take
// every SM and the exchange's blocks (each needing a whole SM) would start only after them: measured no
// overlap at all (bench/NOTES.md, v6c).
constexpr int kHoldSmem = 116 * 1024;

struct Shape {
  int grid;
  int smem;
};
template <typename Kernel>
Shape local_shape(Kernel kernel, EpPart part, const EpLocalLaunch& l, int64_t tokens) {
  if (part != EpPart::kOwn || l.sm_count <= l.exchange_sms) return {grid_for(tokens), 0};
  // Set at every launch (a host call of ~1 us): the attribute is per device.
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kHoldSmem) != cudaSuccess) {
    (void)cudaGetLastError();
    return {grid_for(tokens), 0};
  }
  return {l.sm_count - l.exchange_sms, kHoldSmem};
}

__global__ void __launch_bounds__(kThreads) ep_expand_kernel(EpExpandArgs a) {
  const int lane = threadIdx.x % 32;
  const EpPlanLayout L = ep_plan_layout(a.E, a.W, a.C);
  const int Eloc = a.E / a.W;
  // mIndices: the local expert of each row, -1 for padding.
  const int32_t* seg = a.plan + L.seg_start;
  const int64_t m_rows = a.part == EpPart::kPeers ? 0 : a.M;
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < m_rows; r += int64_t(gridDim.x) * blockDim.x) {
    int lo = 0, hi = Eloc;  // the last segment starting at or before r (empty ones share a start)
    while (hi - lo > 1) {
      const int mid = (lo + hi) / 2;
      if (seg[mid] <= r) lo = mid; else hi = mid;
    }
    a.m_indices[r] = r - seg[lo] < a.plan[L.seg_count + lo] ? lo : -1;
  }
  const int64_t own_begin = a.plan[L.recv_offset + a.me], own_end = a.plan[L.recv_offset + a.me + 1];
  const int64_t pb = a.H * (a.fp8 ? 1 : 2), vecs = pb / 16, nscale = a.fp8 ? a.H / 128 : 0;
  const int64_t warps = int64_t(gridDim.x) * kWarpsPerBlock, own = own_end - own_begin;
  const int64_t count = part_count(a.part, a.R, own);
  for (int64_t i = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; i < count; i += warps) {
    const int64_t j = part_token(a.part, i, own_begin, own);
    const char* src;
    const float* src_scale = nullptr;
    int row = -1;
    const int64_t staged = ep_staged_row(j, own_begin, own_end);
    if (staged < 0) {  // a token of this rank: still in x, and its routing is written here
      const int64_t t = a.send_list[int64_t(a.me) * a.T + (j - own_begin)];
      src = static_cast<const char*>(a.x) + t * pb;
      if (nscale) src_scale = a.x_scale + t * nscale;
      if (lane < a.K) {
        const int32_t e = a.idx[t * a.K + lane], p = a.pos[t * a.K + lane];
        if (e >= 0 && e < a.E && p >= 0 && e / Eloc == a.me) row = a.plan[L.row_base + e] + p;
        if (row >= a.M) row = -1;
        a.recv_token_rows[j * a.K + lane] = row;
        if (row >= 0) a.recv_weights[row] = a.weights[t * a.K + lane];
      }
    } else {
      src = static_cast<const char*>(a.staged_x) + staged * pb;
      if (nscale) src_scale = a.staged_scale + staged * nscale;
      if (lane < a.K) row = a.recv_token_rows[j * a.K + lane];
      if (row >= a.M) row = -1;
    }
    const EpLaneRows r = ep_lane_rows(row, a.K, lane);
    ep_copy_rows<kUnroll, false>(reinterpret_cast<const int4*>(src), static_cast<int4*>(a.recv_x), vecs, r, 0, vecs, lane);
    if (nscale) ep_copy_scales<false>(src_scale, a.recv_scale, nscale, r, lane);
  }
}

// acc[u][0..8) = sum over the rows (k order) of w * y[row][v + 32u], f32 multiply then add, for the
// lane's kVec vectors. Lane k holds row k and its weight; kBatch rows' loads are issued before use.
__device__ __forceinline__ void weighted_rows(const int4* y, int64_t stride_v, const EpLaneRows& r, float w_mine, int64_t v,
                                              int64_t v1, float (&acc)[kVec][8]) {
#pragma unroll
  for (int u = 0; u < kVec; u++)
#pragma unroll
    for (int j = 0; j < 8; j++) acc[u][j] = 0.f;
  for (uint32_t m = r.mask; m;) {
    int4 buf[kBatch][kVec];
    float w[kBatch];
    int nb = 0;
#pragma unroll
    for (int i = 0; i < kBatch; i++) {
      const int l = m ? __ffs(m) - 1 : 0;
      const int row = __shfl_sync(0xffffffffu, r.row, l);
      w[i] = __shfl_sync(0xffffffffu, w_mine, l);
      if (m) {
#pragma unroll
        for (int u = 0; u < kVec; u++)
          if (v + 32 * u < v1) buf[i][u] = ptx::ld_nc_na_v4(y + int64_t(row) * stride_v + v + 32 * u);
        nb++;
        m &= m - 1;
      }
    }
#pragma unroll
    for (int i = 0; i < kBatch; i++) {
      if (i < nb) {
#pragma unroll
        for (int u = 0; u < kVec; u++) {
          if (v + 32 * u < v1) {
            float f[8];
            bf16x8_to_f32(buf[i][u], f);
#pragma unroll
            for (int j = 0; j < 8; j++) acc[u][j] = __fadd_rn(acc[u][j], __fmul_rn(w[i], f[j]));
          }
        }
      }
    }
  }
}

__global__ void __launch_bounds__(kThreads) ep_reduce_kernel(EpPart part, const int4* y, int64_t M, int64_t H, const float* recv_weights,
                                                             const int32_t* recv_token_rows, int64_t R, int K, const int32_t* plan, int E,
                                                             int W, int me, int C, int4* partial) {
  const int lane = threadIdx.x % 32;
  const EpPlanLayout L = ep_plan_layout(E, W, C);
  const int64_t own_begin = plan[L.recv_offset + me], own = plan[L.recv_offset + me + 1] - own_begin;
  const int64_t vecs = H / 8, warps = int64_t(gridDim.x) * kWarpsPerBlock, count = part_count(part, R, own);
  for (int64_t i = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; i < count; i += warps) {
    const int64_t j = part_token(part, i, own_begin, own);
    int row = lane < K ? recv_token_rows[j * K + lane] : -1;
    if (row >= M) row = -1;
    const float w = row >= 0 ? recv_weights[row] : 0.f;
    const EpLaneRows r = ep_lane_rows(row, K, lane);
    for (int64_t vb = 0; vb < vecs; vb += 32 * kVec) {  // warp-uniform (shuffles inside)
      const int64_t v = vb + lane;
      float acc[kVec][8];
      weighted_rows(y, vecs, r, w, v, vecs, acc);
#pragma unroll
      for (int u = 0; u < kVec; u++)
        if (v + 32 * u < vecs) ptx::st_na_v4(partial + j * vecs + v + 32 * u, f32_to_bf16x8(acc[u]));
    }
  }
}
// out[t] = bf16(0 + own + returned[d0] + ...) in f32; lane q < W holds the q-th source of the token's
// sum (q = 0 this rank, then the others ascending), kBatch sources' loads issued together.
__global__ void __launch_bounds__(kThreads) ep_sum_kernel(const int4* partial, const int4* staged, const int32_t* token_idx_in_rank,
                                                          const int32_t* plan, int E, int W, int me, int C, int64_t T, int64_t H,
                                                          int4* out) {
  const int lane = threadIdx.x % 32;
  const EpPlanLayout L = ep_plan_layout(E, W, C);
  const int64_t vecs = H / 8, own_begin = plan[L.recv_offset + me], warps = int64_t(gridDim.x) * kWarpsPerBlock;
  const int src_rank = lane == 0 ? me : (lane - 1 < me ? lane - 1 : lane);
  for (int64_t t = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; t < T; t += warps) {
    const int4* src = nullptr;
    if (lane < W) {
      const int32_t j = token_idx_in_rank[t * W + src_rank];
      if (j >= 0) src = src_rank == me ? partial + (own_begin + j) * vecs : staged + ep_returned_row(plan, L, C, me, src_rank, j) * vecs;
    }
    const uint32_t sm = __ballot_sync(0xffffffffu, src != nullptr);
    for (int64_t vb = 0; vb < vecs; vb += 32 * kVec) {  // warp-uniform (shuffles inside)
      const int64_t v = vb + lane;
      float acc[kVec][8];
#pragma unroll
      for (int u = 0; u < kVec; u++)
#pragma unroll
        for (int j = 0; j < 8; j++) acc[u][j] = 0.f;
      for (uint32_t m = sm; m;) {
        int4 buf[kBatch][kVec];
        int nb = 0;
#pragma unroll
        for (int k = 0; k < kBatch; k++) {
          const int4* o = reinterpret_cast<const int4*>(__shfl_sync(0xffffffffu, reinterpret_cast<uintptr_t>(src), m ? __ffs(m) - 1 : 0));
          if (m) {
#pragma unroll
            for (int u = 0; u < kVec; u++)
              if (v + 32 * u < vecs) buf[k][u] = ptx::ld_nc_na_v4(o + v + 32 * u);
            nb++;
            m &= m - 1;
          }
        }
#pragma unroll
        for (int k = 0; k < kBatch; k++) {
          if (k < nb) {
#pragma unroll
            for (int u = 0; u < kVec; u++) {
              if (v + 32 * u < vecs) {
                float f[8];
                bf16x8_to_f32(buf[k][u], f);
#pragma unroll
                for (int j = 0; j < 8; j++) acc[u][j] = __fadd_rn(acc[u][j], f[j]);
              }
            }
          }
        }
      }
#pragma unroll
      for (int u = 0; u < kVec; u++)
        if (v + 32 * u < vecs) ptx::st_na_v4(out + t * vecs + v + 32 * u, f32_to_bf16x8(acc[u]));
    }
  }
}
}  // namespace

void ep_expand(const EpExpandArgs& a, Stream s) {
  if (a.R == 0 && a.M == 0) return;
  const Shape sh = local_shape(ep_expand_kernel, a.part, a.launch, a.R > a.M / 32 ? a.R : a.M / 32);
  ep_expand_kernel<<<sh.grid, kThreads, sh.smem, to_cuda(s)>>>(a);
}

void ep_reduce(EpPart part, const EpLocalLaunch& launch, const uint16_t* y, int64_t M, int64_t H, const float* recv_weights,
               const int32_t* recv_token_rows, int64_t R, int K, const int32_t* plan, int E, int W, int me, int C, uint16_t* partial,
               Stream s) {
  if (R == 0) return;
  const Shape sh = local_shape(ep_reduce_kernel, part, launch, R);
  ep_reduce_kernel<<<sh.grid, kThreads, sh.smem, to_cuda(s)>>>(part, reinterpret_cast<const int4*>(y), M, H, recv_weights,
                                                               recv_token_rows, R, K, plan, E, W, me, C, reinterpret_cast<int4*>(partial));
}

void ep_sum(const uint16_t* partial, const uint16_t* staged, const int32_t* token_idx_in_rank, const int32_t* plan, int E, int W,
            int me, int C, int64_t T, int64_t H, uint16_t* out, Stream s) {
  if (T == 0) return;
  ep_sum_kernel<<<grid_for(T), kThreads, 0, to_cuda(s)>>>(reinterpret_cast<const int4*>(partial), reinterpret_cast<const int4*>(staged),
                                                          token_idx_in_rank, plan, E, W, me, C, T, H, reinterpret_cast<int4*>(out));
}

}  // namespace dsk::cuda
