// CUDA kernels of the tensor runtime; same contracts as native/cpu/tensor_ops.h, enqueued on `stream`.
#pragma once
#include "../math/random.h"
#include "../core/runtime.h"
#include "../core/strided.h"

namespace dsk::cuda {

void copy_strided(const StridedView& dst, const StridedView& src, Stream stream);
// n bytes, device to device on one GPU (a kernel: faster than the copy engine there).
void copy_bytes(void* dst, const void* src, size_t n, Stream stream);
void fill(void* dst, DType dtype, int64_t n, double value, Stream stream);
void random_fill(void* dst, DType dtype, int64_t n, RandomKind kind, uint64_t seed, double a, double b, Stream stream);

}  // namespace dsk::cuda
