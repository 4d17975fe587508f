// CPU reference of the FP8 block-scaled GEMMs (fp8Gemm, fp8GroupedGemmContiguous, fp8GroupedGemmMasked).
// Contract in native/core/fp8_gemm_problem.h. Cache-blocked, parallel over (row block, column chunk).
#pragma once
#include "../core/fp8_gemm_problem.h"

namespace dsk::cpu {

void fp8_gemm(const Fp8GemmProblem& p);

}  // namespace dsk::cpu
