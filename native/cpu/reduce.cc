#include "reduce.h"

#include <algorithm>
#include <vector>

#include "../math/order_key.h"
#include "../math/row_sum.h"
#include "../core/runtime.h"
#include "../math/softmax_math.h"

namespace dsk::cpu {

void softmax(const void* x, int64_t xs, DType dt, int64_t rows, int64_t n, bool log, void* out, DType out_dt) {
  parallel_for(rows, 1, [&](int64_t b, int64_t e) {
    std::vector<float> v(n);
    for (int64_t r = b; r < e; ++r) {
      float m = kNegInf;
      for (int64_t i = 0; i < n; ++i) m = max_ignore_nan(m, v[i] = load_f32(x, dt, r * xs + i));
      float s = canonical_row_sum(n, [&](float acc, int64_t i0, int cnt) {
        for (int i = 0; i < cnt; ++i) acc = acc + portable_exp(v[i0 + i] - m);
        return acc;
      });
      float ls = log_sum(s);
      for (int64_t i = 0; i < n; ++i) store_f32(out, out_dt, r * n + i, softmax_out(v[i], m, s, ls, log));
    }
  });
}

void argmax(const void* x, int64_t xs, DType dt, int64_t rows, int64_t n, int32_t* out) {
  parallel_for(rows, 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      uint32_t best = 0;
      int64_t bi = -1;
      for (int64_t i = 0; i < n; ++i) {
        uint32_t k = float_order_key(load_f32(x, dt, r * xs + i));
        if (bi < 0 || k > best) { best = k; bi = i; }
      }
      out[r] = static_cast<int32_t>(bi);
    }
  });
}

void topk(const void* x, int64_t xs, DType dt, int64_t rows, int64_t n, int64_t k, void* values, int32_t* indices) {
  parallel_for(rows, 1, [&](int64_t b, int64_t e) {
    // (key << 32) | (~index): larger is better, equal keys put the lower index first.
    std::vector<uint64_t> c(n);
    for (int64_t r = b; r < e; ++r) {
      for (int64_t i = 0; i < n; ++i)
        c[i] = (static_cast<uint64_t>(float_order_key(load_f32(x, dt, r * xs + i))) << 32) | (0xffffffffu - static_cast<uint32_t>(i));
      std::partial_sort(c.begin(), c.begin() + k, c.end(), [](uint64_t p, uint64_t q) { return p > q; });
      for (int64_t j = 0; j < k; ++j) {
        int64_t i = 0xffffffffu - static_cast<uint32_t>(c[j]);
        indices[r * k + j] = static_cast<int32_t>(i);
        convert_element(values, dt, r * k + j, x, dt, r * xs + i);
      }
    }
  });
}

}  // namespace dsk::cpu
