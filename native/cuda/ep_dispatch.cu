// Dispatch: warp-specialized channels over NVLink.
//
// Channel c owns source tokens [T*c/C, T*(c+1)/C) and two blocks: block 2c sends, block 2c+1 receives.
//   sender    one group of warps per destination rank d. For d == me it writes the token's rows of my
//             own experts directly. For a peer it pushes chunks into the ring (me -> d, c) in d's buffer:
//             the group leader waits until the ring has room (head_in, written by d), the warps copy
//             tokens (payload, fp8 scales, and the destination row and weight of each routing entry)
//             with stores that skip L1, a named barrier joins them, and the leader publishes the new tail
//             in d's buffer with a release store at system scope.
//   receiver  one group per source rank s: the leader acquires the tail of ring (s -> me, c), the warps
//             copy every available token to each of its rows (the contiguous per-expert layout), then
//             the leader publishes how far it has read (head) back in s's buffer.
// Tokens of a chunk are split into pieces so that every warp of a group has work even for small chunks.
// On sm_90 the rows are copied by the bulk-copy engine through two staging buffers per warp (a piece's
// load travels while the previous piece's stores read the other buffer); the expansion into the
// per-expert layout is bounded by the SM's store rate, not by these latencies (bench/NOTES.md, v5).
// Every wait is bounded (EpComm::timeout_ns) and watches the abort word, so a dead peer yields an error.
#include "../../ptx/bulk_copy.h"
#include "../../ptx/mbar_tx.h"
#include "ep_common.cuh"

