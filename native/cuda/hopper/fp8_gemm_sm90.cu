// Placeholder until the Hopper kernels land: no configurations.
#include "fp8_gemm_sm90.h"

namespace dsk::cuda::sm90 {
bool supports(const Fp8GemmProblem&) { return false; }
const std::vector<std::string>& config_names() { static const std::vector<std::string> n; return n; }
int config_index(const std::string&) { return -1; }
int pick_config(const Fp8GemmProblem&, int) { return -1; }
void run(const Fp8GemmProblem&, int, int, int, cudaStream_t) {}
}  // namespace dsk::cuda::sm90
