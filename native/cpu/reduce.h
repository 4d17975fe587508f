// CPU references of the reductions over the last dim of a [rows, n] row-major view (row stride xs).
#pragma once
#include <cstdint>

#include "../core/dtype.h"

namespace dsk::cpu {

// softmax / logSoftmax (native/math/softmax_math.h); out contiguous [rows, n] of out_dt.
void softmax(const void* x, int64_t xs, DType dt, int64_t rows, int64_t n, bool log, void* out, DType out_dt);
// Index of the largest element (order of native/math/order_key.h: NaN largest, ties to the lower index).
void argmax(const void* x, int64_t xs, DType dt, int64_t rows, int64_t n, int32_t* out);
// The k largest elements, sorted descending (same order); values copied bit-exactly in dt, indices i32.
void topk(const void* x, int64_t xs, DType dt, int64_t rows, int64_t n, int64_t k, void* values, int32_t* indices);

}  // namespace dsk::cpu
