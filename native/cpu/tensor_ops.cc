#include "tensor_ops.h"

#include <cstring>

#include "../core/runtime.h"

namespace dsk::cpu {

void copy_strided(const StridedView& dst, const StridedView& src) {
  int64_t n = dst.numel();
  if (dst.is_contiguous() && src.is_contiguous()) {
    if (dst.dtype == src.dtype) {
      size_t es = dtype_size(dst.dtype);
      parallel_for(n, 1 << 18, [&](int64_t b, int64_t e) {
        std::memcpy(static_cast<char*>(dst.data) + b * es, static_cast<const char*>(src.data) + b * es, (e - b) * es);
      });
    } else {
      parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) convert_element(dst.data, dst.dtype, i, src.data, src.dtype, i);
      });
    }
    return;
  }
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) convert_element(dst.data, dst.dtype, dst.offset_of(i), src.data, src.dtype, src.offset_of(i));
  });
}

void fill(void* dst, DType dtype, int64_t n, double value) {
  // Build one element with the shared conversion, then replicate its bytes.
  alignas(8) unsigned char one[8];
  if (dtype == DType::I64) *reinterpret_cast<int64_t*>(one) = static_cast<int64_t>(value);
  else if (dtype == DType::I32) *reinterpret_cast<int32_t*>(one) = static_cast<int32_t>(value);
  else store_f32(one, dtype, 0, static_cast<float>(value));
  int sz = dtype_size(dtype);
  auto* out = static_cast<unsigned char*>(dst);
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) for (int k = 0; k < sz; ++k) out[i * sz + k] = one[k];
  });
}

void random_fill(void* dst, DType dtype, int64_t n, RandomKind kind, uint64_t seed, double a, double b) {
  parallel_for(n, 1 << 12, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      if (kind == RandomKind::Int) {
        int64_t v = random_element_int(seed, static_cast<uint64_t>(i), static_cast<int64_t>(a), static_cast<int64_t>(b));
        if (dtype == DType::I64) static_cast<int64_t*>(dst)[i] = v;
        else if (dtype == DType::I32) static_cast<int32_t*>(dst)[i] = static_cast<int32_t>(v);
        else store_f32(dst, dtype, i, static_cast<float>(v));
      } else {
        store_f32(dst, dtype, i, random_element_f32(kind, seed, static_cast<uint64_t>(i), static_cast<float>(a), static_cast<float>(b)));
      }
    }
  });
}

}  // namespace dsk::cpu
