#include "common.cuh"
#include "tensor_ops.h"

#include <cstdlib>

namespace dsk::cuda {

__global__ void copy_strided_kernel(StridedView dst, StridedView src, int64_t n) {
  DSK_GRID_STRIDE(i, n) convert_element(dst.data, dst.dtype, dst.offset_of(i), src.data, src.dtype, src.offset_of(i));
}

// Same dtype, last dim unit-stride on both sides, rows of whole 16-byte vectors at 16-byte aligned
// addresses (head slices, broadcasts along a middle dim, permutes that keep the last dim): one 16-byte
// vector per thread step, the row's two offsets computed once per vector instead of per element.
__global__ void copy_rows16_kernel(StridedView dst, StridedView src, int64_t nvec, int64_t vec_per_row, int esize) {
  DSK_GRID_STRIDE(i, nvec) {
    int64_t row = i / vec_per_row;
    const int64_t v = i - row * vec_per_row;
    int64_t od = 0, os = 0;
    for (int d = dst.ndim - 2; d >= 0; --d) {
      int64_t idx = row;
      if (d > 0) {
        const int64_t q = row / dst.shape[d];
        idx = row - q * dst.shape[d];
        row = q;
      }
      od += idx * dst.strides[d];
      os += idx * src.strides[d];
    }
    const int4 x = __ldg(reinterpret_cast<const int4*>(static_cast<const char*>(src.data) + os * esize) + v);
    reinterpret_cast<int4*>(static_cast<char*>(dst.data) + od * esize)[v] = x;
  }
}

// Whether copy_rows16_kernel applies (see there). DSK_COPY_ELEMENTWISE=1 turns it off (benchmarks compare).
static bool rows16_ok(const StridedView& dst, const StridedView& src) {
  static const bool off = [] { const char* v = std::getenv("DSK_COPY_ELEMENTWISE"); return v && v[0] == '1'; }();
  if (off) return false;
  if (dst.dtype != src.dtype || dst.ndim < 1 || dst.ndim != src.ndim) return false;
  const int64_t es = dtype_size(dst.dtype), last = dst.ndim - 1;
  if (dst.strides[last] != 1 || src.strides[last] != 1 || (dst.shape[last] * es) % 16) return false;
  if (reinterpret_cast<uintptr_t>(dst.data) % 16 || reinterpret_cast<uintptr_t>(src.data) % 16) return false;
  for (int d = 0; d < last; ++d)
    if ((dst.strides[d] * es) % 16 || (src.strides[d] * es) % 16) return false;
  return true;
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

// Contiguous on both sides, dtypes known at compile time: 8 elements per thread per step, loaded and
// stored as whole vectors (the element conversion is the shared one, so results match the CPU).
template <DType ST, DType DT>
__global__ void convert_vec_kernel(void* dst, const void* src, int64_t n) {
  constexpr int kS = ST == DType::F32 || ST == DType::I32 ? 4 : ST == DType::I64 ? 8 : (ST == DType::BF16 || ST == DType::F16) ? 2 : 1;
  constexpr int kD = DT == DType::F32 || DT == DType::I32 ? 4 : DT == DType::I64 ? 8 : (DT == DType::BF16 || DT == DType::F16) ? 2 : 1;
  struct alignas(8 * kS) SrcVec { unsigned char b[8 * kS]; };
  struct alignas(8 * kD) DstVec { unsigned char b[8 * kD]; };
  int64_t nvec = n / 8;
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < nvec; v += stride) {
    SrcVec in = static_cast<const SrcVec*>(src)[v];
    if constexpr (DT == DType::F32 && (ST == DType::BF16 || ST == DType::F16 || ST == DType::FP8E4M3)) {
      // Widening to f32 (exact; what convert_element does) built in float registers: through the byte
      // array below the compiler emits a dozen overlapping byte stores per vector (3x the floor, measured).
      float f[8];
#pragma unroll
      for (int k = 0; k < 8; ++k) f[k] = load_f32(in.b, ST, k);
      float4* d = static_cast<float4*>(dst) + 2 * v;
      d[0] = make_float4(f[0], f[1], f[2], f[3]);
      d[1] = make_float4(f[4], f[5], f[6], f[7]);
    } else {
      DstVec out;
#pragma unroll
      for (int k = 0; k < 8; ++k) convert_element(out.b, DT, k, in.b, ST, k);
      static_cast<DstVec*>(dst)[v] = out;
    }
  }
  // The tail (fewer than 8 elements) by the first threads.
  int64_t t = nvec * 8 + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t < n) convert_element(dst, DT, t, src, ST, t);
}

