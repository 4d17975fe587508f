// Hopper (sm_90a) FP8 block-scaled GEMM kernels: host-side interface used by native/cuda/fp8_gemm.cu.
#pragma once
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "../../core/fp8_gemm_problem.h"

namespace dsk::cuda::sm90 {

// Whether the Hopper kernels can run this problem (alignment for TMA, sizes).
bool supports(const Fp8GemmProblem& p);
// Names of the curated configurations, e.g. "m128n160.mcA" (index = position).
const std::vector<std::string>& config_names();
int config_index(const std::string& name);  // -1 when unknown
// The configuration the heuristic picks for this problem on a GPU with `sm_count` SMs.
int pick_config(const Fp8GemmProblem& p, int sm_count);
// The configuration actually run for `cfg` on this problem (grouped layouts turn a .mcB pair into .mcA).
int resolve_config(const Fp8GemmProblem& p, int cfg);
// Enqueues configuration `cfg` on `stream` (device `device` is current).
void run(const Fp8GemmProblem& p, int cfg, int device, int sm_count, cudaStream_t stream);

}  // namespace dsk::cuda::sm90
