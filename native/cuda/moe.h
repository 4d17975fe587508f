// CUDA kernels of the MoE ops; contracts as in native/cpu/moe.h, enqueued on `stream`. Routing gives
// the same bits as the CPU reference (shared helpers in native/math/moe_routing.h).
#pragma once
#include <cstdint>

#include "../core/diag.h"
#include "../math/moe_routing.h"
#include "../core/runtime.h"

namespace dsk::cuda {

void moe_gate(const float* logits, const float* bias, int64_t T, const MoeGateParams& p, int32_t* indices, float* weights,
              Stream stream);

void moe_count(const int32_t* indices, int64_t n, int64_t E, int32_t* counts, DiagRecord* diag, Stream stream);

void moe_bias_update(const float* bias, const int32_t* load, int64_t E, float gamma, float* out, Stream stream);

// workspace: moe_permute_workspace(T*k, E, rows) i32 of scratch (per-chunk histograms, then row -> token).
void moe_permute(const void* x, int64_t row_bytes, const float* scale, int64_t S, const int32_t* indices, int64_t T, int64_t k,
                 int64_t E, int64_t align, int64_t rows, void* out, float* scale_out, int32_t* mindices, int32_t* map,
                 int32_t* counts, int32_t* offsets, int32_t* workspace, DiagRecord* diag, Stream stream);

void moe_unpermute(const void* y, DType ydt, int64_t M, int64_t N, const int32_t* map, const float* weights, int64_t T, int64_t k,
                   void* out, DType odt, DiagRecord* diag, Stream stream);

}  // namespace dsk::cuda
