// CUDA sampling; contract and definition as in native/cpu/sample.h / native/math/sample_math.h (same token).
#pragma once
#include <cstdint>

#include "../core/runtime.h"
#include "reduce.h"

namespace dsk::cuda {

void sample(const void* logits, int64_t ls, DType dt, int64_t rows, int64_t V, float temperature, int64_t top_k, float top_p,
            uint64_t seed, int32_t* out, const RowLaunch& rl, Stream stream);

}  // namespace dsk::cuda
