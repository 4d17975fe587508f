// Fine-grained FP8 quantization (DeepSeek-V3's act_quant and 128x128 weight blocks), written once for the
// CPU reference and the CUDA kernels so both give the same bits:
//   amax  = max |x| over the tile (NaN ignored)
//   scale = max(amax, 1e-4) / 448          (f32 division, round to nearest)
//   q     = fp8e4m3(x / scale)             (f32 division, then RNE to e4m3 with saturation; NaN -> 0x7f)
// and dequantization  x' = f32(q) * scale  (one f32 multiply).
#pragma once
#include <cstdint>

#include "../core/dtype.h"
#include "portable_math.h"

namespace dsk {

constexpr int kQuantBlock = 128;      // activation tile 1x128, weight block 128x128
constexpr float kFp8Max = 448.0f;
constexpr float kAmaxFloor = 1e-4f;

DSK_HD float abs_bits(float x) { return bits_f32(f32_bits(x) & 0x7fffffffu); }

// Running max of |x| that ignores NaN (start from 0). Order-independent, so any reduction tree agrees.
DSK_HD float amax_update(float m, float x) {
  float a = abs_bits(x);
  return a > m ? a : m;
}
DSK_HD float amax_combine(float m1, float m2) { return m2 > m1 ? m2 : m1; }

DSK_HD float fp8_scale_for(float amax) { return DSK_FDIV(amax > kAmaxFloor ? amax : kAmaxFloor, kFp8Max); }
DSK_HD uint8_t fp8_quantize(float x, float scale) { return f32_to_fp8e4m3(DSK_FDIV(x, scale)); }
DSK_HD float fp8_dequantize(uint8_t q, float scale) { return DSK_FMUL(fp8e4m3_to_f32(q), scale); }

}  // namespace dsk
