// CPU reference of the dense NT GEMM: out[M, N] = a[M, K] · b[N, K]^T, bf16 or f32 inputs (a and b of one
// dtype), f32 accumulation, f32 or bf16 output. a and b are row-major with row strides lda, ldb (elements).
#pragma once
#include <cstdint>

#include "../core/dtype.h"

namespace dsk::cpu {

void gemm_nt(const void* a, int64_t lda, const void* b, int64_t ldb, DType in_dt, int64_t M, int64_t N, int64_t K, void* out,
             DType out_dt);

}  // namespace dsk::cpu
