// A compute-bound kernel for the overlap benchmark: the work a GEMM would give the SMs that the
// exchange kernels leave free, without depending on the GEMM ops.
#include "../../ptx/timer.h"
#include "common.cuh"
#include "ep.h"

namespace dsk::cuda {

namespace {
__global__ void ep_busy_kernel(int iters, float* out) {
  float a = threadIdx.x * 1e-3f, b = 1.0001f, c0 = 0.5f, c1 = 0.25f, c2 = 0.125f, c3 = 0.0625f;
  for (int i = 0; i < iters; i++) {
#pragma unroll
    for (int j = 0; j < 64; j++) {
      c0 = fmaf(c0, b, a);
      c1 = fmaf(c1, b, a);
      c2 = fmaf(c2, b, a);
      c3 = fmaf(c3, b, a);
    }
  }
  float v = c0 + c1 + c2 + c3;
  if (threadIdx.x == 0) out[blockIdx.x] = v;
}
// Holds its stream for `ns` nanoseconds (one thread), so that the host can queue work behind it.
__global__ void ep_gate_kernel(uint64_t ns) {
  const uint64_t t0 = ptx::globaltimer_ns();
  while (ptx::globaltimer_ns() - t0 < ns) {
  }
}
}  // namespace

void ep_gate(uint64_t ns, Stream s) { ep_gate_kernel<<<1, 1, 0, to_cuda(s)>>>(ns); }

void ep_busy(int blocks, int iters, float* out, Stream s) {
  constexpr int kSmem = 160 * 1024;  // more than half an SM's shared memory: one block per SM
  static const bool configured =
      cudaFuncSetAttribute(ep_busy_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem) == cudaSuccess;
  if (blocks > 0) ep_busy_kernel<<<blocks, 1024, configured ? kSmem : 0, to_cuda(s)>>>(iters, out);
}

}  // namespace dsk::cuda
