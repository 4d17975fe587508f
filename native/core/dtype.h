// dtypes and their conversions, shared by the CPU reference and the CUDA kernels.
//
// Every conversion is written once here with integer bit manipulation, so the CPU and the GPU give the
// same bits for the same input (the tests check it exhaustively for the narrow types). Rounding is to
// nearest even; NaN stays NaN (canonical 0x7FFF for bf16/f16, 0x7F for fp8, as the PTX cvt instructions
// produce); fp8e4m3 (OCP E4M3FN: no infinities, max 448) saturates like __nv_fp8_e4m3 (__NV_SATFINITE).
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define DSK_HD __host__ __device__ __forceinline__
#else
#define DSK_HD inline
#endif

namespace dsk {

enum class DType : int32_t { F32 = 0, BF16 = 1, F16 = 2, FP8E4M3 = 3, I32 = 4, I64 = 5, U8 = 6 };
constexpr int kNumDTypes = 7;

DSK_HD int dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::BF16: case DType::F16: return 2;
    case DType::I64: return 8;
    default: return 1;
  }
}
DSK_HD bool dtype_is_float(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16 || t == DType::FP8E4M3; }
inline const char* dtype_name(DType t) {
  static const char* names[] = {"f32", "bf16", "f16", "fp8e4m3", "i32", "i64", "u8"};
  return names[static_cast<int>(t)];
}

DSK_HD uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
DSK_HD float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// ---- bf16 ----
DSK_HD uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
DSK_HD float bf16_to_f32(uint16_t h) { return bits_f32(static_cast<uint32_t>(h) << 16); }

// Round a mantissa m (with implicit bit) right by `shift` bits to nearest even.
DSK_HD uint32_t round_shift_rne(uint32_t m, int shift) {
  uint32_t k = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
  return k + ((rem > half || (rem == half && (k & 1u))) ? 1u : 0u);
}

// ---- f16 ----
DSK_HD uint16_t f32_to_f16(float f) {
  uint32_t x = f32_bits(f), sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return 0x7fff;
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (ax >= 0x38800000u) {                                              // normal half (>= 2^-14)
    uint32_t r = ax + 0x0fffu + ((ax >> 13) & 1u);
    return static_cast<uint16_t>(sign | ((r - 0x38000000u) >> 13));
  }
  uint32_t e = ax >> 23;
  if (e < 102) return static_cast<uint16_t>(sign);                     // below 2^-25: zero
  uint32_t m = (ax & 0x7fffffu) | 0x800000u;
  return static_cast<uint16_t>(sign | round_shift_rne(m, 126 - static_cast<int>(e)));
}
DSK_HD float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1f) return bits_f32(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    if (m == 0) return bits_f32(sign);
    int ee = 1;
    while (!(m & 0x400u)) { m <<= 1; --ee; }
    return bits_f32(sign | (static_cast<uint32_t>(ee + 112) << 23) | ((m & 0x3ffu) << 13));
  }
  return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

// ---- fp8 e4m3 (E4M3FN) ----
DSK_HD uint8_t f32_to_fp8e4m3(float f) {
  uint32_t x = f32_bits(f), sign = (x >> 24) & 0x80u, ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return 0x7f;
  if (ax >= 0x43e00000u) return static_cast<uint8_t>(sign | 0x7eu);     // >= 448 (and inf): saturate
  if (ax >= 0x3c800000u) {                                              // normal (>= 2^-6)
    uint32_t r = ax + 0x7ffffu + ((ax >> 20) & 1u);
    return static_cast<uint8_t>(sign | ((r - (120u << 23)) >> 20));
  }
  uint32_t e = ax >> 23;
  if (e < 117) return static_cast<uint8_t>(sign);                      // below 2^-10: zero
  uint32_t m = (ax & 0x7fffffu) | 0x800000u;
  return static_cast<uint8_t>(sign | round_shift_rne(m, 141 - static_cast<int>(e)));
}
DSK_HD float fp8e4m3_to_f32(uint8_t v) {
  uint32_t sign = static_cast<uint32_t>(v & 0x80u) << 24, e = (v >> 3) & 0xfu, m = v & 7u;
  if (e == 0xf && m == 7) return bits_f32(sign | 0x7fc00000u);
  if (e == 0) {
    if (m == 0) return bits_f32(sign);
    int ee = 1;
    while (!(m & 8u)) { m <<= 1; --ee; }
    return bits_f32(sign | (static_cast<uint32_t>(ee + 120) << 23) | ((m & 7u) << 20));
  }
  return bits_f32(sign | ((e + 120u) << 23) | (m << 20));
}