namespace dsk::cuda {

namespace {
constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kUnroll = 14;  // 16-byte loads in flight per lane: 224 B, 112 KB per SM

constexpr int kTmaBuf = 7168;  // bytes of each warp's staging buffer for bulk copies (sm_90)

// A warp's bulk-copy pipeline: `stages` (1 or 2) buffers of kTmaBuf bytes with one mbarrier each, and
// how many loads it has issued and consumed (load k uses buffer k % stages, phase (k / stages) & 1).
struct WarpTma {
  uint32_t buf = 0, mbar = 0;
  int stages = 1;
  uint32_t loads = 0, used = 0;
};

// Lane 0 issues the load of `bytes` at src into the next buffer. Every earlier store has read it first:
// at the start of a run all of them (tma_start), later all but the newest group (tma_next, with 2
// buffers the newest stores read the other one).
__device__ __forceinline__ void tma_load(WarpTma& w, const void* src, uint32_t bytes, bool all_read, int lane) {
  if (lane == 0) {
    if (all_read || w.stages == 1) ptx::bulk_wait_read0();
    else ptx::bulk_wait_read1();
    const uint32_t b = w.loads % w.stages;
    ptx::mbar_arrive_expect_tx(w.mbar + 8 * b, bytes);
    ptx::bulk_load_1d(w.buf + b * kTmaBuf, src, bytes, w.mbar + 8 * b);
  }
  w.loads++;
}
__device__ __forceinline__ void tma_start(WarpTma& w, const void* src, uint32_t bytes, int lane) { tma_load(w, src, bytes, true, lane); }

// The oldest loaded piece (`bytes`) to every row of dst (dst + row * stride + off): lane 0 waits for
// its load and issues one bulk store per row; then the next piece's load (next != nullptr) is issued,
// so it travels while these stores read the buffer.
__device__ __forceinline__ void tma_next(WarpTma& w, uint32_t bytes, char* dst, int64_t stride, int64_t off, const EpLaneRows& r,
                                         const void* next, uint32_t next_bytes, int lane) {
  const uint32_t b = w.used % w.stages;
  if (lane == 0) ptx::mbar_wait(w.mbar + 8 * b, (w.used / w.stages) & 1);
  w.used++;
  for (uint32_t m = r.mask; m; m &= m - 1) {
    const int row = __shfl_sync(0xffffffffu, r.row, __ffs(m) - 1);
    if (lane == 0) ptx::bulk_store_1d(dst + int64_t(row) * stride + off, w.buf + b * kTmaBuf, bytes);
  }
  if (lane == 0) ptx::bulk_commit();
  if (next) tma_load(w, next, next_bytes, false, lane);
  __syncwarp();
}

struct Sizes {
  int64_t vecs;       // 16-byte vectors of payload per token
  int64_t nscale;     // fp8 scales per token
  EpSlotLayout slot;
};

// Row of routing entry (t, k) on rank `dest`, or -1. Rows on this rank are checked against this rank's
// recv_x here; a peer checks the rows it receives against its own.
__device__ __forceinline__ int ep_row_for(const EpDispatchArgs& a, const int32_t* row_base, int64_t t, int k, int dest, int Eloc, int me) {
  const int32_t e = a.idx[t * a.K + k], p = a.pos[t * a.K + k];
  if (e < 0 || e >= a.E || p < 0 || e / Eloc != dest) return -1;
  const int64_t row = int64_t(row_base[e]) + p;
  return dest != me || row < a.M ? static_cast<int>(row) : -1;
}

// fp8 scales of one token (nscale floats) to each of its rows.
template <bool kRing>
__device__ __forceinline__ void copy_scales(const float* src, float* dst, int64_t nscale, const EpLaneRows& r, int lane) {
  for (uint32_t m = r.mask; m; m &= m - 1) {
    const int row = __shfl_sync(0xffffffffu, r.row, __ffs(m) - 1);
    for (int64_t q = lane; q < nscale; q += 32)
      ptx::st_na_f32(dst + int64_t(row) * nscale + q, kRing ? ptx::ld_na_f32(src + q) : ptx::ld_nc_na_f32(src + q));
  }
}

template <bool kTma>
__device__ void dispatch_self(const EpComm& comm, const EpDispatchArgs& a, const Sizes& z, int c, int wig, int G, int lane, WarpTma& tw) {
  const int W = comm.world, me = comm.rank, C = a.C, Eloc = a.E / W;
  const EpPlanLayout L = ep_plan_layout(a.E, W, C);
  const int32_t js = a.plan[L.send_start + me * (C + 1) + c];
  const int32_t N = a.plan[L.send_start + me * (C + 1) + c + 1] - js;
  const int64_t jg0 = int64_t(a.plan[L.recv_offset + me]) + js;
  const int32_t* row_base = a.plan + L.row_base;
  const int64_t pb = z.slot.payload_bytes;
  const int Pt = kTma ? static_cast<int>((pb + kTmaBuf - 1) / kTmaBuf) : 1;  // pieces of a token
  const bool copy = !(a.probe_skip & 1);
  // Piece u of the own tokens: its source and size (bulk copies).
  auto piece = [&](int32_t u, uint32_t& bytes) {
    const int64_t t = a.send_list[int64_t(me) * a.T + js + u / Pt], off = int64_t(u % Pt) * kTmaBuf;
    bytes = static_cast<uint32_t>(pb - off < kTmaBuf ? pb - off : kTmaBuf);
    return static_cast<const char*>(a.x) + t * pb + off;
  };
  if (kTma && copy && wig < N * Pt) {
    uint32_t b0;
    const char* s0 = piece(wig, b0);
    tma_start(tw, s0, b0, lane);
  }
  for (int32_t u = wig; u < N * Pt; u += G) {
    const int32_t i = u / Pt;
    const int p = u % Pt;
    const int64_t t = a.send_list[int64_t(me) * a.T + js + i];
    int row = -1;
    if (lane < a.K) {
      row = ep_row_for(a, row_base, t, lane, me, Eloc, me);
      if (p == 0) {
        a.recv_token_rows[(jg0 + i) * a.K + lane] = row;
        if (row >= 0) a.recv_weights[row] = a.weights[t * a.K + lane];
      }
    }
    const EpLaneRows r = ep_lane_rows(row, a.K, lane);
    const char* src = static_cast<const char*>(a.x) + t * pb;
    if (!copy) continue;
    if (kTma) {
      uint32_t bytes, nb = 0;
      piece(u, bytes);
      const char* next = u + G < N * Pt ? piece(u + G, nb) : nullptr;
      tma_next(tw, bytes, static_cast<char*>(a.recv_x), pb, int64_t(p) * kTmaBuf, r, next, nb, lane);
    } else {
      ep_copy_rows<kUnroll, false>(reinterpret_cast<const int4*>(src), static_cast<int4*>(a.recv_x), z.vecs, r, 0, z.vecs, lane);
    }
    if (p == 0) copy_scales<false>(a.x_scale + t * z.nscale, a.recv_scale, z.nscale, r, lane);
  }
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
          const int row = ep_row_for(a, row_base, t, lane, d, Eloc, me);
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

template <bool kTma>
__device__ void dispatch_recv(const EpComm& comm, const EpDispatchArgs& a, const Sizes& z, int c, int s, int bar, int wig, int G,
                              int lane, volatile int* s_flag, volatile int* s_avail, WarpTma& tw) {
  const int W = comm.world, me = comm.rank, C = a.C, Q = comm.g.slots;
  const EpPlanLayout L = ep_plan_layout(a.E, W, C);
  const int32_t N = a.plan[L.recv_count + s * C + c];
  const int64_t jg0 = int64_t(a.plan[L.recv_offset + s]) + a.plan[L.recv_start + s * C + c];
  const uint64_t* tail_in = ep_counter_ptr(comm, me, comm.g.off_tail_in, s, c);
  uint64_t* head_remote = ep_counter_ptr(comm, s, comm.g.off_head_in, me, c);
  uint64_t* head_own = ep_counter_ptr(comm, me, comm.g.off_head_own, s, c);
  uint64_t head = *reinterpret_cast<volatile uint64_t*>(head_own);
  const bool leader = wig == 0 && lane == 0;
  for (int32_t done = 0; done < N;) {
    if (leader) {
      const uint64_t tail = ep_wait_gt(comm, tail_in, head, s);
      *s_flag = tail ? 0 : 1;
      *s_avail = static_cast<int>(ep_min_u64(ep_min_u64(tail - head, uint64_t(N - done)), uint64_t(Q)));
    }
    ptx::bar_sync(bar, G * 32);
    if (*s_flag) return;
    const int n = *s_avail;
    const int64_t pb = z.slot.payload_bytes;
    const int P = kTma ? static_cast<int>((pb + kTmaBuf - 1) / kTmaBuf) : ep_pieces(n, G, z.vecs);
    const bool copy = !(a.probe_skip & 4);
    // Piece u of this batch: its slot and size (bulk copies).
    auto piece = [&](int u, uint32_t& bytes) {
      const int64_t off = int64_t(u % P) * kTmaBuf;
      bytes = static_cast<uint32_t>(pb - off < kTmaBuf ? pb - off : kTmaBuf);
      return comm.peers[me] + ep_ring_slot(comm.g, s, c, int64_t((head + u / P) % Q)) + off;
    };
    if (kTma && copy && wig < n * P) {
      uint32_t b0;
      const char* s0 = piece(wig, b0);
      tma_start(tw, s0, b0, lane);
    }
    for (int u = wig; u < n * P; u += G) {
      const int i = u / P, p = u % P;
      const char* slot = comm.peers[me] + ep_ring_slot(comm.g, s, c, int64_t((head + i) % Q));
      int row = -1;
      float w = 0.f;
      if (lane < a.K) {
        row = ptx::ld_na_b32(reinterpret_cast<const int32_t*>(slot + z.slot.meta_off) + lane);
        if (row >= a.M) row = -1;  // never write outside recv_x, whatever arrives
        w = ptx::ld_na_f32(reinterpret_cast<const float*>(slot + z.slot.meta_off) + a.K + lane);
      }
      const EpLaneRows r = ep_lane_rows(row, a.K, lane);
      if (copy && kTma) {
        uint32_t bytes, nb = 0;
        piece(u, bytes);
        const char* next = u + G < n * P ? piece(u + G, nb) : nullptr;
        tma_next(tw, bytes, static_cast<char*>(a.recv_x), pb, int64_t(p) * kTmaBuf, r, next, nb, lane);
      } else if (copy) {
        const int64_t v0 = z.vecs * p / P, v1 = z.vecs * (p + 1) / P;
        ep_copy_rows<kUnroll, true>(reinterpret_cast<const int4*>(slot), static_cast<int4*>(a.recv_x), z.vecs, r, v0, v1, lane);
      }
      if (p == 0) {
        if (lane < a.K) {
          a.recv_token_rows[(jg0 + done + i) * a.K + lane] = row;
          if (row >= 0) a.recv_weights[row] = w;
        }
        copy_scales<true>(reinterpret_cast<const float*>(slot + z.slot.scale_off), a.recv_scale, z.nscale, r, lane);
      }
    }
    ptx::bar_sync(bar, G * 32);
    head += n;
    done += n;
    // The slots' reads are done (their values were stored after the barrier): a relaxed store suffices,
    // and does not wait for this block's writes to recv_x to drain as a release would.
    if (leader) ptx::st_relaxed_sys_u64(head_remote, head);
  }
  if (leader) *reinterpret_cast<volatile uint64_t*>(head_own) = head;
}

template <bool kTma>
__global__ void __launch_bounds__(kThreads, 1) ep_dispatch_kernel(EpComm comm, EpDispatchArgs a) {
  __shared__ int s_flag[kEpMaxWorld], s_avail[kEpMaxWorld];
  extern __shared__ __align__(128) char dsm[];  // kTma: kWarps buffers of kTmaBuf bytes, then kWarps mbarriers
  const int W = comm.world, me = comm.rank;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, c = blockIdx.x / 2;
  WarpTma tw;
  if (kTma) {
    tw.stages = a.tma_stages;
    tw.buf = static_cast<uint32_t>(__cvta_generic_to_shared(dsm + warp * tw.stages * kTmaBuf));
    tw.mbar = static_cast<uint32_t>(__cvta_generic_to_shared(dsm + kWarps * tw.stages * kTmaBuf + warp * tw.stages * 8));
    if (lane == 0) {
      for (int b = 0; b < tw.stages; b++) ptx::mbar_init(tw.mbar + 8 * b, 1);
      ptx::mbar_init_fence();
    }
    __syncwarp();
  }
  if (a.m_indices) {  // every block fills a stride of mIndices first (a few hundred KB at most)
    const EpPlanLayout L = ep_plan_layout(a.E, W, a.C);
    const int Eloc = a.E / W;
    const int32_t* seg = a.plan + L.seg_start;
    for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < a.M; r += int64_t(gridDim.x) * blockDim.x) {
      int lo = 0, hi = Eloc;  // the last segment starting at or before r (empty ones share a start)
      while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (seg[mid] <= r) lo = mid; else hi = mid;
      }
      a.m_indices[r] = r - seg[lo] < a.plan[L.seg_count + lo] ? lo : -1;
    }
  }
  Sizes z;
  z.slot = ep_dispatch_slot(a.H, a.fp8, a.K);
  z.vecs = z.slot.payload_bytes / 16;
  z.nscale = z.slot.scale_count;
  const int self_recv = W > 1 ? min(a.self_warps_on_recv, kWarps - (W - 1)) : 0;
  if (self_recv > 0) {
    // The sender block only pushes (one group per peer); the receiver block's first self_recv warps
    // write this rank's own rows and the rest receive (one group per source), so the expansion writes
    // are spread over both blocks of the channel.
    if (blockIdx.x % 2 == 0) {
      const int G = kWarps / (W - 1), g = warp / G;
      if (g < W - 1) dispatch_send(comm, a, z, c, g < me ? g : g + 1, 1 + g, warp % G, G, lane, &s_flag[g]);
    } else if (warp < self_recv) {
      dispatch_self<kTma>(comm, a, z, c, warp, self_recv, lane, tw);
    } else {
      const int G = (kWarps - self_recv) / (W - 1), g = (warp - self_recv) / G;
      if (g < W - 1) {
        const int s = g < me ? g : g + 1;
        dispatch_recv<kTma>(comm, a, z, c, s, 1 + g, (warp - self_recv) % G, G, lane, &s_flag[g], &s_avail[g], tw);
      }
    }
  } else if (blockIdx.x % 2 == 0) {
    // One group per peer, and the rest of the warps write this rank's own rows: a token sent to a peer
    // is one row of stores, one kept here about K/W rows, so the split follows the expected bytes
    // (peers weighted more for their chunk handshakes).
    // With bulk copies the own rows cost the warps far less (half weight), and peers weigh 2.
    const float wself = kTma ? 0.5f : 1.f, wpeer = kTma ? 2.f : 1.5f;
    const float units = wself * float(a.K) / W + wpeer * (W - 1);
    int Gr = W > 1 ? int(wpeer * kWarps / units) : 0;
    if (Gr < 1 && W > 1) Gr = 1;
    if ((W - 1) * Gr > kWarps - 1) Gr = (kWarps - 1) / (W - 1);
    const int Gs = kWarps - (W - 1) * Gr;
    if (warp < Gs) {
      dispatch_self<kTma>(comm, a, z, c, warp, Gs, lane, tw);
    } else {
      const int g = (warp - Gs) / Gr, d = g < me ? g : g + 1;
      dispatch_send(comm, a, z, c, d, 1 + g, (warp - Gs) % Gr, Gr, lane, &s_flag[g]);
    }
  } else if (W > 1) {
    const int G = kWarps / (W - 1), g = warp / G;  // one group per source peer
    if (g < W - 1) {
      const int s = g < me ? g : g + 1;
      dispatch_recv<kTma>(comm, a, z, c, s, 1 + g, warp % G, G, lane, &s_flag[g], &s_avail[g], tw);
    }
  }
  if (kTma && lane == 0) ptx::bulk_wait0();  // the rows are written before the kernel ends
}
}  // namespace

void ep_dispatch(const EpComm& comm, const EpDispatchArgs& a, Stream s) {
  if (a.tma) {
    EpDispatchArgs b = a;
    b.tma_stages = a.tma_stages >= 2 ? 2 : 1;
    const int smem = kWarps * b.tma_stages * (kTmaBuf + 8);
    static int configured = 0;  // the dynamic shared memory the kernel was last allowed
    if (smem > configured && cudaFuncSetAttribute(ep_dispatch_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) == cudaSuccess)
      configured = smem;
    ep_dispatch_kernel<true><<<2 * a.C, kThreads, smem, to_cuda(s)>>>(comm, b);
  } else {
    ep_dispatch_kernel<false><<<2 * a.C, kThreads, 0, to_cuda(s)>>>(comm, a);
  }
}

}  // namespace dsk::cuda
