// CUDA kernels of the expert-parallel ops (layout, count exchange, dispatch, combine). Contracts as in
// native/cpu/ep.h; the exchange kernels talk to peers through the buffers described in
// native/core/ep_geometry.h. Everything runs on the stream it is given (the device's comm stream for
// the exchange kernels).
#pragma once
#include <cstdint>

#include "../core/diag.h"
#include "../core/ep_geometry.h"
#include "../core/runtime.h"

namespace dsk::cuda {

// What every exchange kernel needs to reach the peers.
struct EpComm {
  EpGeometry g;
  int32_t rank = 0, world = 1;
  char* peers[kEpMaxWorld] = {};  // every rank's buffer as mapped in this process (peers[rank]: mine)
  uint32_t* abort = nullptr;      // host-mapped: 0, or (failed rank + 1) once the group has failed
  DiagRecord* diag = nullptr;     // where a kernel reports a timeout (host-mapped)
  uint64_t timeout_ns = 0;        // how long a wait for a peer may last
};

// Layout (see cpu::ep_layout). scratch: 2 * ceil(T/256) * (E + W) ints.
int64_t ep_layout_scratch_ints(int64_t T, int E, int W);
void ep_layout(const int32_t* idx, int64_t T, int K, int E, int W, int32_t* tokens_per_rank, int32_t* tokens_per_expert,
               uint8_t* in_rank, int32_t* token_idx_in_rank, int32_t* pos_in_expert, int32_t* send_list, int32_t* scratch,
               DiagRecord* diag, Stream s);

// Count exchange of op number `epoch` (>= 1, the same on every rank): every rank's tokens_per_expert
// and per-channel token counts reach every rank, which computes its plan (EpPlanLayout) and the summary
// [M, R, seg_count...] (device memory). A header (H, K, E, fp8, C) is checked against every peer's.
void ep_notify(const EpComm& comm, uint32_t epoch, int E, int K, int64_t H, bool fp8, int C, int64_t T,
               const int32_t* tokens_per_expert, const int32_t* tokens_per_rank, const int32_t* send_list, int32_t* plan,
               int32_t* summary, Stream s);

struct EpDispatchArgs {
  int C = 1, chunk = 8, K = 1, E = 1;
  int64_t T = 0, H = 0, M = 0;  // M: rows of recv_x (rows outside it are dropped, never written)
  bool fp8 = false;
  bool tma = false;                 // copy rows with the bulk-copy engine (sm_90 and later)
  int tma_stages = 2;               // staging buffers per warp: 2 lets a piece's load overlap the last one's stores
  const void* x = nullptr;          // [T, H] bf16 or fp8
  const float* x_scale = nullptr;   // [T, H/128] (fp8)
  const float* weights = nullptr;   // [T, K]
  const int32_t* idx = nullptr;     // [T, K]
  const int32_t* pos = nullptr;     // pos_in_expert [T, K]
  const int32_t* send_list = nullptr;  // [W, T]
  const int32_t* plan = nullptr;
  void* recv_x = nullptr;           // [M, H]
  float* recv_scale = nullptr;      // [M, H/128] (fp8)
  float* recv_weights = nullptr;    // [M]
  int32_t* recv_token_rows = nullptr;  // [R, K]
  int32_t* m_indices = nullptr;        // [M], filled by the kernel when given
  // Benchmark probe only (results wrong): bit 0 skips the own rows' payload, bit 1 the peer push's
  // payload, bit 2 the receiver's payload copies; the handshakes and metadata still run.
  int probe_skip = 0;
  // > 0: the own rows are written by this many warps of the receiver block instead of the sender's
  // (which then only pushes to the peers). 0: the sender block writes them.
  int self_warps_on_recv = 0;
};
// Warp-specialized dispatch on 2*C blocks: block 2c sends channel c (one warp group per destination;
// to itself it writes rows directly), block 2c+1 receives it (one warp group per source).
void ep_dispatch(const EpComm& comm, const EpDispatchArgs& a, Stream s);

struct EpCombineArgs {
  int C = 1, chunk = 8, K = 1, E = 1;
  int64_t T = 0, H = 0;
  const uint16_t* y = nullptr;               // [M, H] bf16 expert outputs
  const float* recv_weights = nullptr;       // [M]
  const int32_t* recv_token_rows = nullptr;  // [R, K]
  const int32_t* idx = nullptr;              // [T, K] my routing
  const int32_t* pos = nullptr;              // [T, K]
  const int32_t* token_idx_in_rank = nullptr;  // [T, W]
  const int32_t* plan = nullptr;
  uint16_t* out = nullptr;                   // [T, H] bf16
  // tma (sm_90): each warp loads a token's rows (a slice of the hidden dimension at a time) into one of
  // `stages` shared-memory stages of `stage_bytes` and reduces from there, with 16-byte cp.async per lane
  // (async16) or one bulk copy per row (ep_combine_bulk.cu); else register loads (ep_combine.cu).
  bool tma = false, async16 = false;
  int stages = 2, stage_bytes = 7040;
  int64_t M = 0;  // rows of y
  // Benchmark probe only (results wrong): bit 0 reads rows (t * K + k) % M instead of the routed ones
  // (a streaming access pattern), bit 1 skips the stores of partial sums to the peers, bit 2 skips the
  // home rank's own rows (bulk kernel).
  int probe = 0;
};
// Block 2c sends, for every token it received in channel c, the f32 sum of its rows weighted by their
// routing weights (as bf16) back to the token's rank; block 2c+1 adds, for each of its own tokens of
// channel c, its local rows (f32) then the partial sums of the other ranks (ascending) and writes bf16.
void ep_combine(const EpComm& comm, const EpCombineArgs& a, Stream s);

// Benchmark helpers: a compute-bound kernel of `blocks` blocks that each hold a whole SM (1024 threads and
// most of its shared memory, like a persistent GEMM sized to the SMs the exchange leaves free), for
// about `iters` FMA rounds, writing one value per block to out.
void ep_busy(int blocks, int iters, float* out, Stream s);
// Holds the stream for `ns` ns on one SM: work queued behind it then runs back to back, so timings
// measure the GPU and not the host's enqueue rate.
void ep_gate(uint64_t ns, Stream s);

}  // namespace dsk::cuda
