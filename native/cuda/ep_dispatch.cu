// Dispatch: warp-specialized channels over NVLink.
//
// Channel c owns source tokens [T*c/C, T*(c+1)/C) and two blocks: block 2c sends, block 2c+1 receives.
//   sender    one group of warps per peer d: it pushes chunks into the ring (me -> d, c) in d's buffer:
//             the group leader waits until the ring has room (head_in, written by d), the warps copy
//             tokens (payload, fp8 scales, and the destination row and weight of each routing entry)
//             with stores that skip L1, a named barrier joins them, and the leader publishes the new tail
//             in d's buffer with a release store at system scope.
//   receiver  one group per source rank s: the leader acquires the tail of ring (s -> me, c), the warps
//             copy every available token once into the staging buffer (one row per token, like DeepEP's
//             output) with its routing, then the leader publishes how far it has read (head) back in s's
//             buffer.
// Only the peers' tokens move here. Everything else — the tokens this rank keeps, the copies of each
// token to each of its rows (~K/W per token), mIndices — is ep_expand's, on the compute SMs: bounded by
// an SM's store rate, the copies took 25-35% of the exchange on 24 SMs (bench/NOTES.md, v5).
// Tokens of a chunk are split into pieces so that every warp of a group has work even for small chunks;
// a lane keeps kUnroll 16-byte loads in flight (register copies: for one destination per token they
// beat the bulk-copy engine through shared memory, bench/NOTES.md v6).
// Every wait is bounded (EpComm::timeout_ns) and watches the abort word, so a dead peer yields an error.
#include "ep_common.cuh"

