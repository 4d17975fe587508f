// SwiGLU in f32, shared by the CPU reference and the CUDA kernels: silu(g) * u = (g * sigmoid(g)) * u, with
// portable_sigmoid and unfused multiplies so every device gives the same bits.
#pragma once
#include "portable_math.h"

namespace dsk {

DSK_HD float swiglu_f32(float g, float u) { return DSK_FMUL(DSK_FMUL(g, portable_sigmoid(g)), u); }

}  // namespace dsk
