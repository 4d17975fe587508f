// CUDA elementwise ops; contracts as in native/cpu/elementwise.h (same bits).
#pragma once
#include "../core/runtime.h"
#include "../cpu/elementwise.h"

namespace dsk::cuda {

void binary(BinaryOp op, const StridedView& a, const StridedView& b, const StridedView& out, Stream stream);
void scale(const StridedView& x, float s, const StridedView& out, Stream stream);

}  // namespace dsk::cuda
