// RMSNorm arithmetic shared by the CPU reference and the CUDA kernels (unfused f32 operations):
//   h   = x, or round_to_dtype(x + residual) for the fused add-norm
//   ss  = sum of h*h in the canonical row order (row_sum.h)
//   inv = 1 / sqrt(ss / D + eps)
//   out = round_to_dtype((h * inv) * weight)
#pragma once
#include <cstdint>

#include "../core/dtype.h"
#include "portable_math.h"

namespace dsk {

// v rounded to dt and back (identity for f32).
DSK_HD float round_to_dtype(float v, DType dt) {
  if (dt == DType::BF16) return bf16_to_f32(f32_to_bf16(v));
  if (dt == DType::F16) return f16_to_f32(f32_to_f16(v));
  return v;
}

DSK_HD float rms_inv(float ss, int64_t D, float eps) {
  return DSK_FDIV(1.0f, DSK_FSQRT(DSK_FADD(DSK_FDIV(ss, static_cast<float>(D)), eps)));
}

}  // namespace dsk
