// CPU reference of sampling (definition in native/math/sample_math.h): logits [rows, V] row-major view,
// temperature > 0, topK (0 = all), topP in (0, 1]; out i32 [rows].
#pragma once
#include <cstdint>

#include "../core/dtype.h"

namespace dsk::cpu {

void sample(const void* logits, int64_t ls, DType dt, int64_t rows, int64_t V, float temperature, int64_t top_k, float top_p,
            uint64_t seed, int32_t* out);

}  // namespace dsk::cpu
