// CPU reference of the rotary embedding (DeepSeek's interleaved pairs, YaRN frequencies).
#pragma once
#include <cstdint>

#include "../core/dtype.h"

namespace dsk::cpu {

// x and out: [T, H, D] contiguous, dtype `dt`. Row (t, h) keeps its first D - rope_dim values and rotates the
// last rope_dim as pairs (2i, 2i+1) by the angle positions[t] * inv_freq[i] (in double), with cos and sin
// scaled by `mscale`; the pair itself is rotated in f32 (rope_rotate_pair).
void rope(const void* x, DType dt, int64_t T, int64_t H, int64_t D, int rope_dim, const int32_t* positions,
          const double* inv_freq, double mscale, void* out);

}  // namespace dsk::cpu
