// Thread-block clusters (sm_90): rank in the cluster, cluster-wide barrier, distributed shared memory.
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

// mapa.shared::cluster.u32 r, addr, cta;  -> the address of the same shared-memory offset in CTA `cta`
__device__ __forceinline__ uint32_t map_shared_cluster(uint32_t addr, uint32_t cta) {
  uint32_t r;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(r) : "r"(addr), "r"(cta));
  return r;
}

// st.shared::cluster.f32 [addr], v;  (addr from map_shared_cluster: another CTA's shared memory)
__device__ __forceinline__ void st_shared_cluster_f32(uint32_t addr, float v) {
  asm volatile("st.shared::cluster.f32 [%0], %1;" ::"r"(addr), "f"(v) : "memory");
}

}  // namespace dsk::ptx
