// CUDA attention kernels; contracts as in native/cpu/attention.h, enqueued on `stream`.
#pragma once
#include <cstdint>

#include "../core/diag.h"
#include "../core/dtype.h"
#include "../core/runtime.h"

namespace dsk::cuda {

// Pointers must be 16-byte aligned (the binding checks). bf16 with Dv % 8 == 0 runs the tensor-core
// kernel; f32 (and any shape the tensor-core kernel does not take) runs an exact-f32 SIMT kernel.
void attention_prefill(const void* q, const void* k, const void* v, DType dt, int64_t T, int64_t H, int64_t Dqk,
                       int64_t Dv, const int32_t* cu_seqlens, int64_t B, int64_t max_seqlen, bool causal, float scale,
                       void* out, DiagRecord* diag, Stream stream);

void mla_cache_write(uint16_t* cache, int64_t num_blocks, const void* latent, DType dt, int64_t T, const int32_t* slots,
                     DiagRecord* diag, Stream stream);

// Flash-decoding with `nsplit` sequence splits. When nsplit > 1, `workspace` holds
// mla_decode_workspace_floats(B, Sq, H, nsplit) floats (partial outputs and their LSEs).
void mla_decode(const void* q, DType dt, int64_t B, int64_t Sq, int64_t H, const uint16_t* cache, int64_t num_blocks,
                const int32_t* block_table, int64_t max_blocks, const int32_t* seq_lens, float scale, bool causal,
                void* out, float* lse, int nsplit, float* workspace, DiagRecord* diag, Stream stream);

inline int64_t mla_decode_workspace_floats(int64_t B, int64_t Sq, int64_t H, int64_t nsplit) {
  return nsplit > 1 ? B * nsplit * Sq * H * (512 + 1) : 0;
}

}  // namespace dsk::cuda
