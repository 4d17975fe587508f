// The pieces of MoE routing that the CPU reference and the CUDA kernel share, so both make every
// rounding and every comparison the same way and route bit-identically.
//
// Comparisons are done on integer keys: a selection score becomes an order-preserving u32 (NaN is taken
// as -inf, -0 as +0; key 0 is left free to mean "taken / masked"), packed with the complement of its
// index into a u64, so the largest packed value is the best score and, among equal scores, the lowest
// index. Any selection algorithm over these keys gives the same answer.
#pragma once
#include <cstdint>

#include "portable_math.h"

namespace dsk {

enum MoeScoring : int32_t { kMoeSigmoid = 0, kMoeSoftmax = 1 };
enum MoeGroupScore : int32_t { kMoeTop2Sum = 0, kMoeGroupMax = 1 };

// Limits shared by the CPU and CUDA paths (the CUDA kernel keeps a warp's scores in shared memory and
// holds output slot j in lane j).
constexpr int kMoeMaxExperts = 4096;
constexpr int kMoeMaxTopk = 32;
constexpr int kMoeMaxGroups = 64;

struct MoeGateParams {
  int32_t num_experts;
  int32_t topk;
  int32_t n_group;     // 1 = no group restriction
  int32_t topk_group;  // groups kept when n_group > 1
  int32_t scoring;     // MoeScoring
  int32_t group_score; // MoeGroupScore
  int32_t norm_topk;   // divide the weights by their sum
  float routed_scale;
};

// NaN -> -inf and -0 -> +0, then the monotone map float -> u32 (never 0).
DSK_HD uint32_t moe_key(float v) {
  if (v != v) v = bits_f32(0xff800000u);
  if (v == 0.0f) v = 0.0f;
  uint32_t u = f32_bits(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
DSK_HD float moe_key_value(uint32_t k) { return bits_f32((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k); }
DSK_HD uint64_t moe_pack(uint32_t key, int32_t index) {
  return (static_cast<uint64_t>(key) << 32) | static_cast<uint32_t>(~static_cast<uint32_t>(index));
}
DSK_HD int32_t moe_unpack_index(uint64_t p) { return static_cast<int32_t>(~static_cast<uint32_t>(p)); }

// Keeps the two largest keys seen (duplicates count twice).
DSK_HD void moe_top2_push(uint32_t k, uint32_t& k1, uint32_t& k2) {
  if (k > k1) { k2 = k1; k1 = k; }
  else if (k > k2) k2 = k;
}
// A group's score from its best two selection keys: top1 + top2 ('top2sum') or top1 ('max').
DSK_HD uint32_t moe_group_key(uint32_t k1, uint32_t k2, int32_t mode) {
  if (mode == kMoeGroupMax) return k1;
  return moe_key(DSK_FADD(moe_key_value(k1), moe_key_value(k2)));
}

// The sum of 32 lane partials in the order of a warp butterfly (offsets 16, 8, 4, 2, 1).
DSK_HD float moe_tree_sum32(const float* p) {
  float a[32];
  for (int l = 0; l < 32; ++l) a[l] = p[l];
  for (int off = 16; off >= 1; off >>= 1)
    for (int l = 0; l < off; ++l) a[l] = DSK_FADD(a[l], a[l + off]);
  return a[0];
}

// Unbiased score of one expert: sigmoid(logit), or exp(logit - max) / sum for softmax.
DSK_HD float moe_softmax_numerator(float logit, float row_max) { return portable_exp(DSK_FSUB(logit, row_max)); }
DSK_HD float moe_score(float logit, int32_t scoring, float row_max, float row_sum) {
  if (scoring == kMoeSoftmax) return DSK_FDIV(moe_softmax_numerator(logit, row_max), row_sum);
  return portable_sigmoid(logit);
}
DSK_HD float moe_selection_score(float s, const float* bias, int32_t e) { return bias ? DSK_FADD(s, bias[e]) : s; }

// Sum of the k chosen weights, slot 0 first.
DSK_HD float moe_weight_sum(const float* w, int k) {
  float s = 0.0f;
  for (int j = 0; j < k; ++j) s = DSK_FADD(s, w[j]);
  return s;
}
// A chosen weight after normalization (skipped when the sum is not positive) and routed scaling; NaN
// is written as the canonical 0x7fc00000 so both devices store the same bits.
DSK_HD float moe_final_weight(float w, float sum, const MoeGateParams& p) {
  if (p.norm_topk && sum > 0.0f) w = DSK_FDIV(w, sum);
  w = DSK_FMUL(w, p.routed_scale);
  return w != w ? bits_f32(0x7fc00000u) : w;
}

// Aux-loss-free bias step: the sign of (mean load - load[e]) in exact integer arithmetic
// (mean - load = (total - E * load) / E), then bias + gamma * sign, unchanged where the sign is 0.
DSK_HD float moe_bias_step(float bias, int64_t load, int64_t total, int64_t num_experts, float gamma) {
  int64_t d = total - num_experts * load;
  if (d > 0) return DSK_FADD(bias, gamma);
  if (d < 0) return DSK_FSUB(bias, gamma);
  return bias;
}

// Rows of the grouped layout moePermute allocates: every segment padded to `align`, so the used rows
// are at most T*k + (non-empty experts)*(align-1), a multiple of align.
inline int64_t moe_permute_rows(int64_t slots, int64_t num_experts, int64_t align) {
  int64_t nonempty = slots < num_experts ? slots : num_experts;
  return (slots + nonempty * (align - 1)) / align * align;
}
// Slots per histogram chunk of the CUDA permute; its workspace is ceil(slots/chunk)*E + rows i32.
constexpr int64_t kMoePermuteChunk = 1024;
inline int64_t moe_permute_workspace(int64_t slots, int64_t num_experts, int64_t rows) {
  return (slots + kMoePermuteChunk - 1) / kMoePermuteChunk * num_experts + rows;
}

}  // namespace dsk
