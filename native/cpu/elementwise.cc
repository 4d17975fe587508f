#include "elementwise.h"

#include "../core/runtime.h"

namespace dsk::cpu {

namespace {

bool contiguous(const StridedView& v) {
  int64_t expect = 1;
  for (int d = v.ndim - 1; d >= 0; --d) {
    if (v.shape[d] != 1 && v.strides[d] != expect) return false;
    expect *= v.shape[d];
  }
  return true;
}

// Calls f(o, off0, off1) for each element: rows of the last dim with their start offsets, then strides.
template <class F>
void for_rows(const StridedView& out, const StridedView& x, const StridedView& y, F&& f) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const int last = out.ndim - 1;
  const int64_t inner = out.ndim ? out.shape[last] : 1;
  const int64_t xs = out.ndim ? x.strides[last] : 0, ys = out.ndim ? y.strides[last] : 0;
  parallel_for(n / inner, (1 << 14) / inner + 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t xo = x.offset_of(r * inner), yo = y.offset_of(r * inner);
      for (int64_t i = 0; i < inner; ++i) f(r * inner + i, xo + i * xs, yo + i * ys);
    }
  });
}

}  // namespace

void binary(BinaryOp op, const StridedView& a, const StridedView& b, const StridedView& out) {
  if (contiguous(a) && contiguous(b)) {
    parallel_for(out.numel(), 1 << 14, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) store_f32(out.data, out.dtype, i, binary_apply(op, load_f32(a.data, a.dtype, i), load_f32(b.data, b.dtype, i)));
    });
    return;
  }
  for_rows(out, a, b, [&](int64_t o, int64_t ao, int64_t bo) {
    store_f32(out.data, out.dtype, o, binary_apply(op, load_f32(a.data, a.dtype, ao), load_f32(b.data, b.dtype, bo)));
  });
}

void scale(const StridedView& x, float s, const StridedView& out) {
  for_rows(out, x, x, [&](int64_t o, int64_t xo, int64_t) { store_f32(out.data, out.dtype, o, load_f32(x.data, x.dtype, xo) * s); });
}

}  // namespace dsk::cpu
