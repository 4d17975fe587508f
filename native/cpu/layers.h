// CPU references of the layer ops (embedding, norms, rotary, activations, elementwise, reductions).
// Plain C++, f32 internal math, parallel over rows. The ground truth the CUDA kernels are tested against.
#pragma once
#include <cstdint>

#include "../core/diag.h"
#include "../core/dtype.h"

namespace dsk::cpu {

// out[t, :] = table[ids[t], :]. ids i32 [T]; table [V, D] and out [T, D] of dtype `dt`.
// An id outside [0, V) is reported to `diag` and its row is left untouched.
void embedding(const int32_t* ids, int64_t T, const void* table, int64_t V, int64_t D, DType dt, void* out, DiagRecord* diag);

}  // namespace dsk::cpu
