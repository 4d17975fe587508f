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
  int64_t T = 0, H = 0, M = 0;  // M: rows of the per-expert layout (rows outside it are dropped)
  bool fp8 = false;
  const void* x = nullptr;          // [T, H] bf16 or fp8
  const float* x_scale = nullptr;   // [T, H/128] (fp8)
  const float* weights = nullptr;   // [T, K]
  const int32_t* idx = nullptr;     // [T, K]
  const int32_t* pos = nullptr;     // pos_in_expert [T, K]
  const int32_t* send_list = nullptr;  // [W, T]
  const int32_t* plan = nullptr;
  void* staged_x = nullptr;         // [R - R_self, H]: the peers' tokens, once each (ep_staged_row)
  float* staged_scale = nullptr;    // [R - R_self, H/128] (fp8)
  int64_t staged_rows = 0;
  float* recv_weights = nullptr;    // [M]: the weights of the rows of the peers' tokens
  int32_t* recv_token_rows = nullptr;  // [R, K]: the rows of the peers' tokens
  // Benchmark probe only (results wrong): bit 1 skips the peer push's payload, bit 2 the receiver's
  // payload copies; the handshakes and metadata still run.
  int probe_skip = 0;
};
// The exchange of a dispatch, warp-specialized on 2*C blocks: block 2c sends channel c (one warp group
// per peer), block 2c+1 receives it (one group per source) into staged_x, one row per token, with the
// tokens' routing. Nothing to do in a group of one.
void ep_dispatch(const EpComm& comm, const EpDispatchArgs& a, Stream s);

// The rest of a dispatch, after its exchange, with any number of SMs: the routing of this rank's own
// tokens (recv_token_rows, recv_weights), mIndices, and every received token (own ones from x, the
// peers' from staged_x) copied to each of its rows of recv_x with its fp8 scales.
// Which received tokens an ep_expand / ep_reduce call handles: this rank's own, the peers', or all. The
// own part of a dispatch's expansion (with mIndices) needs nothing from its exchange, and a combine's
// exchange only sends the peers' sums: those parts run on the compute stream while the exchange does.
enum class EpPart : int { kAll = 0, kOwn = 1, kPeers = 2 };
// How a local part is launched: the own parts run beside an exchange holding `exchange_sms` whole SMs,
// so they take one block per other SM (sm_count - exchange_sms), each holding its SM alone; other parts
// take the whole GPU.
struct EpLocalLaunch {
  int sm_count = 0, exchange_sms = 0;
};
struct EpExpandArgs {
  EpPart part = EpPart::kAll;
  EpLocalLaunch launch;
  int C = 1, E = 1, W = 1, me = 0, K = 1;
  int64_t T = 0, H = 0, M = 0, R = 0;
  bool fp8 = false;
  const void* x = nullptr;              // [T, H]
  const float* x_scale = nullptr;       // [T, H/128] (fp8)
  const float* weights = nullptr;       // [T, K]
  const int32_t* idx = nullptr;         // [T, K]
  const int32_t* pos = nullptr;         // pos_in_expert [T, K]
  const int32_t* send_list = nullptr;   // [W, T]
  const int32_t* plan = nullptr;
  const void* staged_x = nullptr;       // [R - R_self, H]
  const float* staged_scale = nullptr;  // [R - R_self, H/128] (fp8)
  int32_t* recv_token_rows = nullptr;   // [R, K]: the peers' tokens' rows are read, the own ones written
  float* recv_weights = nullptr;        // [M]
  int32_t* m_indices = nullptr;         // [M]
  void* recv_x = nullptr;               // [M, H]
  float* recv_scale = nullptr;          // [M, H/128] (fp8)
};
void ep_expand(const EpExpandArgs& a, Stream s);

// The first half of a combine, on the compute SMs: for every received token j of `part` (of 0..R), the
// f32 sum over its rows (k ascending) of recv_weights[row] * y[row], rounded to bf16, into partial[j]
// (zeros if it has no rows). plan/E/W/me/C locate this rank's own tokens.
void ep_reduce(EpPart part, const EpLocalLaunch& launch, const uint16_t* y, int64_t M, int64_t H, const float* recv_weights,
               const int32_t* recv_token_rows, int64_t R, int K, const int32_t* plan, int E, int W, int me, int C, uint16_t* partial,
               Stream s);

struct EpCombineArgs {
  int C = 1, chunk = 8, E = 1;
  int64_t H = 0;
  const int32_t* plan = nullptr;
  const uint16_t* partial = nullptr;  // [R, H] bf16, from ep_reduce
  uint16_t* staged = nullptr;         // [S, H] bf16: the sums other ranks return (ep_returned_row)
  int64_t staged_rows = 0;
  // Benchmark probe only (results wrong): bit 1 skips the push payload, bit 2 the receiver's copies.
  int probe_skip = 0;
};
// The exchange of a combine, the reverse trip of the dispatch's: block 2c sends, for every token it
// received in channel c, its sum (a row of `partial`) back to the token's rank; block 2c+1 receives the
// sums of its own tokens of channel c into `staged`, one row per (token, rank). Nothing to do in a group
// of one. ep_sum then adds them up.
void ep_combine(const EpComm& comm, const EpCombineArgs& a, Stream s);

// The end of a combine, on the compute SMs, after its exchange: out[t] = bf16(own + returned[d0] + ...)
// in f32, its own sum (row own_begin + token_idx_in_rank[t, me] of partial) first, then the other ranks'
// in rank order (rows of staged); zeros for a token routed nowhere.
void ep_sum(const uint16_t* partial, const uint16_t* staged, const int32_t* token_idx_in_rank, const int32_t* plan, int E, int W,
            int me, int C, int64_t T, int64_t H, uint16_t* out, Stream s);

// Benchmark helpers: a compute-bound kernel of `blocks` blocks that each hold a whole SM (1024 threads and
// most of its shared memory, like a persistent GEMM sized to the SMs the exchange leaves free), for
// about `iters` FMA rounds, writing one value per block to out.
void ep_busy(int blocks, int iters, float* out, Stream s);
// Holds the stream for `ns` ns on one SM: work queued behind it then runs back to back, so timings
// measure the GPU and not the host's enqueue rate.
void ep_gate(uint64_t ns, Stream s);

}  // namespace dsk::cuda
