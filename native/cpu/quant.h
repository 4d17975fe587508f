// CPU references of the FP8 quantization ops and the SwiGLU activation (formulas in native/math/fp8_quant.h).
// Inputs are [rows, cols] with unit column stride and a row stride in elements; outputs are contiguous.
#pragma once
#include <cstdint>

#include "../core/dtype.h"

namespace dsk::cpu {

// x [rows, K] (K % 128 == 0) -> q fp8 [rows, K], scale f32 [rows, K/128]: one scale per 1x128 tile.
void quantize_activation(const void* x, DType dt, int64_t rows, int64_t K, int64_t x_stride, uint8_t* q, float* scale);
// w [N, K] contiguous -> q fp8 [N, K], scale f32 [ceil(N/128), ceil(K/128)]: one scale per 128x128 block
// (edge blocks cover what is left).
void quantize_weight(const void* w, DType dt, int64_t N, int64_t K, uint8_t* q, float* scale);
// out = f32(q) * scale, stored as out_dt. Activation layout: scale [rows, K/128]; weight: [ceil(N/128), ceil(K/128)].
void dequantize_activation(const uint8_t* q, const float* scale, int64_t rows, int64_t K, void* out, DType out_dt);
void dequantize_weight(const uint8_t* q, const float* scale, int64_t N, int64_t K, void* out, DType out_dt);

// out = silu(gate) * up = (gate * sigmoid(gate)) * up in f32 (portable_sigmoid), stored as dt.
void swiglu(const void* gate, int64_t gate_stride, const void* up, int64_t up_stride, DType dt, int64_t rows, int64_t D,
            void* out);
// quantize_activation of the f32 swiglu values (never rounded to dt in between). D % 128 == 0. With
// m_indices (optional, [rows]), rows whose entry is negative (contiguous-layout padding) are skipped: their q
// and scale are left as they are.
void swiglu_quant(const void* gate, int64_t gate_stride, const void* up, int64_t up_stride, DType dt, int64_t rows, int64_t D,
                  const int32_t* m_indices, uint8_t* q, float* scale);

}  // namespace dsk::cpu
