// CPU reference kernels of the tensor runtime: strided copy with dtype conversion, fill, random.
#pragma once
#include "../math/random.h"
#include "../core/strided.h"

namespace dsk::cpu {

// dst[i] = convert(src[i]) over the common shape (dst.shape == src.shape).
void copy_strided(const StridedView& dst, const StridedView& src);
// Every element of a contiguous buffer of n elements set to `value` converted to dtype.
void fill(void* dst, DType dtype, int64_t n, double value);
// Element i = random_element(kind, seed, i, a, b) converted to dtype (ints: [a, b) exactly).
void random_fill(void* dst, DType dtype, int64_t n, RandomKind kind, uint64_t seed, double a, double b);

}  // namespace dsk::cpu
