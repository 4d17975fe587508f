#include "common.cuh"
#include "tensor_ops.h"

namespace dsk::cuda {

__global__ void copy_strided_kernel(StridedView dst, StridedView src, int64_t n) {
  DSK_GRID_STRIDE(i, n) convert_element(dst.data, dst.dtype, dst.offset_of(i), src.data, src.dtype, src.offset_of(i));
}

__global__ void fill_kernel(unsigned char* dst, int64_t n, int size, uint64_t pattern) {
  DSK_GRID_STRIDE(i, n) {
    for (int k = 0; k < size; ++k) dst[i * size + k] = static_cast<unsigned char>(pattern >> (8 * k));
  }
}

__global__ void random_kernel(void* dst, DType dtype, int64_t n, RandomKind kind, uint64_t seed, double a, double b) {
  DSK_GRID_STRIDE(i, n) {
    if (kind == RandomKind::Int) {
      int64_t v = random_element_int(seed, static_cast<uint64_t>(i), static_cast<int64_t>(a), static_cast<int64_t>(b));
      if (dtype == DType::I64) static_cast<int64_t*>(dst)[i] = v;
      else if (dtype == DType::I32) static_cast<int32_t*>(dst)[i] = static_cast<int32_t>(v);
      else store_f32(dst, dtype, i, static_cast<float>(v));
    } else {
      store_f32(dst, dtype, i, random_element_f32(kind, seed, static_cast<uint64_t>(i), static_cast<float>(a), static_cast<float>(b)));
    }
  }
}

// Contiguous on both sides: no index arithmetic, 4 elements per thread per step.
__global__ void convert_contiguous_kernel(void* dst, DType dt, const void* src, DType st, int64_t n) {
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x * 4;
  for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 4; i < n; i += stride) {
#pragma unroll
    for (int k = 0; k < 4; ++k)
      if (i + k < n) convert_element(dst, dt, i + k, src, st, i + k);
  }
}

static bool is_contiguous(const StridedView& v) {
  int64_t expect = 1;
  for (int d = v.ndim - 1; d >= 0; --d) {
    if (v.shape[d] != 1 && v.strides[d] != expect) return false;
    expect *= v.shape[d];
  }
  return true;
}

void copy_strided(const StridedView& dst, const StridedView& src, Stream stream) {
  int64_t n = dst.numel();
  if (n == 0) return;
  if (is_contiguous(dst) && is_contiguous(src)) {
    if (dst.dtype == src.dtype) {
      cudaMemcpyAsync(dst.data, src.data, n * dtype_size(dst.dtype), cudaMemcpyDeviceToDevice, to_cuda(stream));
    } else {
      convert_contiguous_kernel<<<grid_for((n + 3) / 4, 256), 256, 0, to_cuda(stream)>>>(dst.data, dst.dtype, src.data, src.dtype, n);
    }
    return;
  }
  copy_strided_kernel<<<grid_for(n, 256), 256, 0, to_cuda(stream)>>>(dst, src, n);
}

void fill(void* dst, DType dtype, int64_t n, double value, Stream stream) {
  if (n == 0) return;
  alignas(8) unsigned char one[8] = {};
  if (dtype == DType::I64) *reinterpret_cast<int64_t*>(one) = static_cast<int64_t>(value);
  else if (dtype == DType::I32) *reinterpret_cast<int32_t*>(one) = static_cast<int32_t>(value);
  else store_f32(one, dtype, 0, static_cast<float>(value));
  uint64_t pattern;
  memcpy(&pattern, one, 8);
  fill_kernel<<<grid_for(n, 256), 256, 0, to_cuda(stream)>>>(static_cast<unsigned char*>(dst), n, dtype_size(dtype), pattern);
}

void random_fill(void* dst, DType dtype, int64_t n, RandomKind kind, uint64_t seed, double a, double b, Stream stream) {
  if (n == 0) return;
  random_kernel<<<grid_for(n, 256), 256, 0, to_cuda(stream)>>>(dst, dtype, n, kind, seed, a, b);
}

}  // namespace dsk::cuda
