// CPU references of the attention ops: variable-length prefill attention and MLA decode over the paged
// latent cache. Scores, softmax and sums in double: the ground truth the CUDA kernels are tested against.
#pragma once
#include <cstdint>

#include "../core/diag.h"
#include "../core/dtype.h"

namespace dsk::cpu {

// q, k [T, H, Dqk], v [T, H, Dv] of dtype dt, out [T, H, Dv] of dtype dt, all contiguous. cu_seqlens i32
// [B + 1]: sequence b is tokens [cu[b], cu[b+1]). Row (t, h) attends to the keys of its own sequence (up to
// itself when causal) with softmax(scale * q.k). Bad cu_seqlens are reported to diag (attention_common.h) and
// the affected sequence's rows are left untouched.
void attention_prefill(const void* q, const void* k, const void* v, DType dt, int64_t T, int64_t H, int64_t Dqk,
                       int64_t Dv, const int32_t* cu_seqlens, int64_t B, int64_t max_seqlen, bool causal, float scale,
                       void* out, DiagRecord* diag);

// cache [num_blocks, 64, 576] bf16; latent [T, 576] of dtype dt; cache[slot / 64, slot % 64, :] = latent[t].
// A slot outside [0, num_blocks * 64) is reported and skipped.
void mla_cache_write(uint16_t* cache, int64_t num_blocks, const void* latent, DType dt, int64_t T, const int32_t* slots,
                     DiagRecord* diag);

// q [B, Sq, H, 576] of dtype dt; cache as above; block_table i32 [B, max_blocks]; seq_lens i32 [B].
// out [B, Sq, H, dv] of dtype dt; lse f32 [B, H, Sq]. Keys are all 576 dims of each cached token, values its
// first dv. Query j of sequence b sees positions [0, mla_key_limit(...)). A seq_len outside
// [0, max_blocks * 64] or a block id outside [0, num_blocks) is reported and that sequence is skipped.
void mla_decode(const void* q, DType dt, int64_t B, int64_t Sq, int64_t H, const uint16_t* cache, int64_t num_blocks,
                const int32_t* block_table, int64_t max_blocks, const int32_t* seq_lens, float scale, int64_t dv,
                bool causal, void* out, float* lse, DiagRecord* diag);

}  // namespace dsk::cpu
