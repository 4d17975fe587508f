// Layout constants and index rules shared by the CPU reference and the CUDA kernels of the attention ops,
// so both validate device-resident indices and mask keys the same way.
#pragma once
#include <cstdint>

#include "../core/diag.h"

namespace dsk {

// MLA paged latent cache: [numBlocks, kMlaBlockTokens, kMlaWidth] bf16 (512 latent + 64 rope dims).
constexpr int kMlaBlockTokens = 64;
constexpr int kMlaWidth = 576;
constexpr int kMlaLatent = 512;
constexpr int kMlaMaxSq = 4;

// attentionPrefill: sequence b spans tokens [cu[b], cu[b+1]). Reports and returns false when the bounds
// cannot be used (entry outside [0, T], negative length or one above max_seqlen); the caller skips it.
DSK_HD bool prefill_sequence(const int32_t* cu, int64_t b, int64_t T, int64_t max_seqlen, DiagRecord* diag,
                             int64_t& start, int64_t& len) {
  const int64_t s = cu[b], e = cu[b + 1];
  if (!diag_check_index(diag, kDiagCuSeqlens, s, T + 1) || !diag_check_index(diag, kDiagCuSeqlens, e, T + 1)) return false;
  if (!diag_check_index(diag, kDiagPrefillLength, e - s, max_seqlen + 1)) return false;
  start = s;
  len = e - s;
  return true;
}

// attentionPrefill: the sequences must cover all T tokens (cu[0] = 0, cu[B] = T); reports the uncovered count.
// Ends outside [0, T] are left to prefill_sequence, so each bad cu_seqlens gets one deterministic message.
DSK_HD void prefill_check_coverage(const int32_t* cu, int64_t B, int64_t T, DiagRecord* diag) {
  const int64_t first = cu[0], last = cu[B];
  if (first < 0 || first > T || last < 0 || last > T) return;
  if (first != 0 || last != T) diag_report(diag, kDiagPrefillCoverage, first + (T - last), 1);
}

// mlaDecode: query j (of Sq) of a sequence of seq_len tokens (the Sq new ones included) sees the cache
// positions [0, limit). Causal: limit = seq_len - Sq + j + 1, clamped at 0 (a query that sees nothing gets
// output 0 and lse -inf).
DSK_HD int64_t mla_key_limit(int64_t seq_len, int64_t Sq, int64_t j, bool causal) {
  if (!causal) return seq_len;
  const int64_t l = seq_len - Sq + j + 1;
  return l < 0 ? 0 : l;
}

// mlaDecode flash-decoding: the fewest tokens worth a split of a group of `rows` query rows (a split writes
// rows x 512 f32 partial outputs, so it must read enough cache to amortize them). lib/ops/attention.ts
// uses the same rule to choose the split count.
DSK_HD int64_t mla_min_split_tokens(int64_t rows) {
  const int64_t t = (rows * 4 + 31) / 32 * 32;
  return t < 128 ? 128 : t;
}
constexpr int kMlaMaxSplits = 128;

}  // namespace dsk
