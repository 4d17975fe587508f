// The count exchange before a dispatch: every rank writes its per-expert counts and per-channel token
// counts into a slot of every peer's buffer, raises its flag there (release, system scope), waits for
// every peer's flag in its own buffer (acquire), then computes its plan from all the counts — the same
// arithmetic as cpu::ep_plan. One block; the data is a few KB.
#include "ep_common.cuh"

namespace dsk::cuda {

namespace {
constexpr int kThreads = 1024;

__device__ int64_t lower_bound_i32(const int32_t* a, int64_t n, int64_t v) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    int64_t mid = (lo + hi) / 2;
    if (a[mid] < v) lo = mid + 1; else hi = mid;
  }
  return lo;
}

__global__ void __launch_bounds__(kThreads) ep_notify_kernel(EpComm comm, uint32_t epoch, int E, int K, int64_t H, int fp8, int C,
                                                             int64_t T, const int32_t* tokens_per_expert, const int32_t* tokens_per_rank,
                                                             const int32_t* send_list, int32_t* plan, int32_t* summary) {
  extern __shared__ int32_t sm[];
  const int W = comm.world, me = comm.rank, Eloc = E / W, tid = threadIdx.x;
  int32_t* chan = sm;               // [W * C] my token counts per destination and channel
  int32_t* tot = chan + W * C;      // [E] all ranks' entries per expert
  int32_t* seg = tot + E;           // [E] segment start of each expert on its rank
  int32_t* rtot = seg + E;          // [W] tokens received from each rank
  __shared__ int s_fail;
  const EpPlanLayout L = ep_plan_layout(E, W, C);
  const int parity = epoch & 1;
  const int words = kEpNotifyHeader + E + W * C;
  if (tid == 0) s_fail = 0;

  // 1. My stream to each rank, split by channel.
  for (int i = tid; i < W * C; i += blockDim.x) {
    const int d = i / C, c = i % C;
    const int32_t* list = send_list + int64_t(d) * T;
    const int64_t n = tokens_per_rank[d];
    const int64_t lo = lower_bound_i32(list, n, ep_channel_begin(T, C, c));
    const int64_t hi = lower_bound_i32(list, n, ep_channel_begin(T, C, c + 1));
    chan[i] = static_cast<int32_t>(hi - lo);
    plan[L.send_start + d * (C + 1) + c] = static_cast<int32_t>(lo);
    if (c == C - 1) plan[L.send_start + d * (C + 1) + C] = static_cast<int32_t>(n);
  }
  __syncthreads();

  // 2. Publish: my slot in every buffer, then my flag there.
  for (int64_t i = tid; i < int64_t(W) * words; i += blockDim.x) {
    const int p = static_cast<int>(i / words), w = static_cast<int>(i % words);
    int32_t v;
    if (w < kEpNotifyHeader) {
      const int32_t hdr[kEpNotifyHeader] = {0x45504e31, static_cast<int32_t>(H), K, E, fp8, C, static_cast<int32_t>(T), static_cast<int32_t>(epoch)};
      v = hdr[w];
    } else if (w < kEpNotifyHeader + E) {
      v = tokens_per_expert[w - kEpNotifyHeader];
    } else {
      v = chan[w - kEpNotifyHeader - E];
    }
    reinterpret_cast<int32_t*>(comm.peers[p] + ep_notify_slot(comm.g, parity, me))[w] = v;
  }
  __syncthreads();
  if (tid == 0) {
    for (int p = 0; p < W; p++)
      ptx::st_release_sys_u32(reinterpret_cast<uint32_t*>(comm.peers[p] + comm.g.off_notify_flag + int64_t(me) * kEpCounterStride), epoch);
  }

  // 3. Wait for every rank's flag in my buffer.
  if (tid < W) {
    const uint32_t* f = reinterpret_cast<const uint32_t*>(comm.peers[me] + comm.g.off_notify_flag + int64_t(tid) * kEpCounterStride);
    const uint64_t t0 = ptx::globaltimer_ns();
    for (uint32_t it = 1;; it++) {
      if (static_cast<int32_t>(ptx::ld_acquire_sys_u32(f) - epoch) >= 0) break;
      if ((it & 255) == 0) {
        if (ep_aborted(comm)) { s_fail = 1; break; }
        if (ptx::globaltimer_ns() - t0 > comm.timeout_ns) {
          ep_fail(comm, kDiagEpTimeout, tid, static_cast<int64_t>(comm.timeout_ns / 1000000));
          s_fail = 1;
          break;
        }
      }
    }
  }
  __syncthreads();
  if (s_fail) return;
  auto slot = [&](int s) { return reinterpret_cast<const int32_t*>(comm.peers[me] + ep_notify_slot(comm.g, parity, s)); };
  if (tid < W) {  // every rank must run the same op with the same sizes
    const int32_t* h = slot(tid);
    const int32_t mine[kEpNotifyHeader] = {0x45504e31, static_cast<int32_t>(H), K, E, fp8, C, 0, static_cast<int32_t>(epoch)};
    for (int f = 1; f < kEpNotifyHeader; f++) {
      if (f != 6 && h[f] != mine[f]) { diag_report(comm.diag, kDiagEpMismatch, tid, f); s_fail = 1; break; }
    }
  }
  __syncthreads();
  if (s_fail) return;

  // 4. The plan.
  for (int e = tid; e < E; e += blockDim.x) {
    int32_t total = 0, before = 0;
    for (int s = 0; s < W; s++) {
      const int32_t v = slot(s)[kEpNotifyHeader + e];
      total += v;
      if (s < me) before += v;
    }
    tot[e] = total;
    plan[L.row_base + e] = before;  // segment start added below
  }
  __syncthreads();
  if (tid < W) {
    const int d = tid;
    int32_t run = 0;
    for (int le = 0; le < Eloc; le++) {
      const int e = d * Eloc + le;
      seg[e] = run;
      run += static_cast<int32_t>(ep_round_up(tot[e], kEpAlign));
      if (d == me) {
        plan[L.seg_start + le] = seg[e];
        plan[L.seg_count + le] = tot[e];
        summary[kEpSummaryHeader + le] = tot[e];
      }
    }
    if (d == me) {
      plan[L.seg_start + Eloc] = run;
      summary[0] = run;
    }
    const int s = tid;
    int32_t r = 0;
    for (int c = 0; c < C; c++) {
      const int32_t n = slot(s)[kEpNotifyHeader + E + me * C + c];
      plan[L.recv_count + s * C + c] = n;
      plan[L.recv_start + s * C + c] = r;
      r += n;
    }
    rtot[s] = r;
  }
  __syncthreads();
  for (int e = tid; e < E; e += blockDim.x) plan[L.row_base + e] += seg[e];
  if (tid == 0) {
    int32_t off = 0;
    for (int s = 0; s < W; s++) { plan[L.recv_offset + s] = off; off += rtot[s]; }
    plan[L.recv_offset + W] = off;
    summary[1] = off;
    summary[2] = rtot[me];
    int32_t sent = 0;
    for (int d = 0; d < W; d++)
      if (d != me) sent += plan[L.send_start + d * (C + 1) + C];
    summary[3] = sent;
  }
}

}  // namespace

void ep_notify(const EpComm& comm, uint32_t epoch, int E, int K, int64_t H, bool fp8, int C, int64_t T,
               const int32_t* tokens_per_expert, const int32_t* tokens_per_rank, const int32_t* send_list, int32_t* plan,
               int32_t* summary, Stream s) {
  const size_t smem = (size_t(comm.world) * C + 2 * E + comm.world) * 4;
  ep_notify_kernel<<<1, kThreads, smem, to_cuda(s)>>>(comm, epoch, E, K, H, fp8 ? 1 : 0, C, T, tokens_per_expert, tokens_per_rank,
                                                     send_list, plan, summary);
}

}  // namespace dsk::cuda
