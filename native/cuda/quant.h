// CUDA kernels of the FP8 quantization ops and SwiGLU; contracts as in native/cpu/quant.h (same bits).
#pragma once
#include <cstdint>

#include "../core/runtime.h"

namespace dsk::cuda {

void quantize_activation(const void* x, DType dt, int64_t rows, int64_t K, int64_t x_stride, uint8_t* q, float* scale,
                         Stream stream);
void quantize_weight(const void* w, DType dt, int64_t N, int64_t K, uint8_t* q, float* scale, Stream stream);
void dequantize_activation(const uint8_t* q, const float* scale, int64_t rows, int64_t K, void* out, DType out_dt, Stream stream);
void dequantize_weight(const uint8_t* q, const float* scale, int64_t N, int64_t K, void* out, DType out_dt, Stream stream);
void swiglu(const void* gate, int64_t gate_stride, const void* up, int64_t up_stride, DType dt, int64_t rows, int64_t D,
            void* out, Stream stream);
void swiglu_quant(const void* gate, int64_t gate_stride, const void* up, int64_t up_stride, DType dt, int64_t rows, int64_t D,
                  const int32_t* m_indices, uint8_t* q, float* scale, Stream stream);

}  // namespace dsk::cuda