// Plain byte copy with 16-byte vectors (a copy kernel reaches the HBM copy bandwidth; the copy engine
// behind cudaMemcpyAsync gets ~20% less on H100).
__global__ void copy_bytes_kernel(int4* dst, const int4* src, int64_t nvec) {
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < nvec; v += stride) dst[v] = __ldg(src + v);
}

template <DType ST>
static void launch_convert_from(void* dst, DType dt, const void* src, int64_t n, cudaStream_t s) {
  unsigned g = grid_for((n + 7) / 8, 256);
  switch (dt) {
    case DType::F32: convert_vec_kernel<ST, DType::F32><<<g, 256, 0, s>>>(dst, src, n); break;
    case DType::BF16: convert_vec_kernel<ST, DType::BF16><<<g, 256, 0, s>>>(dst, src, n); break;
    case DType::F16: convert_vec_kernel<ST, DType::F16><<<g, 256, 0, s>>>(dst, src, n); break;
    case DType::FP8E4M3: convert_vec_kernel<ST, DType::FP8E4M3><<<g, 256, 0, s>>>(dst, src, n); break;
    case DType::I32: convert_vec_kernel<ST, DType::I32><<<g, 256, 0, s>>>(dst, src, n); break;
    case DType::I64: convert_vec_kernel<ST, DType::I64><<<g, 256, 0, s>>>(dst, src, n); break;
    default: convert_vec_kernel<ST, DType::U8><<<g, 256, 0, s>>>(dst, src, n); break;
  }
}

static void launch_convert(void* dst, DType dt, const void* src, DType st, int64_t n, cudaStream_t s) {
  switch (st) {
    case DType::F32: launch_convert_from<DType::F32>(dst, dt, src, n, s); break;
    case DType::BF16: launch_convert_from<DType::BF16>(dst, dt, src, n, s); break;
    case DType::F16: launch_convert_from<DType::F16>(dst, dt, src, n, s); break;
    case DType::FP8E4M3: launch_convert_from<DType::FP8E4M3>(dst, dt, src, n, s); break;
    case DType::I32: launch_convert_from<DType::I32>(dst, dt, src, n, s); break;
    case DType::I64: launch_convert_from<DType::I64>(dst, dt, src, n, s); break;
    default: launch_convert_from<DType::U8>(dst, dt, src, n, s); break;
  }
}

void copy_bytes(void* dst, const void* src, size_t n, Stream stream) {
  if (n == 0) return;
  auto s = to_cuda(stream);
  if (n % 16 == 0 && reinterpret_cast<uintptr_t>(dst) % 16 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0) {
    int64_t nvec = static_cast<int64_t>(n / 16);
    copy_bytes_kernel<<<grid_for(nvec, 512, 132 * 8), 512, 0, s>>>(static_cast<int4*>(dst), static_cast<const int4*>(src), nvec);
  } else {
    cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, s);
  }
}

void copy_strided(const StridedView& dst, const StridedView& src, Stream stream) {
  int64_t n = dst.numel();
  if (n == 0) return;
  if (dst.is_contiguous() && src.is_contiguous()) {
    bool aligned = reinterpret_cast<uintptr_t>(dst.data) % (8 * dtype_size(dst.dtype)) == 0 &&
                   reinterpret_cast<uintptr_t>(src.data) % (8 * dtype_size(src.dtype)) == 0;
    if (dst.dtype == src.dtype) {
      copy_bytes(dst.data, src.data, n * dtype_size(dst.dtype), stream);
    } else if (aligned) {
      launch_convert(dst.data, dst.dtype, src.data, src.dtype, n, to_cuda(stream));
    } else {
      copy_strided_kernel<<<grid_for(n, 256), 256, 0, to_cuda(stream)>>>(dst, src, n);
    }
    return;
  }
  if (rows16_ok(dst, src)) {
    const int es = static_cast<int>(dtype_size(dst.dtype));
    const int64_t vec_per_row = dst.shape[dst.ndim - 1] * es / 16, nvec = n * es / 16;
    copy_rows16_kernel<<<grid_for(nvec, 256), 256, 0, to_cuda(stream)>>>(dst, src, nvec, vec_per_row, es);
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
