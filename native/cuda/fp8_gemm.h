// CUDA FP8 block-scaled GEMMs (contract in native/core/fp8_gemm_problem.h), enqueued on `stream`.
//
// fp8_gemm() dispatches: on sm_90 devices, when the shape and alignment suit TMA, to the Hopper kernels
// (native/cuda/hopper/, warp-specialized TMA + WGMMA); everywhere else to the portable tiled kernel here.
#pragma once
#include <string>
#include <vector>

#include "../core/fp8_gemm_problem.h"
#include "../core/runtime.h"

namespace dsk::cuda {

struct GpuTraits {
  int device = 0;
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
};

void fp8_gemm(const Fp8GemmProblem& p, const GpuTraits& gpu, Stream stream);

// The portable kernel alone (any sm_80+ GPU).
void fp8_gemm_portable(const Fp8GemmProblem& p, Stream stream);

// Test hooks: the names of the kernel configurations fp8_gemm can pick ("portable" and the Hopper ones),
// and forcing one of them ("" = the heuristic). A forced Hopper configuration that cannot run the problem
// (wrong device, alignment) falls back to the portable kernel. DSK_FP8_GEMM_CONFIG sets the initial value.
std::vector<std::string> fp8_gemm_configs();
void fp8_gemm_force_config(const std::string& name);
// The configuration fp8_gemm would run for this problem now ("portable" or a Hopper config name).
std::string fp8_gemm_choice(const Fp8GemmProblem& p, const GpuTraits& gpu);

}  // namespace dsk::cuda
