// Counter-based random numbers that give the same bits on every device.
//
// Element i of a tensor drawn with `seed` is a pure function of (seed, i): Philox4x32-10 keyed by the
// seed, counter i. Normals use Box-Muller with our own log/cos written in plain f32 operations that the
// compiler may not fuse (__fmul_rn/__fadd_rn on the device, -ffp-contract=off on the host), so the CPU
// and the GPU round identically and the same seed gives the same tensor on both.
#pragma once
#include <cstdint>
#include "../core/dtype.h"

#include "portable_math.h"

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
