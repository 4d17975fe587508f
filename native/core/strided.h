// A tensor view as kernels see it: base pointer, dtype, shape and strides in elements (up to 8 dims).
#pragma once
#include <cstdint>
#include "dtype.h"

namespace dsk {

constexpr int kMaxDims = 8;

struct StridedView {
  void* data = nullptr;
  DType dtype = DType::F32;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};

  DSK_HD int64_t numel() const { int64_t n = 1; for (int i = 0; i < ndim; ++i) n *= shape[i]; return n; }
  // Row-major dense (size-1 dims may have any stride).
  DSK_HD bool is_contiguous() const {
    int64_t expect = 1;
    for (int d = ndim - 1; d >= 0; --d) {
      if (shape[d] != 1 && strides[d] != expect) return false;
      expect *= shape[d];
    }
    return true;
  }
  // Element offset of the i-th element in row-major order of `shape`.
  DSK_HD int64_t offset_of(int64_t linear) const {
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      int64_t s = shape[d];
      off += (linear % s) * strides[d];
      linear /= s;
    }
    return off;
  }
};

}  // namespace dsk
