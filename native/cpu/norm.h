// CPU reference of RMSNorm (optionally fused with the residual add); formulas in native/math/norm_math.h.
// x and residual are [rows, D] views with row strides; weight [D]; out and residual_out contiguous [rows, D].
#pragma once
#include <cstdint>

#include "../core/dtype.h"

namespace dsk::cpu {

// residual == nullptr: out = rmsnorm(x) * weight. Otherwise h = x + residual (rounded to dt) is written to
// residual_out and out = rmsnorm(h) * weight.
void rms_norm(const void* x, int64_t x_stride, const void* residual, int64_t r_stride, DType dt, const void* weight, DType w_dt,
              int64_t rows, int64_t D, float eps, void* out, void* residual_out);

}  // namespace dsk::cpu
