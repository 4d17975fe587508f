// CPU references of the expert-parallel ops: the routing layout (exact, as the CUDA kernels compute it),
// the plan of the count exchange, and dispatch/combine of a group of one rank (the CPU device).
#pragma once
#include <cstdint>

#include "../core/diag.h"
#include "../core/ep_geometry.h"

namespace dsk::cpu {

// Tokens per chunk of the layout pass (the CUDA kernels use the same chunks).
constexpr int64_t kEpLayoutChunk = 256;

// Routing layout of indices i32 [T, K] (-1 = no expert) over W ranks holding E/W experts each:
//   tokens_per_rank[W], tokens_per_expert[E]      counts
//   in_rank u8 [T, W]                             token t goes to rank d (once, whatever its expert count)
//   token_idx_in_rank i32 [T, W]                  its position in my stream to d, or -1
//   pos_in_expert i32 [T, K]                      rank of entry (t, k) among my entries for its expert, in
//                                                 (t, k) order; -1 for -1 and out-of-range entries
//   send_list i32 [W, T]                          tokens sent to d in order; -1 after the last
// An index outside [-1, E) is reported to `diag` and treated as -1.
void ep_layout(const int32_t* idx, int64_t T, int K, int E, int W, int32_t* tokens_per_rank, int32_t* tokens_per_expert,
               uint8_t* in_rank, int32_t* token_idx_in_rank, int32_t* pos_in_expert, int32_t* send_list, DiagRecord* diag);

// The plan (see EpPlanLayout) of rank `me` from every rank's counts: cnt[s][E] (tokens_per_expert of
// rank s) and chan[s][d][C] (tokens rank s sends rank d in channel c). Writes the summary
// [M, R, R_self, S, seg_count...] to `summary`.
void ep_plan(int me, int W, int E, int C, const int32_t* cnt, const int32_t* chan, int32_t* plan, int32_t* summary);

// Tokens rank `me` sends each rank per channel: chan[d][c], from its layout (send_list, tokens_per_rank).
void ep_channel_counts(int64_t T, int W, int C, const int32_t* send_list, const int32_t* tokens_per_rank, int32_t* chan);

// The rest of a dispatch on rank `me` of W, after its exchange (as cuda::ep_expand): m_indices i32 [M]; the
// routing of the rank's own tokens (recv_token_rows i32 [R, K]: row row_base[e] + pos_in_expert[t, k], or
// -1; recv_weights f32 [M] by row); and every received token (own ones from x through send_list, the
// peers' from staged_x at ep_staged_row) copied to each of its rows < M of recv_x (`elt` bytes per
// value) with its fp8 scales (x_scale null: bf16). In a group of one this is the whole dispatch.
// part: 0 all of it, 1 the own tokens and m_indices, 2 the peers' tokens (cuda::EpExpandPart).
void ep_expand(int part, int me, int W, int E, int C, int64_t T, int64_t H, int elt, int K, int64_t M, const void* x, const float* x_scale,
               const float* weights, const int32_t* idx, const int32_t* pos_in_expert, const int32_t* send_list, const int32_t* plan,
               const void* staged_x, const float* staged_scale, int32_t* recv_token_rows, float* recv_weights, int32_t* m_indices,
               void* recv_x, float* recv_scale);

// partial[j] = bf16(sum over k ascending of recv_weights[row] * y[row]) in f32 (zeros without rows), for
// the R received tokens (as cuda::ep_reduce).
// part: 0 all received tokens, 1 this rank's own, 2 the peers' (cuda::EpPart).
void ep_reduce(int part, const uint16_t* y, int64_t M, int64_t H, const float* recv_weights, const int32_t* recv_token_rows, int64_t R,
               int K, const int32_t* plan, int E, int W, int me, int C, uint16_t* partial);

// The end of a combine on rank `me` of W (as cuda::ep_sum): out[t] = bf16(0 + own + returned[d0] + ...) in
// f32, its own sum (row own_begin + token_idx_in_rank[t, me] of partial [R, H]) first, then the other
// ranks' in rank order (rows ep_returned_row of staged [S, H]); zeros for a token routed nowhere.
void ep_sum(const uint16_t* partial, const uint16_t* staged, const int32_t* token_idx_in_rank, const int32_t* plan, int E, int W, int me,
            int C, int64_t T, int64_t H, uint16_t* out);

}  // namespace dsk::cpu
