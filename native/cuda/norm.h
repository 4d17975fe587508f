// CUDA RMSNorm; contract as in native/cpu/norm.h (same bits).
#pragma once
#include <cstdint>

#include "../core/runtime.h"

namespace dsk::cuda {

void rms_norm(const void* x, int64_t x_stride, const void* residual, int64_t r_stride, DType dt, const void* weight, DType w_dt,
              int64_t rows, int64_t D, float eps, void* out, void* residual_out, Stream stream);

}  // namespace dsk::cuda
