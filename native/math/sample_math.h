// Sampling, defined so that the CPU reference and the CUDA kernel pick the same token for the same seed.
// For a row of V logits x with temperature T > 0 (T == 0 is argmax, handled by the caller):
//  1. z_i = x_i / T (f32 division; NaN -> -inf). Candidates are ordered by z descending, ties to the lower
//     index (order_key.h). If the largest z is not finite (+inf, or every z is -inf) the result is the
//     first index holding it (argmax of z).
//  2. Keep the first topK of that order (all when topK == 0 or topK >= V).
//  3. e_i = portable_exp(z_i - zmax); S = the sum of e over the kept candidates in the canonical row order
//     of row_sum.h (index order; other elements add nothing).
//  4. Cumulative mass C(n) of the first n candidates in sorted order: they are cut into chunks of
//     kSampleChunk (32); R_c = the totals of the chunks before c, added left to right; inside chunk c,
//     P_j = e of its elements 0..j added left to right; C = R_c + P_j. C never decreases.
//  5. Nucleus: if topP < 1, the smallest n with C(n) >= topP * S (f32 product), and total = C(n);
//     if topP >= 1, or no n reaches it, every kept candidate, and total = S.
//  6. u = uniform01(Philox4x32-10(counter = row, key = seed).v[0]), a multiple of 2^-24 in [0, 1);
//     target = u * total (f32). The token is the first candidate of the nucleus with C(n) > target, or
//     the nucleus' last candidate when rounding leaves none.
#pragma once
#include <cstdint>

#include "order_key.h"
#include "portable_math.h"
#include "random.h"

namespace dsk {

constexpr int kSampleChunk = 32;

// z = x / T with NaN mapped to -inf.
DSK_HD float sample_logit(float x, float temperature) {
  float z = DSK_FDIV(x, temperature);
  return z != z ? -__builtin_huge_valf() : z;
}

DSK_HD float sample_uniform(uint64_t row, uint64_t seed) { return uniform01(philox4x32_10(row, seed).v[0]); }

}  // namespace dsk