namespace dsk::cuda {

namespace {
constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kUnroll = 14;  // 16-byte loads in flight per lane: 224 B, 112 KB per SM

struct Sizes {
  int64_t vecs;       // 16-byte vectors of payload per token
  int64_t nscale;     // fp8 scales per token
  EpSlotLayout slot;
};

// Row of routing entry (t, k) on peer `dest`, or -1 (the peer checks it against its layout).
__device__ __forceinline__ int ep_row_for(const EpDispatchArgs& a, const int32_t* row_base, int64_t t, int k, int dest, int Eloc) {
  const int32_t e = a.idx[t * a.K + k], p = a.pos[t * a.K + k];
  if (e < 0 || e >= a.E || p < 0 || e / Eloc != dest) return -1;
  return row_base[e] + p;
}

__device__ void dispatch_send(const EpComm& comm, const EpDispatchArgs& a, const Sizes& z, int c, int d, int bar, int wig, int G,
                              int lane, volatile int* s_flag) {
  const int W = comm.world, me = comm.rank, C = a.C, Eloc = a.E / W, Q = comm.g.slots;
  const EpPlanLayout L = ep_plan_layout(a.E, W, C);
  const int32_t js = a.plan[L.send_start + d * (C + 1) + c];
  const int32_t N = a.plan[L.send_start + d * (C + 1) + c + 1] - js;
  const int32_t* row_base = a.plan + L.row_base;
  const uint64_t* head_in = ep_counter_ptr(comm, me, comm.g.off_head_in, d, c);
  uint64_t* tail_remote = ep_counter_ptr(comm, d, comm.g.off_tail_in, me, c);
  uint64_t* tail_own = ep_counter_ptr(comm, me, comm.g.off_tail_own, d, c);
  uint64_t tail = *reinterpret_cast<volatile uint64_t*>(tail_own);
  const bool leader = wig == 0 && lane == 0;
  for (int32_t start = 0; start < N; start += a.chunk) {
    const int n = min(a.chunk, N - start);
    if (leader) {
      const bool ok = tail + n <= uint64_t(Q) || ep_wait_geq(comm, head_in, tail + n - Q, d);
      *s_flag = ok ? 0 : 1;
    }
    ptx::bar_sync(bar, G * 32);
    if (*s_flag) return;
    const int P = ep_pieces(n, G, z.vecs);
    for (int u = wig; u < n * P; u += G) {
      const int i = u / P, p = u % P;
      const int64_t t = a.send_list[int64_t(d) * a.T + js + start + i];
      char* slot = comm.peers[d] + ep_ring_slot(comm.g, me, c, int64_t((tail + i) % Q));
      const int64_t v0 = z.vecs * p / P, v1 = z.vecs * (p + 1) / P;
      if (!(a.probe_skip & 2))
        ep_copy_one<kUnroll>(reinterpret_cast<const int4*>(static_cast<const char*>(a.x) + t * z.slot.payload_bytes),
                           reinterpret_cast<int4*>(slot), v0, v1, lane);
      if (p == 0) {
        if (lane < a.K) {
          const int row = ep_row_for(a, row_base, t, lane, d, Eloc);
          ptx::st_na_b32(reinterpret_cast<int32_t*>(slot + z.slot.meta_off) + lane, row);
          ptx::st_na_f32(reinterpret_cast<float*>(slot + z.slot.meta_off) + a.K + lane, row >= 0 ? a.weights[t * a.K + lane] : 0.f);
        }
        for (int64_t q = lane; q < z.nscale; q += 32)
          ptx::st_na_f32(reinterpret_cast<float*>(slot + z.slot.scale_off) + q, a.x_scale[t * z.nscale + q]);
      }
    }
    ptx::bar_sync(bar, G * 32);
    tail += n;
    if (leader) ptx::st_release_sys_u64(tail_remote, tail);
  }
  if (leader) *reinterpret_cast<volatile uint64_t*>(tail_own) = tail;
}

__device__ void dispatch_recv(const EpComm& comm, const EpDispatchArgs& a, const Sizes& z, int c, int s, int bar, int wig, int G,
                              int lane, volatile int* s_flag, volatile int* s_avail) {
  const int W = comm.world, me = comm.rank, C = a.C, Q = comm.g.slots;
  const EpPlanLayout L = ep_plan_layout(a.E, W, C);
  const int32_t N = a.plan[L.recv_count + s * C + c];
  const int64_t jg0 = int64_t(a.plan[L.recv_offset + s]) + a.plan[L.recv_start + s * C + c];
  const int64_t own_begin = a.plan[L.recv_offset + me], own_end = a.plan[L.recv_offset + me + 1];
  const uint64_t* tail_in = ep_counter_ptr(comm, me, comm.g.off_tail_in, s, c);
  uint64_t* head_remote = ep_counter_ptr(comm, s, comm.g.off_head_in, me, c);
  uint64_t* head_own = ep_counter_ptr(comm, me, comm.g.off_head_own, s, c);
  uint64_t head = *reinterpret_cast<volatile uint64_t*>(head_own);
  const bool leader = wig == 0 && lane == 0;
  const bool copy = !(a.probe_skip & 4);
  for (int32_t done = 0; done < N;) {
    if (leader) {
      const uint64_t tail = ep_wait_gt(comm, tail_in, head, s);
      *s_flag = tail ? 0 : 1;
      *s_avail = static_cast<int>(ep_min_u64(ep_min_u64(tail - head, uint64_t(N - done)), uint64_t(Q)));
    }
    ptx::bar_sync(bar, G * 32);
    if (*s_flag) return;
    const int n = *s_avail;
    const int P = ep_pieces(n, G, z.vecs);
    for (int u = wig; u < n * P; u += G) {
      const int i = u / P, p = u % P;
      const char* slot = comm.peers[me] + ep_ring_slot(comm.g, s, c, int64_t((head + i) % Q));
      const int64_t jg = jg0 + done + i, staged = ep_staged_row(jg, own_begin, own_end);
      // One destination: the token's staging row (lane 0), never outside the buffer.
      const EpLaneRows dst = ep_lane_rows(staged >= 0 && staged < a.staged_rows ? static_cast<int>(staged) : -1, 1, lane);
      if (copy) {
        const int64_t v0 = z.vecs * p / P, v1 = z.vecs * (p + 1) / P;
        ep_copy_rows<kUnroll, true>(reinterpret_cast<const int4*>(slot), static_cast<int4*>(a.staged_x), z.vecs, dst, v0, v1, lane);
      }
      if (p == 0) {
        if (lane < a.K) {
          int row = ptx::ld_na_b32(reinterpret_cast<const int32_t*>(slot + z.slot.meta_off) + lane);
          if (row >= a.M) row = -1;  // never index outside the layout, whatever arrives
          const float w = ptx::ld_na_f32(reinterpret_cast<const float*>(slot + z.slot.meta_off) + a.K + lane);
          a.recv_token_rows[jg * a.K + lane] = row;
          if (row >= 0) a.recv_weights[row] = w;
        }
        ep_copy_scales<true>(reinterpret_cast<const float*>(slot + z.slot.scale_off), a.staged_scale, z.nscale, dst, lane);
      }
    }
    ptx::bar_sync(bar, G * 32);
    head += n;
    done += n;
    // The slots' reads are done (their values were stored after the barrier): a relaxed store suffices,
    // and does not wait for this block's writes to the staging buffer to drain as a release would.
    if (leader) ptx::st_relaxed_sys_u64(head_remote, head);
  }
  if (leader) *reinterpret_cast<volatile uint64_t*>(head_own) = head;
}

__global__ void __launch_bounds__(kThreads, 1) ep_dispatch_kernel(EpComm comm, EpDispatchArgs a) {
  __shared__ int s_flag[kEpMaxWorld], s_avail[kEpMaxWorld];
  const int W = comm.world, me = comm.rank;
  if (W == 1) return;  // nothing to exchange: ep_expand does the rest
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, c = blockIdx.x / 2;
  Sizes z;
  z.slot = ep_dispatch_slot(a.H, a.fp8, a.K);
  z.vecs = z.slot.payload_bytes / 16;
  z.nscale = z.slot.scale_count;
  const int G = kWarps / (W - 1), g = warp / G;  // one group per peer (sender) or source (receiver)
  if (g >= W - 1) return;
  const int peer = g < me ? g : g + 1;
  if (blockIdx.x % 2 == 0) dispatch_send(comm, a, z, c, peer, 1 + g, warp % G, G, lane, &s_flag[g]);
  else dispatch_recv(comm, a, z, c, peer, 1 + g, warp % G, G, lane, &s_flag[g], &s_avail[g]);
}
}  // namespace

void ep_dispatch(const EpComm& comm, const EpDispatchArgs& a, Stream s) {
  if (comm.world == 1) return;
  ep_dispatch_kernel<<<2 * a.C, kThreads, 0, to_cuda(s)>>>(comm, a);
}

}  // namespace dsk::cuda
