#include "moe.h"

#include <cstring>
#include <mutex>
#include <vector>

#include "../core/runtime.h"

namespace dsk::cpu {

// One token, in the order the CUDA kernel uses (lane l of a warp owns experts l, l+32, ...).
static void gate_token(const float* logits, const float* bias, const MoeGateParams& p, uint32_t* keys, int32_t* idx, float* w) {
  const int E = p.num_experts;
  float row_max = 0.0f, row_sum = 0.0f;
  if (p.scoring == kMoeSoftmax) {
    row_max = bits_f32(0xff800000u);
    for (int e = 0; e < E; ++e) row_max = logits[e] > row_max ? logits[e] : row_max;
    float partial[32];
    for (int l = 0; l < 32; ++l) {
      partial[l] = 0.0f;
      for (int e = l; e < E; e += 32) partial[l] = DSK_FADD(partial[l], moe_softmax_numerator(logits[e], row_max));
    }
    row_sum = moe_tree_sum32(partial);
  }
  for (int e = 0; e < E; ++e) keys[e] = moe_key(moe_selection_score(moe_score(logits[e], p.scoring, row_max, row_sum), bias, e));

  uint64_t allowed = ~0ull;  // bit g: group g may be chosen
  const int G = p.n_group, per_group = E / G;
  if (G > 1) {
    uint32_t gkeys[kMoeMaxGroups];
    for (int g = 0; g < G; ++g) {
      uint32_t k1 = 0, k2 = 0;
      for (int e = g * per_group; e < (g + 1) * per_group; ++e) moe_top2_push(keys[e], k1, k2);
      gkeys[g] = moe_group_key(k1, k2, p.group_score);
    }
    allowed = 0;
    for (int i = 0; i < p.topk_group; ++i) {
      uint64_t best = 0;
      for (int g = 0; g < G; ++g)
        if (!((allowed >> g) & 1)) best = moe_pack(gkeys[g], g) > best ? moe_pack(gkeys[g], g) : best;
      allowed |= 1ull << moe_unpack_index(best);
    }
  }
  for (int j = 0; j < p.topk; ++j) {
    uint64_t best = 0;
    for (int e = 0; e < E; ++e) {
      if (!keys[e] || !((allowed >> (e / per_group)) & 1)) continue;
      uint64_t c = moe_pack(keys[e], e);
      best = c > best ? c : best;
    }
    idx[j] = moe_unpack_index(best);
    if (idx[j] < 0) idx[j] = 0;  // no candidate left: cannot happen with checked arguments
    keys[idx[j]] = 0;
    w[j] = moe_score(logits[idx[j]], p.scoring, row_max, row_sum);
  }
  float sum = moe_weight_sum(w, p.topk);
  for (int j = 0; j < p.topk; ++j) w[j] = moe_final_weight(w[j], sum, p);
}

void moe_gate(const float* logits, const float* bias, int64_t T, const MoeGateParams& p, int32_t* indices, float* weights) {
  parallel_for(T, 8, [&](int64_t b, int64_t e) {
    std::vector<uint32_t> keys(p.num_experts);
    for (int64_t t = b; t < e; ++t)
      gate_token(logits + t * p.num_experts, bias, p, keys.data(), indices + t * p.topk, weights + t * p.topk);
  });
}

void moe_count(const int32_t* indices, int64_t n, int64_t E, int32_t* counts, DiagRecord* diag) {
  std::memset(counts, 0, static_cast<size_t>(E) * sizeof(int32_t));
  std::mutex mu;
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
    std::vector<int32_t> local(E, 0);
    for (int64_t i = b; i < e; ++i)
      if (diag_check_index(diag, kDiagMoeIndices, indices[i], E)) ++local[indices[i]];
    std::lock_guard<std::mutex> l(mu);
    for (int64_t x = 0; x < E; ++x) counts[x] += local[x];
  });
}

void moe_bias_update(const float* bias, const int32_t* load, int64_t E, float gamma, float* out) {
  int64_t total = 0;
  for (int64_t e = 0; e < E; ++e) total += load[e];
  for (int64_t e = 0; e < E; ++e) out[e] = moe_bias_step(bias[e], load[e], total, E, gamma);
}

void moe_permute(const void* x, int64_t row_bytes, const float* scale, int64_t S, const int32_t* indices, int64_t T, int64_t k,
                 int64_t E, int64_t align, int64_t rows, void* out, float* scale_out, int32_t* mindices, int32_t* map,
                 int32_t* counts, int32_t* offsets, DiagRecord* diag) {
  const int64_t n = T * k;
  // Counting sort of the slots by expert, stable in slot order (token, then slot).
  std::memset(counts, 0, static_cast<size_t>(E) * sizeof(int32_t));
  for (int64_t i = 0; i < n; ++i)
    if (diag_check_index(diag, kDiagMoeIndices, indices[i], E)) ++counts[indices[i]];
  offsets[0] = 0;
  for (int64_t e = 0; e < E; ++e) offsets[e + 1] = offsets[e] + static_cast<int32_t>((counts[e] + align - 1) / align * align);
  std::vector<int32_t> next(offsets, offsets + E), src(static_cast<size_t>(rows), -1);
  for (int64_t i = 0; i < n; ++i) {
    int32_t e = indices[i];
    if (e < 0 || e >= E) { map[i] = -1; continue; }
    int32_t r = next[e]++;
    map[i] = r;
    src[r] = static_cast<int32_t>(i / k);
  }
  for (int64_t r = 0; r < rows; ++r) mindices[r] = -1;
  for (int64_t e = 0; e < E; ++e)
    for (int32_t r = offsets[e]; r < offsets[e] + counts[e]; ++r) mindices[r] = static_cast<int32_t>(e);
  // Rows: a copy of the token's row; padding rows are left unwritten (nothing reads them).
  parallel_for(rows, 64, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      if (src[r] < 0) continue;
      std::memcpy(static_cast<char*>(out) + r * row_bytes, static_cast<const char*>(x) + src[r] * row_bytes, row_bytes);
      if (scale)
        for (int64_t c = 0; c < S; ++c) scale_out[r * S + c] = scale[src[r] * S + c];
    }
  });
}

void moe_unpermute(const void* y, DType ydt, int64_t M, int64_t N, const int32_t* map, const float* weights, int64_t T, int64_t k,
                   void* out, DType odt, DiagRecord* diag) {
  parallel_for(T, 4, [&](int64_t b, int64_t e) {
    std::vector<float> acc(N);
    for (int64_t t = b; t < e; ++t) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t j = 0; j < k; ++j) {
        int32_t r = map[t * k + j];
        if (r == -1 || !diag_check_index(diag, kDiagMoeMap, r, M)) continue;
        float w = weights[t * k + j];
        for (int64_t c = 0; c < N; ++c) acc[c] = DSK_FADD(acc[c], DSK_FMUL(w, load_f32(y, ydt, r * N + c)));
      }
      for (int64_t c = 0; c < N; ++c) store_f32(out, odt, t * N + c, acc[c]);
    }
  });
}

}  // namespace dsk::cpu
