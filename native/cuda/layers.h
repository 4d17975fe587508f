// CUDA kernels of the layer ops; contracts as in native/cpu/layers.h, enqueued on `stream`.
#pragma once
#include <cstdint>

#include "../core/diag.h"
#include "../core/runtime.h"

namespace dsk::cuda {

void embedding(const int32_t* ids, int64_t T, const void* table, int64_t V, int64_t D, DType dt, void* out, DiagRecord* diag,
               Stream stream);

}  // namespace dsk::cuda
