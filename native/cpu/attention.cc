#include "attention.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "../math/attention_common.h"
#include "../core/runtime.h"

namespace dsk::cpu {

namespace {

std::vector<float> to_f32(const void* p, DType dt, int64_t n) {
  std::vector<float> f(static_cast<size_t>(n));
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f[i] = load_f32(p, dt, i);
  });
  return f;
}

// Softmax-weighted sum of values over `n` keys: scores s[j] (already scaled), value rows val(j).
// Writes the dv sums into acc and returns the natural-log sum-exp of the scores (-inf when n == 0).
template <class ValueRow>
double softmax_sum(const std::vector<double>& s, int64_t n, int64_t dv, ValueRow val, std::vector<double>& acc) {
  std::fill(acc.begin(), acc.begin() + dv, 0.0);
  if (n == 0) return -std::numeric_limits<double>::infinity();
  double m = s[0];
  for (int64_t j = 1; j < n; ++j) m = s[j] > m ? s[j] : m;
  double l = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double p = std::exp(s[j] - m);
    l += p;
    const float* v = val(j);
    for (int64_t d = 0; d < dv; ++d) acc[d] += p * v[d];
  }
  for (int64_t d = 0; d < dv; ++d) acc[d] /= l;
  return m + std::log(l);
}

}  // namespace

void attention_prefill(const void* q, const void* k, const void* v, DType dt, int64_t T, int64_t H, int64_t Dqk,
                       int64_t Dv, const int32_t* cu_seqlens, int64_t B, int64_t max_seqlen, bool causal, float scale,
                       void* out, DiagRecord* diag) {
  prefill_check_coverage(cu_seqlens, B, T, diag);
  std::vector<int64_t> owner(static_cast<size_t>(T), -1), start(static_cast<size_t>(B), 0);
  for (int64_t b = 0; b < B; ++b) {
    int64_t s, len;
    if (!prefill_sequence(cu_seqlens, b, T, max_seqlen, diag, s, len)) continue;
    start[b] = s;
    for (int64_t t = s; t < s + len; ++t) owner[t] = b;
  }
  const std::vector<float> qf = to_f32(q, dt, T * H * Dqk), kf = to_f32(k, dt, T * H * Dqk), vf = to_f32(v, dt, T * H * Dv);
  parallel_for(T * H, 1, [&](int64_t rb, int64_t re) {
    std::vector<double> s(static_cast<size_t>(T)), acc(static_cast<size_t>(Dv));
    for (int64_t r = rb; r < re; ++r) {
      const int64_t t = r / H, h = r % H, b = owner[t];
      if (b < 0) continue;
      const int64_t s0 = start[b], n = causal ? t - s0 + 1 : cu_seqlens[b + 1] - s0;
      const float* qr = &qf[r * Dqk];
      for (int64_t j = 0; j < n; ++j) {
        const float* kr = &kf[((s0 + j) * H + h) * Dqk];
        double dot = 0;
        for (int64_t d = 0; d < Dqk; ++d) dot += static_cast<double>(qr[d]) * kr[d];
        s[j] = dot * scale;
      }
      softmax_sum(s, n, Dv, [&](int64_t j) { return &vf[((s0 + j) * H + h) * Dv]; }, acc);
      for (int64_t d = 0; d < Dv; ++d) store_f32(out, dt, r * Dv + d, static_cast<float>(acc[d]));
    }
  });
}

void mla_cache_write(uint16_t* cache, int64_t num_blocks, const void* latent, DType dt, int64_t T, const int32_t* slots,
                     DiagRecord* diag) {
  parallel_for(T, 64, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t slot = slots[t];
      if (!diag_check_index(diag, kDiagCacheSlots, slot, num_blocks * kMlaBlockTokens)) continue;
      for (int d = 0; d < kMlaWidth; ++d) cache[slot * kMlaWidth + d] = f32_to_bf16(load_f32(latent, dt, t * kMlaWidth + d));
    }
  });
}

void mla_decode(const void* q, DType dt, int64_t B, int64_t Sq, int64_t H, const uint16_t* cache, int64_t num_blocks,
                const int32_t* block_table, int64_t max_blocks, const int32_t* seq_lens, float scale, int64_t dv,
                bool causal, void* out, float* lse, DiagRecord* diag) {
  // Validate every index a sequence needs before touching the cache; a bad one skips the whole sequence.
  std::vector<char> ok(static_cast<size_t>(B), 0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = seq_lens[b];
    if (!diag_check_index(diag, kDiagSeqLens, len, max_blocks * kMlaBlockTokens + 1)) continue;
    bool good = true;
    for (int64_t blk = 0; blk * kMlaBlockTokens < len; ++blk)
      good = diag_check_index(diag, kDiagBlockTable, block_table[b * max_blocks + blk], num_blocks) && good;
    ok[b] = good;
  }
  parallel_for(B * Sq * H, 1, [&](int64_t rb, int64_t re) {
    std::vector<double> s(static_cast<size_t>(max_blocks * kMlaBlockTokens)), acc(static_cast<size_t>(dv));
    std::vector<float> keys;  // the sequence's cached rows, decoded once per row range
    float qr[kMlaWidth];
    for (int64_t r = rb; r < re; ++r) {
      const int64_t b = r / (Sq * H), j = (r / H) % Sq, h = r % H;
      if (!ok[b]) continue;
      const int64_t n = mla_key_limit(seq_lens[b], Sq, j, causal);
      keys.resize(static_cast<size_t>(n * kMlaWidth));
      for (int64_t p = 0; p < n; ++p) {
        const int64_t blk = block_table[b * max_blocks + p / kMlaBlockTokens];
        const uint16_t* row = cache + (blk * kMlaBlockTokens + p % kMlaBlockTokens) * kMlaWidth;
        for (int d = 0; d < kMlaWidth; ++d) keys[p * kMlaWidth + d] = bf16_to_f32(row[d]);
      }
      for (int d = 0; d < kMlaWidth; ++d) qr[d] = load_f32(q, dt, r * kMlaWidth + d);
      for (int64_t p = 0; p < n; ++p) {
        double dot = 0;
        for (int d = 0; d < kMlaWidth; ++d) dot += static_cast<double>(qr[d]) * keys[p * kMlaWidth + d];
        s[p] = dot * scale;
      }
      const double l = softmax_sum(s, n, dv, [&](int64_t p) { return &keys[p * kMlaWidth]; }, acc);
      for (int64_t d = 0; d < dv; ++d) store_f32(out, dt, r * dv + d, static_cast<float>(acc[d]));
      lse[(b * H + h) * Sq + j] = static_cast<float>(l);
    }
  });
}

}  // namespace dsk::cpu
