// Counter-based random numbers that give the same bits on every device.
//
// Element i of a tensor drawn with `seed` is a pure function of (seed, i): Philox4x32-10 keyed by the
// seed, counter i. Normals use Box-Muller with our own log/cos written in plain f32 operations that the
// compiler may not fuse (__fmul_rn/__fadd_rn on the device, -ffp-contract=off on the host), so the CPU
// and the GPU round identically and the same seed gives the same tensor on both.
#pragma once
#include <cstdint>
#include "dtype.h"

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

struct Philox4 { uint32_t v[4]; };

DSK_HD uint32_t mulhi32(uint32_t a, uint32_t b) {
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
}

DSK_HD Philox4 philox4x32_10(uint64_t counter, uint64_t seed) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t h0 = mulhi32(0xD2511F53u, c0), l0 = 0xD2511F53u * c0;
    uint32_t h1 = mulhi32(0xCD9E8D57u, c2), l1 = 0xCD9E8D57u * c2;
    uint32_t n0 = h1 ^ c1 ^ k0, n2 = h0 ^ c3 ^ k1;
    c0 = n0; c1 = l1; c2 = n2; c3 = l0;
    k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Uniform in [0, 1), a multiple of 2^-24.
DSK_HD float uniform01(uint32_t w) { return static_cast<float>(w >> 8) * (1.0f / 16777216.0f); }

// ln(x) for x in (0, 1], ~1 ulp: x = 2^e * m, m in [sqrt(1/2), sqrt(2)), atanh series in s = f/(2+f).
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

enum class RandomKind : int32_t { Uniform = 0, Normal = 1, Int = 2 };

// Element i: uniform in [a, b), normal with mean a and std b, or integer in [a, b).
DSK_HD float random_element_f32(RandomKind kind, uint64_t seed, uint64_t i, float a, float b) {
  Philox4 r = philox4x32_10(i, seed);
  if (kind == RandomKind::Uniform) return DSK_FADD(a, DSK_FMUL(DSK_FSUB(b, a), uniform01(r.v[0])));
  float u1 = DSK_FMUL(static_cast<float>((r.v[0] >> 8) + 1u), 1.0f / 16777216.0f);  // (0, 1]
  float radius = DSK_FSQRT(DSK_FMUL(-2.0f, portable_log(u1)));
  float z = DSK_FMUL(radius, portable_cos2pi(uniform01(r.v[1])));
  return DSK_FADD(a, DSK_FMUL(b, z));
}
DSK_HD int64_t random_element_int(uint64_t seed, uint64_t i, int64_t lo, int64_t hi) {
  Philox4 r = philox4x32_10(i, seed);
  uint64_t range = static_cast<uint64_t>(hi - lo);
  uint64_t w = (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
  // Multiply-high maps 64 random bits onto [0, range) with bias < range / 2^64.
#if defined(__CUDA_ARCH__)
  uint64_t hiPart = __umul64hi(w, range);
#else
  uint64_t hiPart = static_cast<uint64_t>((static_cast<unsigned __int128>(w) * range) >> 64);
#endif
  return lo + static_cast<int64_t>(hiPart);
}

}  // namespace dsk
