// A tensor argument seen as a matrix [rows, cols] over its last dim: unit stride along the last dim and
// one row stride for all leading dims together (what a contiguous tensor, or a column slice of one such
// as x[:, :512], has). Kernels taking (pointer, rows, cols, row stride) accept such views without a copy.
#pragma once
#include "../cuda/reduce.h"
#include "addon.h"

namespace dsk::addon {

struct RowsArg {
  void* data;
  int64_t rows, cols, stride;  // stride in elements between consecutive rows
};

// Fails with a RangeError naming the tensor when it is not such a view (the TS layer passes .contiguous()
// copies of anything else, so this only guards memory safety).
inline RowsArg rows_of(const OpArgs& a, const TensorArg& t) {
  if (t.ndim() < 1) a.fail_range(std::string(t.name) + " must have at least 1 dim");
  int nd = t.ndim();
  int64_t cols = t.shape[nd - 1], rows = 1;
  for (int d = 0; d < nd - 1; ++d) rows *= t.shape[d];
  if (cols > 1 && t.strides[nd - 1] != 1) a.fail_range(std::string(t.name) + " must have unit stride in its last dim");
  int64_t stride = -1, expect = 0;
  for (int d = nd - 2; d >= 0; --d) {
    if (t.shape[d] == 1) continue;
    if (stride < 0) {
      stride = t.strides[d];
      expect = stride * t.shape[d];
    } else {
      if (t.strides[d] != expect) a.fail_range(std::string(t.name) + " must be a row-major view (leading dims that collapse)");
      expect *= t.shape[d];
    }
  }
  if (stride < 0) stride = cols;
  if (rows > 1 && stride < cols) a.fail_range(std::string(t.name) + " has overlapping rows");
  return RowsArg{t.data(), rows, cols, stride};
}

// The SM count and cluster support of a CUDA device (a CudaDevice; generic so CPU-only builds never need it),
// for the row kernels that split few long rows over clusters.
template <class CudaDev>
cuda::RowLaunch row_launch(const CudaDev& d) {
  return cuda::RowLaunch{d.info().sm_count, d.info().cc_major >= 9};
}

inline DType out_dtype_arg(const OpArgs& a, size_t i, const char* name) {
  std::string s = a.string(i, name);
  static const char* names[] = {"f32", "bf16", "f16", "fp8e4m3", "i32", "i64", "u8"};
  for (int k = 0; k < kNumDTypes; ++k)
    if (s == names[k]) return static_cast<DType>(k);
  a.fail_type(std::string(name) + " has unknown dtype '" + s + "'");
}

}  // namespace dsk::addon
