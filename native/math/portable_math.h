// Elementary functions written in plain f32 operations that the compiler may not fuse or reorder
// (__fmul_rn/__fadd_rn on the device; the host builds with -ffp-contract=off), so the CPU reference and
// the CUDA kernels get the same bits. Use them wherever CPU/GPU results must agree exactly (random
// numbers, routing, sampling); they are accurate to a couple of ulp, not faster than the intrinsics.
#pragma once
#include <cstdint>

#include "../core/dtype.h"

#if defined(__CUDA_ARCH__)
#define DSK_FMUL(a, b) __fmul_rn((a), (b))
#define DSK_FADD(a, b) __fadd_rn((a), (b))
#define DSK_FSUB(a, b) __fsub_rn((a), (b))
#define DSK_FDIV(a, b) __fdiv_rn((a), (b))
#define DSK_FSQRT(a) __fsqrt_rn(a)
#else
#include <cmath>
#define DSK_FMUL(a, b) ((a) * (b))
#define DSK_FADD(a, b) ((a) + (b))
#define DSK_FSUB(a, b) ((a) - (b))
#define DSK_FDIV(a, b) ((a) / (b))
#define DSK_FSQRT(a) std::sqrt(a)
#endif

namespace dsk {

// ln(x) for finite x > 0 (normal range), ~1 ulp: x = 2^e * m, m in [sqrt(1/2), sqrt(2)), atanh series in s = f/(2+f).
DSK_HD float portable_log(float x) {
  uint32_t u = f32_bits(x);
  int e = static_cast<int>((u >> 23) & 0xff) - 127;
  float m = bits_f32((u & 0x7fffffu) | 0x3f800000u);
  if (m > 1.41421356f) { m = DSK_FMUL(m, 0.5f); e += 1; }
  float f = DSK_FSUB(m, 1.0f);
  float s = DSK_FDIV(f, DSK_FADD(2.0f, f));
  float s2 = DSK_FMUL(s, s);
  float p = DSK_FADD(1.0f / 9.0f, DSK_FMUL(s2, 1.0f / 11.0f));
  p = DSK_FADD(1.0f / 7.0f, DSK_FMUL(s2, p));
  p = DSK_FADD(1.0f / 5.0f, DSK_FMUL(s2, p));
  p = DSK_FADD(1.0f / 3.0f, DSK_FMUL(s2, p));
  p = DSK_FADD(1.0f, DSK_FMUL(s2, p));
  float logm = DSK_FMUL(DSK_FMUL(2.0f, s), p);
  return DSK_FADD(DSK_FMUL(static_cast<float>(e), 0.693147180559945f), logm);
}

// cos(2*pi*t) for t in [0, 1): quadrant from 4t (exact), then Taylor polynomials on [0, pi/2).
DSK_HD float portable_cos2pi(float t) {
  float t4 = DSK_FMUL(t, 4.0f);
  int q = static_cast<int>(t4);
  float a = DSK_FMUL(DSK_FSUB(t4, static_cast<float>(q)), 1.57079632679f);
  float a2 = DSK_FMUL(a, a);
  float c = DSK_FADD(1.0f / 40320.0f, DSK_FMUL(a2, -1.0f / 3628800.0f));
  c = DSK_FADD(-1.0f / 720.0f, DSK_FMUL(a2, c));
  c = DSK_FADD(1.0f / 24.0f, DSK_FMUL(a2, c));
  c = DSK_FADD(-0.5f, DSK_FMUL(a2, c));
  c = DSK_FADD(1.0f, DSK_FMUL(a2, c));
  float s = DSK_FADD(1.0f / 362880.0f, DSK_FMUL(a2, -1.0f / 39916800.0f));
  s = DSK_FADD(-1.0f / 5040.0f, DSK_FMUL(a2, s));
  s = DSK_FADD(1.0f / 120.0f, DSK_FMUL(a2, s));
  s = DSK_FADD(-1.0f / 6.0f, DSK_FMUL(a2, s));
  s = DSK_FMUL(a, DSK_FADD(1.0f, DSK_FMUL(a2, s)));
  switch (q & 3) {
    case 0: return c;
    case 1: return -s;
    case 2: return -c;
    default: return s;
  }
}

// e^x, ~2 ulp; 0 below -103.9, +inf above 88.72; NaN stays NaN.
DSK_HD float portable_exp(float x) {
  if (x != x) return x;
  if (x > 88.7228f) return bits_f32(0x7f800000u);
  if (x < -103.9721f) return 0.0f;
  // x = n ln2 + r with |r| <= ln2/2; ln2 split in two so n*ln2_hi is exact.
  float t = DSK_FMUL(x, 1.44269504f);
  int n = static_cast<int>(t < 0 ? t - 0.5f : t + 0.5f);
  float fn = static_cast<float>(n);
  float r = DSK_FSUB(DSK_FSUB(x, DSK_FMUL(fn, 0.693145752f)), DSK_FMUL(fn, 1.42860677e-6f));
  float p = DSK_FADD(1.0f / 5040.0f, DSK_FMUL(r, 1.0f / 40320.0f));
  p = DSK_FADD(1.0f / 720.0f, DSK_FMUL(r, p));
  p = DSK_FADD(1.0f / 120.0f, DSK_FMUL(r, p));
  p = DSK_FADD(1.0f / 24.0f, DSK_FMUL(r, p));
  p = DSK_FADD(1.0f / 6.0f, DSK_FMUL(r, p));
  p = DSK_FADD(0.5f, DSK_FMUL(r, p));
  p = DSK_FADD(1.0f, DSK_FMUL(r, p));
  p = DSK_FADD(1.0f, DSK_FMUL(r, p));
  // Scale by 2^n in two steps so results in the subnormal range round once, correctly.
  if (n < -125) {
    p = DSK_FMUL(p, bits_f32(static_cast<uint32_t>(n + 125 + 127) << 23));
    return DSK_FMUL(p, bits_f32(2u << 23));  // 2^-125
  }
  if (n > 127) return DSK_FMUL(DSK_FMUL(p, bits_f32(254u << 23)), bits_f32(static_cast<uint32_t>(n - 127 + 127) << 23));
  return DSK_FMUL(p, bits_f32(static_cast<uint32_t>(n + 127) << 23));
}

// 1 / (1 + e^-x).
DSK_HD float portable_sigmoid(float x) { return DSK_FDIV(1.0f, DSK_FADD(1.0f, portable_exp(-x))); }

}  // namespace dsk