// ---- integers: float -> int truncates toward zero, saturates, NaN -> 0 ----
DSK_HD int32_t f32_to_i32(float f) {
  if (f != f) return 0;
  if (f >= 2147483648.0f) return 2147483647;
  if (f <= -2147483648.0f) return static_cast<int32_t>(-2147483647 - 1);
  return static_cast<int32_t>(f);
}
DSK_HD int64_t f32_to_i64(float f) {
  if (f != f) return 0;
  if (f >= 9223372036854775808.0f) return 9223372036854775807LL;
  if (f <= -9223372036854775808.0f) return static_cast<int64_t>(-9223372036854775807LL - 1);
  return static_cast<int64_t>(f);
}

// Load element i of a buffer of dtype t as f32 (integers convert exactly where they fit, else RNE).
DSK_HD float load_f32(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::FP8E4M3: return fp8e4m3_to_f32(static_cast<const uint8_t*>(p)[i]);
    case DType::I32: return static_cast<float>(static_cast<const int32_t*>(p)[i]);
    case DType::I64: return static_cast<float>(static_cast<const int64_t*>(p)[i]);
    default: return static_cast<float>(static_cast<const uint8_t*>(p)[i]);
  }
}
DSK_HD void store_f32(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::F32: static_cast<float*>(p)[i] = v; break;
    case DType::BF16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(v); break;
    case DType::F16: static_cast<uint16_t*>(p)[i] = f32_to_f16(v); break;
    case DType::FP8E4M3: static_cast<uint8_t*>(p)[i] = f32_to_fp8e4m3(v); break;
    case DType::I32: static_cast<int32_t*>(p)[i] = f32_to_i32(v); break;
    case DType::I64: static_cast<int64_t*>(p)[i] = f32_to_i64(v); break;
    default: {
      int32_t k = f32_to_i32(v);
      static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(k < 0 ? 0 : (k > 255 ? 255 : k));
    }
  }
}

// Element copy between any two dtypes. Integer <-> integer copies are exact (wrapping to the narrower
// type's range by saturation); everything else goes through f32, so each float conversion rounds once.
DSK_HD void convert_element(void* dst, DType dt, int64_t di, const void* src, DType st, int64_t si) {
  if (dt == st) {
    switch (dtype_size(dt)) {
      case 8: static_cast<uint64_t*>(dst)[di] = static_cast<const uint64_t*>(src)[si]; return;
      case 4: static_cast<uint32_t*>(dst)[di] = static_cast<const uint32_t*>(src)[si]; return;
      case 2: static_cast<uint16_t*>(dst)[di] = static_cast<const uint16_t*>(src)[si]; return;
      default: static_cast<uint8_t*>(dst)[di] = static_cast<const uint8_t*>(src)[si]; return;
    }
  }
  if (!dtype_is_float(dt) && !dtype_is_float(st)) {
    int64_t v = st == DType::I32 ? static_cast<const int32_t*>(src)[si]
              : st == DType::I64 ? static_cast<const int64_t*>(src)[si]
                                 : static_cast<int64_t>(static_cast<const uint8_t*>(src)[si]);
    if (dt == DType::I64) static_cast<int64_t*>(dst)[di] = v;
    else if (dt == DType::I32) static_cast<int32_t*>(dst)[di] = static_cast<int32_t>(v < INT32_MIN ? INT32_MIN : (v > INT32_MAX ? INT32_MAX : v));
    else static_cast<uint8_t*>(dst)[di] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
    return;
  }
  store_f32(dst, dt, di, load_f32(src, st, si));
}

}  // namespace dsk
