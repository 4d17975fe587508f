// CUDA rotary embedding; contract as native/cpu/rope.h, enqueued on `stream`.
#pragma once
#include <cstdint>

#include "../core/dtype.h"
#include "../core/runtime.h"

namespace dsk::cuda {

void rope(const void* x, DType dt, int64_t T, int64_t H, int64_t D, int rope_dim, const int32_t* positions,
          const double* inv_freq, double mscale, void* out, Stream stream);

}  // namespace dsk::cuda
