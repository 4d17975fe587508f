#include "norm.h"

#include <vector>

#include "../math/norm_math.h"
#include "../math/row_sum.h"
#include "../core/runtime.h"

namespace dsk::cpu {

void rms_norm(const void* x, int64_t x_stride, const void* residual, int64_t r_stride, DType dt, const void* weight, DType w_dt,
              int64_t rows, int64_t D, float eps, void* out, void* residual_out) {
  parallel_for(rows, 4, [&](int64_t b, int64_t e) {
    std::vector<float> h(D);
    for (int64_t r = b; r < e; ++r) {
      for (int64_t d = 0; d < D; ++d) {
        float v = load_f32(x, dt, r * x_stride + d);
        if (residual) {
          v = round_to_dtype(v + load_f32(residual, dt, r * r_stride + d), dt);
          store_f32(residual_out, dt, r * D + d, v);
        }
        h[d] = v;
      }
      float ss = canonical_row_sum(D, [&](float acc, int64_t i0, int cnt) {
        for (int i = 0; i < cnt; ++i) acc = acc + h[i0 + i] * h[i0 + i];
        return acc;
      });
      float inv = rms_inv(ss, D, eps);
      for (int64_t d = 0; d < D; ++d) store_f32(out, dt, r * D + d, (h[d] * inv) * load_f32(weight, w_dt, d));
    }
  });
}

}  // namespace dsk::cpu
