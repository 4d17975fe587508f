#include "sample.h"

#include <algorithm>
#include <vector>

#include "../math/row_sum.h"
#include "../core/runtime.h"
#include "../math/sample_math.h"

namespace dsk::cpu {

static int32_t sample_row(const void* x, DType dt, int64_t V, float temperature, int64_t top_k, float top_p, uint64_t row,
                          uint64_t seed, std::vector<float>& z, std::vector<uint64_t>& order, std::vector<float>& e,
                          std::vector<float>& cum, std::vector<char>& kept) {
  uint32_t kmax = 0;
  for (int64_t i = 0; i < V; ++i) {
    uint32_t k = float_order_key(sample_logit(load_f32(x, dt, i), temperature));
    z[i] = order_key_float(k);  // -0 -> +0, as the GPU sees it through the key
    order[i] = (static_cast<uint64_t>(k) << 32) | (0xffffffffu - static_cast<uint32_t>(i));
    kmax = k > kmax ? k : kmax;
  }
  const float zmax = order_key_float(kmax);
  const int64_t nc = top_k > 0 && top_k < V ? top_k : V;
  std::partial_sort(order.begin(), order.begin() + nc, order.end(), [](uint64_t p, uint64_t q) { return p > q; });
  auto index_of = [&](int64_t pos) { return static_cast<int64_t>(0xffffffffu - static_cast<uint32_t>(order[pos])); };
  if (zmax == __builtin_huge_valf() || zmax == -__builtin_huge_valf()) return static_cast<int32_t>(index_of(0));

  std::fill(kept.begin(), kept.end(), 0);
  for (int64_t p = 0; p < nc; ++p) kept[index_of(p)] = 1;
  for (int64_t i = 0; i < V; ++i) e[i] = kept[i] ? portable_exp(z[i] - zmax) : 0.0f;
  const float S = canonical_row_sum(V, [&](float acc, int64_t i0, int cnt) {
    for (int i = 0; i < cnt; ++i)
      if (kept[i0 + i]) acc = acc + e[i0 + i];
    return acc;
  });
  // C over the sorted candidates: chunk totals left to right, prefix sums inside each chunk.
  float R = 0.0f;
  for (int64_t c0 = 0; c0 < nc; c0 += kSampleChunk) {
    float P = 0.0f;
    for (int64_t p = c0; p < nc && p < c0 + kSampleChunk; ++p) {
      P = P + e[index_of(p)];
      cum[p] = R + P;
    }
    R = R + P;
  }
  int64_t n_nuc = nc;
  float total = S;
  if (top_p < 1.0f) {
    const float target = top_p * S;
    for (int64_t p = 0; p < nc; ++p)
      if (cum[p] >= target) { n_nuc = p + 1; total = cum[p]; break; }
  }
  const float target = sample_uniform(row, seed) * total;
  for (int64_t p = 0; p < n_nuc; ++p)
    if (cum[p] > target) return static_cast<int32_t>(index_of(p));
  return static_cast<int32_t>(index_of(n_nuc - 1));
}

void sample(const void* logits, int64_t ls, DType dt, int64_t rows, int64_t V, float temperature, int64_t top_k, float top_p,
            uint64_t seed, int32_t* out) {
  parallel_for(rows, 1, [&](int64_t b, int64_t e) {
    std::vector<float> z(V), ev(V), cum(V);
    std::vector<uint64_t> order(V);
    std::vector<char> kept(V);
    for (int64_t r = b; r < e; ++r)
      out[r] = sample_row(static_cast<const char*>(logits) + r * ls * dtype_size(dt), dt, V, temperature, top_k, top_p,
                          static_cast<uint64_t>(r), seed, z, order, ev, cum, kept);
  });
}

}  // namespace dsk::cpu
