// CPU references of the elementwise ops: out = a + b, a * b (f32 math, NumPy broadcasting expressed as
// stride-0 dims of the input views) and out = x * s. out is contiguous with the common shape.
#pragma once
#include "../core/strided.h"

#include "../math/portable_math.h"

namespace dsk {
enum class BinaryOp : int32_t { Add = 0, Mul = 1 };

DSK_HD float binary_apply(BinaryOp op, float a, float b) { return op == BinaryOp::Add ? DSK_FADD(a, b) : DSK_FMUL(a, b); }
}  // namespace dsk

namespace dsk::cpu {

// a, b and out have the same shape (a and b may have stride-0 dims); out is contiguous.
void binary(BinaryOp op, const StridedView& a, const StridedView& b, const StridedView& out);
void scale(const StridedView& x, float s, const StridedView& out);

}  // namespace dsk::cpu
