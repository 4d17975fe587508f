// CUDA dense NT GEMM; contract as in native/cpu/dense_gemm.h.
#pragma once
#include <cstdint>

#include "../core/runtime.h"

namespace dsk::cuda {

void gemm_nt(const void* a, int64_t lda, const void* b, int64_t ldb, DType in_dt, int64_t M, int64_t N, int64_t K, void* out,
             DType out_dt, Stream stream);

}  // namespace dsk::cuda
