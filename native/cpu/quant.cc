#include "quant.h"

#include <vector>

#include "../math/fp8_quant.h"
#include "../core/runtime.h"
#include "../math/swiglu.h"

namespace dsk::cpu {

// Quantizes the 1x128 tiles of one row, whose f32 values are in v.
static void quantize_row(const float* v, int64_t K, uint8_t* q, float* scale) {
  for (int64_t t = 0; t < K / kQuantBlock; ++t) {
    const float* x = v + t * kQuantBlock;
    float amax = 0.0f;
    for (int i = 0; i < kQuantBlock; ++i) amax = amax_update(amax, x[i]);
    float s = fp8_scale_for(amax);
    scale[t] = s;
    for (int i = 0; i < kQuantBlock; ++i) q[t * kQuantBlock + i] = fp8_quantize(x[i], s);
  }
}

void quantize_activation(const void* x, DType dt, int64_t rows, int64_t K, int64_t x_stride, uint8_t* q, float* scale) {
  parallel_for(rows, 4, [&](int64_t b, int64_t e) {
    std::vector<float> v(K);
    for (int64_t r = b; r < e; ++r) {
      for (int64_t k = 0; k < K; ++k) v[k] = load_f32(x, dt, r * x_stride + k);
      quantize_row(v.data(), K, q + r * K, scale + r * (K / kQuantBlock));
    }
  });
}

void quantize_weight(const void* w, DType dt, int64_t N, int64_t K, uint8_t* q, float* scale) {
  int64_t nb = (N + kQuantBlock - 1) / kQuantBlock, kb = (K + kQuantBlock - 1) / kQuantBlock;
  parallel_for(nb * kb, 1, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk) {
      int64_t n0 = blk / kb * kQuantBlock, k0 = blk % kb * kQuantBlock;
      int64_t n1 = n0 + kQuantBlock < N ? n0 + kQuantBlock : N, k1 = k0 + kQuantBlock < K ? k0 + kQuantBlock : K;
      float amax = 0.0f;
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t k = k0; k < k1; ++k) amax = amax_update(amax, load_f32(w, dt, n * K + k));
      float s = fp8_scale_for(amax);
      scale[blk] = s;
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t k = k0; k < k1; ++k) q[n * K + k] = fp8_quantize(load_f32(w, dt, n * K + k), s);
    }
  });
}

void dequantize_activation(const uint8_t* q, const float* scale, int64_t rows, int64_t K, void* out, DType out_dt) {
  int64_t kt = K / kQuantBlock;
  parallel_for(rows, 8, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      for (int64_t k = 0; k < K; ++k)
        store_f32(out, out_dt, r * K + k, fp8_dequantize(q[r * K + k], scale[r * kt + k / kQuantBlock]));
  });
}

void dequantize_weight(const uint8_t* q, const float* scale, int64_t N, int64_t K, void* out, DType out_dt) {
  int64_t kb = (K + kQuantBlock - 1) / kQuantBlock;
  parallel_for(N, 8, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      const float* srow = scale + (n / kQuantBlock) * kb;
      for (int64_t k = 0; k < K; ++k) store_f32(out, out_dt, n * K + k, fp8_dequantize(q[n * K + k], srow[k / kQuantBlock]));
    }
  });
}

void swiglu(const void* gate, int64_t gate_stride, const void* up, int64_t up_stride, DType dt, int64_t rows, int64_t D,
            void* out) {
  parallel_for(rows, 4, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      for (int64_t d = 0; d < D; ++d)
        store_f32(out, dt, r * D + d, swiglu_f32(load_f32(gate, dt, r * gate_stride + d), load_f32(up, dt, r * up_stride + d)));
  });
}

void swiglu_quant(const void* gate, int64_t gate_stride, const void* up, int64_t up_stride, DType dt, int64_t rows, int64_t D,
                  const int32_t* m_indices, uint8_t* q, float* scale) {
  parallel_for(rows, 4, [&](int64_t b, int64_t e) {
    std::vector<float> v(D);
    for (int64_t r = b; r < e; ++r) {
      if (m_indices && m_indices[r] < 0) continue;
      for (int64_t d = 0; d < D; ++d) v[d] = swiglu_f32(load_f32(gate, dt, r * gate_stride + d), load_f32(up, dt, r * up_stride + d));
      quantize_row(v.data(), D, q + r * D, scale + r * (D / kQuantBlock));
    }
  });
}

}  // namespace dsk::cpu
