#include "rope.h"

#include <cmath>
#include <vector>

#include "../math/rope_freqs.h"
#include "../core/runtime.h"

namespace dsk::cpu {

void rope(const void* x, DType dt, int64_t T, int64_t H, int64_t D, int rope_dim, const int32_t* positions,
          const double* inv_freq, double mscale, void* out) {
  const int half = rope_dim / 2;
  const int64_t pass = D - rope_dim;  // leading dims copied unchanged
  parallel_for(T, 4, [&](int64_t b, int64_t e) {
    std::vector<float> cs(static_cast<size_t>(rope_dim));
    for (int64_t t = b; t < e; ++t) {
      for (int i = 0; i < half; ++i) {
        double a = static_cast<double>(positions[t]) * inv_freq[i];
        cs[2 * i] = static_cast<float>(std::cos(a) * mscale);
        cs[2 * i + 1] = static_cast<float>(std::sin(a) * mscale);
      }
      for (int64_t h = 0; h < H; ++h) {
        const int64_t row = (t * H + h) * D;
        for (int64_t d = 0; d < pass; ++d) convert_element(out, dt, row + d, x, dt, row + d);
        for (int i = 0; i < half; ++i) {
          const int64_t j = row + pass + 2 * i;
          float y0, y1;
          rope_rotate_pair(load_f32(x, dt, j), load_f32(x, dt, j + 1), cs[2 * i], cs[2 * i + 1], y0, y1);
          store_f32(out, dt, j, y0);
          store_f32(out, dt, j + 1, y1);
        }
      }
    }
  });
}

}  // namespace dsk::cpu
