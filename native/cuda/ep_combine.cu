// Combine's exchange: the reverse trip of the dispatch's, one row per (token, rank) again.
//
// Block 2c (expert side) has one group of warps per peer s: it walks the tokens it received from s in
// channel c (in the order of the dispatch) and pushes each one's sum over this rank's experts (bf16, a
// row of `partial` from ep_reduce; consecutive tokens are consecutive rows) into the ring (me -> s, c).
// Block 2c+1 (home side) has one group per peer d: it copies the sums d returns for this rank's tokens
// of channel c into `staged` (ep_returned_row), as the dispatch's receiver does. Adding them up — a read
// of every returned row and of this rank's own sums — is ep_sum's, on the compute SMs: done here, on the
// home side's few SMs, it bounded the exchange (bench/NOTES.md, v6).
#include "ep_common.cuh"

namespace dsk::cuda {

namespace {
constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kUnroll = 14;  // 16-byte loads in flight per lane

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
      if (!(a.probe_skip & 2)) ep_copy_one<kUnroll>(src, slot, vecs * p / P, vecs * (p + 1) / P, lane);
    }
    ptx::bar_sync(bar, G * 32);
    tail += n;
    if (leader) ptx::st_release_sys_u64(tail_remote, tail);
  }
  if (leader) *reinterpret_cast<volatile uint64_t*>(tail_own) = tail;
}

__device__ void combine_recv(const EpComm& comm, const EpCombineArgs& a, int c, int d, int bar, int wig, int G, int lane,
                             volatile int* s_flag, volatile int* s_avail) {
  const int W = comm.world, me = comm.rank, C = a.C, Q = comm.g.slots;
  const EpPlanLayout L = ep_plan_layout(a.E, W, C);
  // This rank's tokens of channel c that went to d, in the order d returns them.
  const int32_t js = a.plan[L.send_start + d * (C + 1) + c];
  const int32_t N = a.plan[L.send_start + d * (C + 1) + c + 1] - js;
  const int64_t row0 = ep_returned_row(a.plan, L, C, me, d, js), vecs = a.H / 8;
  const uint64_t* tail_in = ep_counter_ptr(comm, me, comm.g.off_tail_in, d, c);
  uint64_t* head_remote = ep_counter_ptr(comm, d, comm.g.off_head_in, me, c);
  uint64_t* head_own = ep_counter_ptr(comm, me, comm.g.off_head_own, d, c);
  uint64_t head = *reinterpret_cast<volatile uint64_t*>(head_own);
  const bool leader = wig == 0 && lane == 0;
  for (int32_t done = 0; done < N;) {
    if (leader) {
      const uint64_t tail = ep_wait_gt(comm, tail_in, head, d);
      *s_flag = tail ? 0 : 1;
      *s_avail = static_cast<int>(ep_min_u64(ep_min_u64(tail - head, uint64_t(N - done)), uint64_t(Q)));
    }
    ptx::bar_sync(bar, G * 32);
    if (*s_flag) return;
    const int n = *s_avail;
    const int P = ep_pieces(n, G, vecs);
    for (int u = wig; u < n * P; u += G) {
      const int i = u / P, p = u % P;
      const char* slot = comm.peers[me] + ep_ring_slot(comm.g, d, c, int64_t((head + i) % Q));
      const int64_t row = row0 + done + i;
      const EpLaneRows dst = ep_lane_rows(row < a.staged_rows ? static_cast<int>(row) : -1, 1, lane);
      if (!(a.probe_skip & 4))
        ep_copy_rows<kUnroll, true>(reinterpret_cast<const int4*>(slot), reinterpret_cast<int4*>(a.staged), vecs, dst,
                                    vecs * p / P, vecs * (p + 1) / P, lane);
    }
    ptx::bar_sync(bar, G * 32);
    head += n;
    done += n;
    if (leader) ptx::st_relaxed_sys_u64(head_remote, head);  // reads done: relaxed, no drain of our writes
  }
  if (leader) *reinterpret_cast<volatile uint64_t*>(head_own) = head;
}

__global__ void __launch_bounds__(kThreads, 1) ep_combine_kernel(EpComm comm, EpCombineArgs a) {
  __shared__ int s_flag[kEpMaxWorld], s_avail[kEpMaxWorld];
  const int W = comm.world, me = comm.rank;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, c = blockIdx.x / 2;
  const int G = kWarps / (W - 1), g = warp / G;  // one group per peer
  if (g >= W - 1) return;
  const int peer = g < me ? g : g + 1;
  if (blockIdx.x % 2 == 0) combine_send(comm, a, c, peer, 1 + g, warp % G, G, lane, &s_flag[g]);
  else combine_recv(comm, a, c, peer, 1 + g, warp % G, G, lane, &s_flag[g], &s_avail[g]);
}
}  // namespace

void ep_combine(const EpComm& comm, const EpCombineArgs& a, Stream s) {
  if (comm.world == 1) return;
  ep_combine_kernel<<<2 * a.C, kThreads, 0, to_cuda(s)>>>(comm, a);
}

}  // namespace dsk::cuda
