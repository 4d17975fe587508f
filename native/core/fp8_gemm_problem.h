// The FP8 block-scaled GEMM problem, as the CPU reference and the CUDA kernels receive it.
//
// D[m, n] = sum over 128-wide K blocks kb of (sum_{k in kb} A[m,k] * B[n,k]) * sa[m,kb] * sb[n/128,kb],
// the partial product of each block taken in fp32, scaled, and summed in fp32; D is stored as bf16.
// Layouts (all row-major, contiguous):
//   a  fp8e4m3 [rows, K]        sa f32 [rows, K/128]      rows = M, or G*Mmax for the masked kind
//   b  fp8e4m3 [G, N, K]        sb f32 [G, ceil(N/128), K/128]   (G = 1 for the normal kind)
//   d  bf16    [rows, N]
// Contiguous: row i uses expert m_indices[i]; -1 rows are skipped (left untouched). Masked: group g owns
// rows [g*Mmax, g*Mmax + masked_m[g]); the rest are left untouched. Bad values read from device memory
// (an expert outside [-1, G), a masked_m outside [0, Mmax]) are reported to diag and skipped.
#pragma once
#include <cstdint>

#include "diag.h"

namespace dsk {

enum class Fp8GemmKind : int32_t { Normal = 0, Contiguous = 1, Masked = 2 };

struct Fp8GemmProblem {
  Fp8GemmKind kind = Fp8GemmKind::Normal;
  const uint8_t* a = nullptr;
  const float* sa = nullptr;
  const uint8_t* b = nullptr;
  const float* sb = nullptr;
  uint16_t* d = nullptr;
  const int32_t* m_indices = nullptr;  // contiguous only
  const int32_t* masked_m = nullptr;   // masked only
  int64_t m = 0;                       // rows of a (normal, contiguous) or Mmax (masked)
  int64_t n = 0, k = 0;
  int64_t groups = 1;
  DiagRecord* diag = nullptr;

  DSK_HD int64_t rows() const { return kind == Fp8GemmKind::Masked ? groups * m : m; }
  DSK_HD int64_t k_blocks() const { return k / 128; }
  DSK_HD int64_t n_blocks() const { return (n + 127) / 128; }
};

}  // namespace dsk
