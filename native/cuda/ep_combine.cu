// Combine: the reverse trip of the per-(token, rank) partial sums ep_reduce computed.
//
// Block 2c (expert side) walks the tokens it received from each peer s in channel c (in the order of
// the dispatch) and pushes each token's partial sum (bf16, contiguous rows of `partial`) into the ring
// (me -> s, c) — one row per (token, rank), as much traffic as the dispatch. Block 2c+1 (home side)
// walks its own tokens of channel c in windows: the leader waits until every peer has published the
// partial sums the window needs, then each token's output is  bf16( own + partial[d0] + partial[d1] ... )
// in f32: its own partial sum first (if it has rows here), then the peers' in ascending rank order; a
// token routed nowhere gets zeros. The CPU simulation (lib/dist/simulate.ts) follows the same order.
#include "ep_common.cuh"

namespace dsk::cuda {

namespace {
constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kUnroll = 14;  // 16-byte loads in flight per lane when pushing
// The home side is latency-bound (a warp walks its tokens one after the other): each step issues the
// loads of kBatch sources x kVec 16-byte vectors per lane before adding (2 x 4: a token's two sources of a
// 2-GPU group in one step, 128 vectors of each, so 7 steps for hidden 7168).
constexpr int kBatch = 2;
constexpr int kVec = 4;

__device__ void combine_send(const EpComm& comm, const EpCombineArgs& a, int c, int s, int bar, int wig, int G, int lane,
                             volatile int* s_flag) {
  const int W = comm.world, me = comm.rank, C = a.C, Q = comm.g.slots;
  const EpPlanLayout L = ep_plan_layout(a.E, W, C);
  const int32_t N = a.plan[L.recv_count + s * C + c];
  const int64_t jg0 = int64_t(a.plan[L.recv_offset + s]) + a.plan[L.recv_start + s * C + c];
  const int64_t vecs = a.H / 8;
  const uint64_t* head_in = ep_counter_ptr(comm, me, comm.g.off_head_in, s, c);
  uint64_t* tail_remote = ep_counter_ptr(comm, s, comm.g.off_tail_in, me, c);
  uint64_t* tail_own = ep_counter_ptr(comm, me, comm.g.off_tail_own, s, c);
  uint64_t tail = *reinterpret_cast<volatile uint64_t*>(tail_own);
  const bool leader = wig == 0 && lane == 0;
  for (int32_t start = 0; start < N; start += a.chunk) {
    const int n = min(a.chunk, N - start);
    if (leader) {
      const bool ok = tail + n <= uint64_t(Q) || ep_wait_geq(comm, head_in, tail + n - Q, s);
      *s_flag = ok ? 0 : 1;
    }
    ptx::bar_sync(bar, G * 32);
    if (*s_flag) return;
    const int P = ep_pieces(n, G, vecs);
    for (int u = wig; u < n * P; u += G) {
      const int i = u / P, p = u % P;
      const int4* src = reinterpret_cast<const int4*>(a.partial) + (jg0 + start + i) * vecs;
      int4* slot = reinterpret_cast<int4*>(comm.peers[s] + ep_ring_slot(comm.g, me, c, int64_t((tail + i) % Q)));
      ep_copy_one<kUnroll>(src, slot, vecs * p / P, vecs * (p + 1) / P, lane);
    }
    ptx::bar_sync(bar, G * 32);
    tail += n;
    if (leader) ptx::st_release_sys_u64(tail_remote, tail);
  }
  if (leader) *reinterpret_cast<volatile uint64_t*>(tail_own) = tail;
}

__device__ void combine_recv(const EpComm& comm, const EpCombineArgs& a, int c, int warp, int lane, volatile int* s_flag) {
  const int W = comm.world, me = comm.rank, C = a.C, Q = comm.g.slots;
  const EpPlanLayout L = ep_plan_layout(a.E, W, C);
  const int64_t t0 = ep_channel_begin(a.T, C, c), t1 = ep_channel_begin(a.T, C, c + 1);
  const int64_t vecs = a.H / 8, own_begin = a.plan[L.recv_offset + me];
  // Lane q < W reads the q-th source of a token's sum: q = 0 this rank, then the peers ascending.
  const int src_rank = lane == 0 ? me : (lane - 1 < me ? lane - 1 : lane);
  // Lane d of every warp tracks peer d: where its stream started (head at kernel start, first position).
  uint64_t head0 = 0;
  int32_t first = 0, consumed = 0;
  if (lane < W && lane != me) {
    head0 = *reinterpret_cast<volatile uint64_t*>(ep_counter_ptr(comm, me, comm.g.off_head_own, lane, c));
    first = a.plan[L.send_start + lane * (C + 1) + c];
  }
  const int window = a.chunk;
  for (int64_t ws = t0; ws < t1; ws += window) {
    const int n = static_cast<int>(t1 - ws < window ? t1 - ws : int64_t(window));
    int need = 0;  // lane d: tokens of this window routed to peer d
    if (lane < W && lane != me)
      for (int i = 0; i < n; i++) need += a.token_idx_in_rank[(ws + i) * W + lane] >= 0;
    if (warp == 0) {
      bool ok = true;
      if (lane < W && lane != me && need > 0)
        ok = ep_wait_geq(comm, ep_counter_ptr(comm, me, comm.g.off_tail_in, lane, c), head0 + consumed + need, lane);
      ok = __all_sync(0xffffffffu, ok);
      if (lane == 0) *s_flag = ok ? 0 : 1;
    }
    __syncthreads();
    if (*s_flag) return;
    const int P = ep_pieces(n, kWarps, vecs);
    for (int u = warp; u < n * P; u += kWarps) {
      const int i = u / P, p = u % P;
      const int64_t t = ws + i;
      // The token's partial sums, lane q holding the q-th source's: its own (row of `partial`), then
      // the peers' ring slots.
      const uint64_t h0 = __shfl_sync(0xffffffffu, head0, src_rank);  // that source's stream, as lane d tracks it
      const int32_t f0 = __shfl_sync(0xffffffffu, first, src_rank);
      const int4* src = nullptr;
      if (lane < W) {
        const int d = src_rank;
        const int32_t j = a.token_idx_in_rank[t * W + d];
        if (j >= 0 && d == me) src = reinterpret_cast<const int4*>(a.partial) + (own_begin + j) * vecs;
        else if (j >= 0) src = reinterpret_cast<const int4*>(comm.peers[me] + ep_ring_slot(comm.g, d, c, int64_t((h0 + (j - f0)) % Q)));
      }
      const uint32_t sm = __ballot_sync(0xffffffffu, src != nullptr);
      const int64_t v0 = vecs * p / P, v1 = vecs * (p + 1) / P;
      for (int64_t vb = v0; vb < v1; vb += 32 * kVec) {  // warp-uniform (shuffles inside)
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
                if (v + 32 * u < v1) buf[k][u] = ptx::ld_na_v4(o + v + 32 * u);
              nb++;
              m &= m - 1;
            }
          }
#pragma unroll
          for (int k = 0; k < kBatch; k++) {
            if (k < nb) {
#pragma unroll
              for (int u = 0; u < kVec; u++) {
                if (v + 32 * u < v1) {
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
          if (v + 32 * u < v1) ptx::st_na_v4(reinterpret_cast<int4*>(a.out) + t * vecs + v + 32 * u, f32_to_bf16x8(acc[u]));
      }
    }
    __syncthreads();
    consumed += need;
    if (warp == 0 && lane < W && lane != me && need > 0)  // reads done: relaxed, no drain of our writes
      ptx::st_relaxed_sys_u64(ep_counter_ptr(comm, lane, comm.g.off_head_in, me, c), head0 + consumed);
  }
  if (warp == 0 && lane < W && lane != me)
    *reinterpret_cast<volatile uint64_t*>(ep_counter_ptr(comm, me, comm.g.off_head_own, lane, c)) = head0 + consumed;
}

__global__ void __launch_bounds__(kThreads, 1) ep_combine_kernel(EpComm comm, EpCombineArgs a) {
  __shared__ int s_flag[kEpMaxWorld];
  const int W = comm.world, me = comm.rank;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, c = blockIdx.x / 2;
  if (blockIdx.x % 2 == 0) {
    if (W == 1) return;
    const int G = kWarps / (W - 1), g = warp / G;  // one group per home rank
    if (g >= W - 1) return;
    combine_send(comm, a, c, g < me ? g : g + 1, 1 + g, warp % G, G, lane, &s_flag[g]);
  } else {
    combine_recv(comm, a, c, warp, lane, &s_flag[0]);
  }
}
}  // namespace

void ep_combine(const EpComm& comm, const EpCombineArgs& a, Stream s) {
  ep_combine_kernel<<<2 * a.C, kThreads, 0, to_cuda(s)>>>(comm, a);
}

}  // namespace dsk::cuda
