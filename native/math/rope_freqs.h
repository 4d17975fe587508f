// Rotary frequencies with DeepSeek's YaRN correction, computed once on the host in double precision and
// handed to both the CPU reference and the CUDA kernel, so both rotate by the same angles.
//
// Formulas as DeepSeek-V3 (inference/model.py precompute_freqs_cis) and the Hugging Face
// DeepseekV3YarnRotaryEmbedding define them:
//   base inv_freq[i] = theta^(-2i/d), i < d/2
//   correction dim for r rotations: cd(r) = d * ln(L0 / (2*pi*r)) / (2 * ln theta), L0 = original context
//   low = max(floor(cd(betaFast)), 0), high = min(ceil(cd(betaSlow)), d - 1)  (high += 0.001 when equal)
//   ramp[i] = clamp((i - low) / (high - low), 0, 1)
//   inv_freq[i] = base[i] / factor * ramp[i] + base[i] * (1 - ramp[i])
//   cos/sin are multiplied by mscale(factor, mscale) / mscale(factor, mscaleAllDim), where
//   mscale(s, m) = s <= 1 ? 1 : 0.1 * m * ln(s) + 1.
#pragma once
#include <cmath>

#include "portable_math.h"

namespace dsk {

constexpr int kMaxRopeDim = 256;

struct YarnParams {
  double factor = 0;  // 0: no YaRN (plain rotary)
  double original_max_position = 4096;
  double beta_fast = 32, beta_slow = 1;
  double mscale = 1, mscale_all_dim = 0;
};

inline double yarn_get_mscale(double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; }

// Fills inv_freq[0 .. rope_dim/2) and returns the factor cos/sin are multiplied by.
inline double rope_inv_freqs(double theta, int rope_dim, const YarnParams& yarn, double* inv_freq) {
  const int half = rope_dim / 2;
  const double pi = 3.14159265358979323846;
  for (int i = 0; i < half; ++i) inv_freq[i] = 1.0 / std::pow(theta, (2.0 * i) / rope_dim);
  if (yarn.factor <= 0) return 1.0;
  auto correction_dim = [&](double rotations) {
    return rope_dim * std::log(yarn.original_max_position / (rotations * 2 * pi)) / (2 * std::log(theta));
  };
  double low = std::floor(correction_dim(yarn.beta_fast)), high = std::ceil(correction_dim(yarn.beta_slow));
  if (low < 0) low = 0;
  if (high > rope_dim - 1) high = rope_dim - 1;
  if (low == high) high += 0.001;
  for (int i = 0; i < half; ++i) {
    double ramp = (i - low) / (high - low);
    ramp = ramp < 0 ? 0 : (ramp > 1 ? 1 : ramp);
    inv_freq[i] = inv_freq[i] / yarn.factor * ramp + inv_freq[i] * (1 - ramp);
  }
  return yarn_get_mscale(yarn.factor, yarn.mscale) / yarn_get_mscale(yarn.factor, yarn.mscale_all_dim);
}

// One rotated pair, (x0 + i x1) * (c + i s), in f32 without contraction so CPU and GPU round alike.
DSK_HD void rope_rotate_pair(float x0, float x1, float c, float s, float& y0, float& y1) {
  y0 = DSK_FSUB(DSK_FMUL(x0, c), DSK_FMUL(x1, s));
  y1 = DSK_FADD(DSK_FMUL(x0, s), DSK_FMUL(x1, c));
}

}  // namespace dsk
