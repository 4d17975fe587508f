// Thread-block clusters (sm_90): rank in the cluster, cluster-wide barrier.
#pragma once
#include <cstdint>

namespace dsk::ptx {

// mov.u32 r, %cluster_ctarank;
__device__ __forceinline__ uint32_t cluster_ctarank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}

// barrier.cluster.arrive.release.aligned; barrier.cluster.wait.acquire.aligned;
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}

}  // namespace dsk::ptx
