// Combine on sm_90 with bulk loads: the exchange, the roles and the f32 order of ep_combine.cu, but the
// rows a token's sum reads come in through the copy engine instead of register loads.
//
// Each warp runs its own pipeline of `stages` shared-memory stages. A stage holds one piece of one
// token: the same slice of the hidden dimension of every row the token's sum reads (its rows on this
// rank in k order, then, at the token's home rank, the peers' partial sums in rank order), as wide as
// fits the stage. Lane j issues the bulk load of row j; one mbarrier counts the bytes of the stage.
// While the warp reduces one stage (f32: rows weighted then partial sums added) the next stages'
// loads are in flight, so an SM keeps ~(stages - 1) * stage_bytes * 16 bytes of HBM reads in flight
// instead of a few registers per lane. Outputs leave through register stores as before (the partial sum
// into the peer's ring slot over NVLink, or the token's row of `out`).
//
// The home side waits per token (the lane that loads a peer's partial sum acquires that peer's tail,
// then fences so the bulk load sees the slot), so it starts before a whole window has arrived.
//
// Measured on 2x H200 (bench/NOTES.md, v5): slower than the register kernel of ep_combine.cu (1.2x with
// bulk copies, 1.5x with cp.async at their best stage sizes), the time growing with the number of pieces
// whatever the depth. Opt-in (DSK_EP_COMBINE_PIPE=1 cp.async, =2 bulk); the register kernel is the default.
#include "../../ptx/bulk_copy.h"
#include "../../ptx/cp_async.h"
#include "../../ptx/mbar_tx.h"
#include "ep_common.cuh"

