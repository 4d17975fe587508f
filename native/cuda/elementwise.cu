// Elementwise ops: 8 elements per thread with 16-byte accesses when every operand is contiguous and
// aligned; otherwise one element per thread through the strided views (broadcast dims have stride 0).
#include "common.cuh"
#include "elementwise.h"
#include "vec.cuh"

namespace dsk::cuda {

namespace {

constexpr int kThreads = 256;

bool contiguous(const StridedView& v) {
  int64_t expect = 1;
  for (int d = v.ndim - 1; d >= 0; --d) {
    if (v.shape[d] != 1 && v.strides[d] != expect) return false;
    expect *= v.shape[d];
  }
  return true;
}

// op < 0: scale by s (b unused).
__global__ void elementwise_contig_kernel(int op, float s, const void* a, DType adt, const void* b, DType bdt, void* out, DType odt,
                                          int64_t n, bool vec) {
  DSK_GRID_STRIDE(g, (n + 7) / 8) {
    int64_t i = g * 8;
    int cnt = static_cast<int>(min64(8, n - i));
    float x[8], y[8];
    load_vec<8>(a, adt, i, cnt, vec, x);
    if (op >= 0) load_vec<8>(b, bdt, i, cnt, vec, y);
#pragma unroll
    for (int k = 0; k < 8; ++k) x[k] = op >= 0 ? binary_apply(static_cast<BinaryOp>(op), x[k], y[k]) : __fmul_rn(x[k], s);
    store_vec<8>(out, odt, i, cnt, vec, x);
  }
}

__global__ void elementwise_strided_kernel(int op, float s, StridedView a, StridedView b, StridedView out, int64_t n) {
  DSK_GRID_STRIDE(i, n) {
    float x = load_f32(a.data, a.dtype, a.offset_of(i));
    float v = op >= 0 ? binary_apply(static_cast<BinaryOp>(op), x, load_f32(b.data, b.dtype, b.offset_of(i))) : __fmul_rn(x, s);
    store_f32(out.data, out.dtype, i, v);
  }
}

void launch(int op, float s, const StridedView& a, const StridedView& b, const StridedView& out, Stream stream) {
  int64_t n = out.numel();
  if (n == 0) return;
  if (contiguous(a) && contiguous(b)) {
    bool vec = vec_aligned(a.data, a.dtype, 0, 8) && vec_aligned(out.data, out.dtype, 0, 8) && (op < 0 || vec_aligned(b.data, b.dtype, 0, 8));
    elementwise_contig_kernel<<<grid_for((n + 7) / 8, kThreads), kThreads, 0, to_cuda(stream)>>>(op, s, a.data, a.dtype, b.data, b.dtype,
                                                                                                   out.data, out.dtype, n, vec);
  } else {
    elementwise_strided_kernel<<<grid_for(n, kThreads), kThreads, 0, to_cuda(stream)>>>(op, s, a, b, out, n);
  }
}

}  // namespace

void binary(BinaryOp op, const StridedView& a, const StridedView& b, const StridedView& out, Stream stream) {
  launch(static_cast<int>(op), 0.0f, a, b, out, stream);
}
void scale(const StridedView& x, float s, const StridedView& out, Stream stream) { launch(-1, s, x, x, out, stream); }

}  // namespace dsk::cuda
