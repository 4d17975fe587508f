// CPU references of the MoE ops: gate (routing), expert counts, aux-loss-free bias update, and the
// permute / unpermute between token order and the expert-grouped contiguous layout.
#pragma once
#include <cstdint>

#include "../core/diag.h"
#include "../core/dtype.h"
#include "../math/moe_routing.h"

namespace dsk::cpu {

// Routing of T tokens over E = p.num_experts experts: logits f32 [T, E], bias f32 [E] or null;
// indices i32 [T, topk] ordered by descending selection score (ties: lower index), weights f32 [T, topk].
void moe_gate(const float* logits, const float* bias, int64_t T, const MoeGateParams& p, int32_t* indices, float* weights);

// counts[e] = number of the n entries of `indices` equal to e; entries outside [0, E) are reported.
void moe_count(const int32_t* indices, int64_t n, int64_t E, int32_t* counts, DiagRecord* diag);

// out[e] = bias[e] + gamma * sign(mean(load) - load[e]); out may alias bias.
void moe_bias_update(const float* bias, const int32_t* load, int64_t E, float gamma, float* out);

// The expert-grouped layout of x [T, D] (row_bytes bytes per row) for indices i32 [T, k], as documented
// in lib/ops/moe.ts: out [rows, D], mindices [rows], map [T, k], counts [E], offsets [E + 1]; scale f32
// [T, S] is permuted into scale_out [rows, S] when given. Expert ids outside [0, E) are reported and skipped.
void moe_permute(const void* x, int64_t row_bytes, const float* scale, int64_t S, const int32_t* indices, int64_t T, int64_t k,
                 int64_t E, int64_t align, int64_t rows, void* out, float* scale_out, int32_t* mindices, int32_t* map,
                 int32_t* counts, int32_t* offsets, DiagRecord* diag);

// out[t, :] = sum over j of weights[t, j] * y[map[t, j], :], f32 in slot order; map -1 = skip.
void moe_unpermute(const void* y, DType ydt, int64_t M, int64_t N, const int32_t* map, const float* weights, int64_t T, int64_t k,
                   void* out, DType odt, DiagRecord* diag);

}  // namespace dsk::cpu