namespace dsk::cuda {

namespace {
constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxRows = 32;  // K local rows + (W - 1) partial sums: 16 + 15 at most

// What the reducing lanes need to know about the piece in a stage (written when it is issued).
struct StageMeta {
  float w[kMaxRows];
  char* dst;
  int32_t nrows, nloc, bytes, pad;
};

// One token as the warp sees it: lane j < nrows holds row j (source row start and weight); rows
// [0, nloc) are weighted, [nloc, nrows) are partial sums (added as they are).
struct Tok {
  const char* src;
  float w;
  char* dst;  // output row (the same on every lane)
  int nrows, nloc;
  int pw, P;  // bytes of each row in a piece (a multiple of 16), pieces
};

struct Pipe {
  char* buf;        // stage 0 (generic pointer)
  uint32_t buf_s;   // stage 0 (shared window)
  uint32_t mbar_s;  // mbarrier of stage 0 (shared window)
  StageMeta* meta;
  int S, SB;
  uint32_t issued, done;  // pieces issued / reduced by this warp since the kernel started
  bool nostore;           // probe: reduce without storing
  bool async16;           // loads by 16-byte cp.async of every lane (the stage's mbarrier expects 32 arrivals)
};

__device__ __forceinline__ void set_pieces(Tok& t, int64_t RB, int SB) {
  const int r = t.nrows > 1 ? t.nrows : 1;
  int pw = (SB / r) & ~15;
  if (pw > RB) pw = static_cast<int>(RB);
  t.pw = pw;
  t.P = static_cast<int>((RB + pw - 1) / pw);
}

__device__ __forceinline__ void issue(Pipe& pp, const Tok& t, int p, int64_t RB, int lane) {
  const int s = static_cast<int>(pp.issued % pp.S);
  const int64_t off = int64_t(p) * t.pw;
  const int bytes = static_cast<int>(RB - off < t.pw ? RB - off : t.pw);
  StageMeta& m = pp.meta[s];
  const uint32_t mbar = pp.mbar_s + 8 * s;
  if (lane < t.nrows) m.w[lane] = t.w;
  if (lane == 0) {
    m.dst = t.dst + off;
    m.nrows = t.nrows;
    m.nloc = t.nloc;
    m.bytes = bytes;
    if (!pp.async16) ptx::mbar_arrive_expect_tx(mbar, static_cast<uint32_t>(t.nrows * bytes));
  }
  __syncwarp();
  const uint32_t st = pp.buf_s + s * pp.SB;
  if (pp.async16) {
    // Every lane copies its 16-byte vectors of every row, then arrives once its copies have landed.
    for (int j = 0; j < t.nrows; j++) {
      const char* src = reinterpret_cast<const char*>(__shfl_sync(0xffffffffu, reinterpret_cast<uintptr_t>(t.src), j)) + off;
      for (int v = lane; v < bytes / 16; v += 32) ptx::cp_async_16(st + j * bytes + v * 16, src + v * 16);
    }
    ptx::cp_async_mbarrier_arrive_noinc(mbar);
  } else if (lane < t.nrows) {
    ptx::bulk_load_1d(st + lane * bytes, t.src + off, static_cast<uint32_t>(bytes), mbar);
  }
  pp.issued++;
}

// Waits for the oldest issued piece and writes its sum.
__device__ __forceinline__ void reduce(Pipe& pp, int lane) {
  const int s = static_cast<int>(pp.done % pp.S);
  ptx::mbar_wait(pp.mbar_s + 8 * s, (pp.done / pp.S) & 1);
  const StageMeta& m = pp.meta[s];
  const int nrows = m.nrows, nloc = m.nloc, bytes = m.bytes;
  int4* dst = reinterpret_cast<int4*>(m.dst);
  const char* st = pp.buf + s * pp.SB;
  const int nv = bytes / 16;
  for (int v = lane; v < nv; v += 64) {
    const bool two = v + 32 < nv;
    float acc[2][8];
#pragma unroll
    for (int j = 0; j < 8; j++) acc[0][j] = acc[1][j] = 0.f;
    for (int r = 0; r < nrows; r++) {
      const int4* row = reinterpret_cast<const int4*>(st + r * bytes);
      const int4 q0 = row[v];
      const int4 q1 = two ? row[v + 32] : q0;
      float f0[8], f1[8];
      bf16x8_to_f32(q0, f0);
      bf16x8_to_f32(q1, f1);
      if (r < nloc) {
        const float w = m.w[r];
#pragma unroll
        for (int j = 0; j < 8; j++) {
          acc[0][j] = __fadd_rn(acc[0][j], __fmul_rn(w, f0[j]));
          acc[1][j] = __fadd_rn(acc[1][j], __fmul_rn(w, f1[j]));
        }
      } else {
#pragma unroll
        for (int j = 0; j < 8; j++) {
          acc[0][j] = __fadd_rn(acc[0][j], f0[j]);
          acc[1][j] = __fadd_rn(acc[1][j], f1[j]);
        }
      }
    }
    if (pp.nostore) {
      if (acc[0][0] == 1234.5f && acc[1][0] == 1234.5f) ptx::st_na_v4(dst + v, f32_to_bf16x8(acc[0]));  // keeps the math
      continue;
    }
    ptx::st_na_v4(dst + v, f32_to_bf16x8(acc[0]));
    if (two) ptx::st_na_v4(dst + v + 32, f32_to_bf16x8(acc[1]));
  }
  __syncwarp();  // the stage's reads are done before it is refilled
  pp.done++;
}

// Tokens first, first + step, ... < count through the warp's pipeline. describe(i, tok) fills a token
// (every lane) and returns false when a wait failed; then nothing more is issued, what is in flight is
// drained, and the result is false.
template <class Describe>
__device__ __forceinline__ bool pipe_tokens(Pipe& pp, int first, int count, int step, int64_t RB, int lane, Describe describe) {
  Tok t{};
  bool have = false, ok = true;
  int ti = first, p = 0;
  for (;;) {
    while (ok && pp.issued - pp.done < uint32_t(pp.S)) {
      if (!have) {
        if (ti >= count) break;
        if (!describe(ti, t)) {
          ok = false;
          break;
        }
        set_pieces(t, RB, pp.SB);
        have = true;
        p = 0;
      }
      issue(pp, t, p, RB, lane);
      if (++p == t.P) {
        have = false;
        ti += step;
      }
    }
    if (pp.done == pp.issued) break;
    reduce(pp, lane);
  }
  return ok;
}

// Lane j < popc(mask) gets the lane of mask's j-th set bit (others: their own lane).
__device__ __forceinline__ int nth_lane(uint32_t mask, int j, int lane) {
  if (j < 0 || j >= __popc(mask)) return lane;
  for (int k = 0; k < j; k++) mask &= mask - 1;  // drop the j lowest set bits
  return __ffs(mask) - 1;
}

__device__ void combine_send(const EpComm& comm, const EpCombineArgs& a, Pipe& pp, int c, int s, int bar, int wig, int G, int lane,
                             volatile int* s_flag) {
  const int W = comm.world, me = comm.rank, C = a.C, Q = comm.g.slots;
  const EpPlanLayout L = ep_plan_layout(a.E, W, C);
  const int32_t N = a.plan[L.recv_count + s * C + c];
  const int64_t jg0 = int64_t(a.plan[L.recv_offset + s]) + a.plan[L.recv_start + s * C + c];
  const int64_t RB = a.H * 2;
  const uint64_t* head_in = ep_counter_ptr(comm, me, comm.g.off_head_in, s, c);
  uint64_t* tail_remote = ep_counter_ptr(comm, s, comm.g.off_tail_in, me, c);
  uint64_t* tail_own = ep_counter_ptr(comm, me, comm.g.off_tail_own, s, c);
  uint64_t tail = *reinterpret_cast<volatile uint64_t*>(tail_own);
  const bool leader = wig == 0 && lane == 0;
  const char* y = reinterpret_cast<const char*>(a.y);
  for (int32_t start = 0; start < N; start += a.chunk) {
    const int n = min(a.chunk, N - start);
    if (leader) {
      const bool ok = tail + n <= uint64_t(Q) || ep_wait_geq(comm, head_in, tail + n - Q, s);
      *s_flag = ok ? 0 : 1;
    }
    ptx::bar_sync(bar, G * 32);
    if (*s_flag) return;
    pipe_tokens(pp, wig, n, G, RB, lane, [&](int i, Tok& t) {
      const int64_t jg = jg0 + start + i;
      int row = lane < a.K ? a.recv_token_rows[jg * a.K + lane] : -1;
      if ((a.probe & 1) && row >= 0) row = static_cast<int>((jg * a.K + lane) % a.M);
      const float w = row >= 0 ? a.recv_weights[row] : 0.f;
      const uint32_t mask = __ballot_sync(0xffffffffu, row >= 0);
      const int from = nth_lane(mask, lane, lane);
      const int r = __shfl_sync(0xffffffffu, row, from);
      t.w = __shfl_sync(0xffffffffu, w, from);
      t.nrows = t.nloc = __popc(mask);
      t.src = lane < t.nrows ? y + int64_t(r) * RB : nullptr;
      t.dst = comm.peers[s] + ep_ring_slot(comm.g, me, c, int64_t((tail + i) % Q));
      return true;
    });
    ptx::bar_sync(bar, G * 32);
    tail += n;
    if (leader) ptx::st_release_sys_u64(tail_remote, tail);
  }
  if (leader) *reinterpret_cast<volatile uint64_t*>(tail_own) = tail;
}

__device__ void combine_recv(const EpComm& comm, const EpCombineArgs& a, Pipe& pp, int c, int warp, int lane, volatile int* s_flag) {
  const int W = comm.world, me = comm.rank, C = a.C, Q = comm.g.slots, Eloc = a.E / W;
  const EpPlanLayout L = ep_plan_layout(a.E, W, C);
  const int64_t t0 = ep_channel_begin(a.T, C, c), t1 = ep_channel_begin(a.T, C, c + 1);
  const int64_t RB = a.H * 2;
  const char* y = reinterpret_cast<const char*>(a.y);
  char* base = comm.peers[me];
  // Lane d of every warp tracks peer d: where its stream started (head at kernel start, first position).
  uint64_t head0 = 0;
  int32_t first = 0, consumed = 0;
  if (lane < W && lane != me) {
    head0 = *reinterpret_cast<volatile uint64_t*>(ep_counter_ptr(comm, me, comm.g.off_head_own, lane, c));
    first = a.plan[L.send_start + lane * (C + 1) + c];
  }
  for (int64_t ws = t0; ws < t1; ws += a.chunk) {
    const int n = static_cast<int>(t1 - ws < a.chunk ? t1 - ws : int64_t(a.chunk));
    const bool ok = pipe_tokens(pp, warp, n, kWarps, RB, lane, [&](int i, Tok& t) {
      const int64_t tk = ws + i;
      int row = -1;
      if (lane < a.K) {
        const int32_t e = a.idx[tk * a.K + lane], q = a.pos[tk * a.K + lane];
        if (e >= 0 && e < a.E && q >= 0 && e / Eloc == me) row = a.plan[L.row_base + e] + q;
        if ((a.probe & 1) && row >= 0) row = static_cast<int>((tk * a.K + lane) % a.M);
        if (a.probe & 4) row = -1;
      }
      const float w = row >= 0 ? a.recv_weights[row] : 0.f;
      int64_t off = -1;
      uint64_t upto = 0;  // the peer's tail must reach this before its slot is read
      if (lane < W && lane != me) {
        const int32_t j = a.token_idx_in_rank[tk * W + lane];
        if (j >= 0) {
          upto = head0 + uint64_t(j - first) + 1;
          off = ep_ring_slot(comm.g, lane, c, int64_t((upto - 1) % Q));
        }
      }
      const uint32_t ml = __ballot_sync(0xffffffffu, row >= 0), mp = __ballot_sync(0xffffffffu, off >= 0);
      const int nl = __popc(ml), np = __popc(mp);
      const int from = lane < nl ? nth_lane(ml, lane, lane) : nth_lane(mp, lane - nl, lane);
      const int r = __shfl_sync(0xffffffffu, row, from);
      const float wr = __shfl_sync(0xffffffffu, w, from);
      const int64_t o = __shfl_sync(0xffffffffu, off, from);
      const uint64_t u = __shfl_sync(0xffffffffu, upto, from);
      t.nloc = nl;
      t.nrows = nl + np;
      t.dst = reinterpret_cast<char*>(a.out) + tk * RB;
      bool fine = true;
      if (lane < nl) {
        t.src = y + int64_t(r) * RB;
        t.w = wr;
      } else if (lane < nl + np) {
        fine = ep_wait_geq(comm, ep_counter_ptr(comm, me, comm.g.off_tail_in, from, c), u, from);
        if (fine) ptx::fence_proxy_async_global();  // the bulk load this lane issues sees the slot
        t.src = base + o;
        t.w = 1.f;
      } else {
        t.src = nullptr;
        t.w = 0.f;
      }
      return __all_sync(0xffffffffu, fine) != 0;
    });
    if (!ok && lane == 0) *s_flag = 1;
    int need = 0;  // warp 0, lane d: tokens of this window routed to peer d (all read once the window is done)
    if (warp == 0)
      for (int d = 0; d < W; d++) {
        if (d == me) continue;
        int cnt = 0;
        for (int i = lane; i < n; i += 32) cnt += a.token_idx_in_rank[(ws + i) * W + d] >= 0;
        cnt = __reduce_add_sync(0xffffffffu, cnt);
        if (lane == d) need = cnt;
      }
    __syncthreads();
    if (*s_flag) return;
    consumed += need;
    if (warp == 0 && lane < W && lane != me && need > 0)  // reads done: relaxed, no drain of our writes
      ptx::st_relaxed_sys_u64(ep_counter_ptr(comm, lane, comm.g.off_head_in, me, c), head0 + consumed);
  }
  if (warp == 0 && lane < W && lane != me)
    *reinterpret_cast<volatile uint64_t*>(ep_counter_ptr(comm, me, comm.g.off_head_own, lane, c)) = head0 + consumed;
}

__global__ void __launch_bounds__(kThreads, 1) ep_combine_bulk_kernel(EpComm comm, EpCombineArgs a) {
  __shared__ int s_flag[kEpMaxWorld];
  extern __shared__ __align__(128) char dsm[];  // stages of every warp, then their mbarriers, then their metadata
  const int W = comm.world, me = comm.rank;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, c = blockIdx.x / 2;
  Pipe pp;
  pp.S = a.stages;
  pp.SB = a.stage_bytes;
  pp.buf = dsm + warp * pp.S * pp.SB;
  pp.buf_s = static_cast<uint32_t>(__cvta_generic_to_shared(pp.buf));
  char* mbars = dsm + kWarps * pp.S * pp.SB;
  pp.mbar_s = static_cast<uint32_t>(__cvta_generic_to_shared(mbars + warp * pp.S * 8));
  pp.meta = reinterpret_cast<StageMeta*>(mbars + kWarps * pp.S * 8) + warp * pp.S;
  pp.issued = pp.done = 0;
  pp.nostore = (a.probe & 2) && blockIdx.x % 2 == 0;
  pp.async16 = a.async16;
  if (lane == 0) {
    for (int s = 0; s < pp.S; s++) ptx::mbar_init(pp.mbar_s + 8 * s, pp.async16 ? 32 : 1);
    ptx::mbar_init_fence();
  }
  if (threadIdx.x < kEpMaxWorld) s_flag[threadIdx.x] = 0;
  __syncthreads();
  if (blockIdx.x % 2 == 0) {
    if (W == 1) return;
    const int G = kWarps / (W - 1), g = warp / G;  // one group per home rank
    if (g >= W - 1) return;
    combine_send(comm, a, pp, c, g < me ? g : g + 1, 1 + g, warp % G, G, lane, &s_flag[g]);
  } else {
    combine_recv(comm, a, pp, c, warp, lane, &s_flag[0]);
  }
}

int max_dynamic_smem() {
  static int v = [] {
    int dev = 0, bytes = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess)
      return 0;
    return bytes;
  }();
  return v;
}
}  // namespace

bool ep_combine_bulk(const EpComm& comm, const EpCombineArgs& a, Stream s) {
  const int64_t RB = a.H * 2;
  if (RB % 16 || reinterpret_cast<uintptr_t>(a.y) % 16 || reinterpret_cast<uintptr_t>(a.out) % 16) return false;
  if (a.K + comm.world - 1 > kMaxRows) return false;
  EpCombineArgs b = a;
  b.stages = a.stages < 2 ? 2 : a.stages > 8 ? 8 : a.stages;
  b.stage_bytes = (a.stage_bytes < 1024 ? 1024 : a.stage_bytes) & ~15;
  const int smem = kWarps * b.stages * (b.stage_bytes + 8 + static_cast<int>(sizeof(StageMeta)));
  if (smem + static_cast<int>(sizeof(int)) * kEpMaxWorld > max_dynamic_smem()) return false;
  static int configured = 0;  // the dynamic shared memory the kernel was last allowed
  if (smem > configured) {
    if (cudaFuncSetAttribute(ep_combine_bulk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) != cudaSuccess) return false;
    configured = smem;
  }
  ep_combine_bulk_kernel<<<2 * a.C, kThreads, smem, to_cuda(s)>>>(comm, b);
  return true;
}

}  // namespace dsk::cuda
