// Softmax arithmetic shared by the CPU reference and the CUDA kernels (same bits on every device):
//   m   = max of the row (NaN ignored; -inf when nothing else)
//   e_i = portable_exp(x_i - m)
//   s   = sum of e_i in the canonical row order (row_sum.h)
//   softmax_i    = e_i / s
//   logSoftmax_i = (x_i - m) - portable_log(s)
// A row holding NaN or +inf, or only -inf, gives NaN, as in PyTorch.
#pragma once
#include "portable_math.h"

namespace dsk {

constexpr float kNegInf = -__builtin_huge_valf();

DSK_HD float max_ignore_nan(float m, float x) { return x > m ? x : m; }

DSK_HD float log_sum(float s) { return s != s ? s : portable_log(s); }

DSK_HD float softmax_out(float x, float m, float s, float log_s, bool log) {
  float d = DSK_FSUB(x, m);
  return log ? DSK_FSUB(d, log_s) : DSK_FDIV(portable_exp(d), s);
}

}  // namespace dsk
