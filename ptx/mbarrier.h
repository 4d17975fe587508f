// mbarrier: the shared-memory transaction barriers that pair TMA producers with WGMMA consumers (sm_90).
#pragma once
#include "common.h"

namespace dsk::ptx {

// Every function takes the barrier's shared-memory address (ptx::smem_addr of a uint64_t in smem).

// mbarrier.init.shared::cta.b64 [bar], count;
__device__ __forceinline__ void mbarrier_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}

// fence.mbarrier_init.release.cluster;  (makes the inits visible to the cluster, e.g. to multicast TMA)
__device__ __forceinline__ void fence_mbarrier_init() { asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory"); }

// @p mbarrier.arrive.shared::cta.b64 _, [bar];  with p = pred: one predicated instruction, no branch around it
// (the release of a pipeline stage by one lane of each consumer warp).
__device__ __forceinline__ void mbarrier_arrive_if(uint32_t bar, bool pred) {
  asm volatile(
      "{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %1, 0;\n\t"
      "@p mbarrier.arrive.shared::cta.b64 _, [%0];\n\t}" ::"r"(bar),
      "r"(static_cast<uint32_t>(pred))
      : "memory");
}

// @pred mbarrier.arrive.shared::cluster.b64 _, [remote];  (remote: map_shared_cluster of a barrier, worked out once;
// it may be this CTA's own, e.g. in a launch without clusters, a cluster of one.) Arrives on the barrier in that CTA.
// Default (release, CTA-scope) semantics: a consumer releasing a stage has no writes to publish, and asking for
// .release.cluster makes ptxas put a GPU-wide MEMBAR before every arrive (it cost ~1 us per K block in the first
// version).
__device__ __forceinline__ void mbarrier_arrive_mapped_if(uint32_t remote, bool pred) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %1, 0;\n\t"
      "@p mbarrier.arrive.shared::cluster.b64 _, [%0];\n\t}" ::"r"(remote),
      "r"(static_cast<uint32_t>(pred))
      : "memory");
}

// mbarrier.arrive.expect_tx.shared::cta.b64 _, [bar], bytes;  (arrive, and expect `bytes` of TMA traffic)
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}

// mbarrier.try_wait.parity.shared::cta.b64 p, [bar], parity;  -> whether the phase of that parity completed.
__device__ __forceinline__ bool mbarrier_try_wait_parity(uint32_t bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
      "selp.u32 %0, 1, 0, p;\n\t}"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
}

// mbarrier.test_wait.parity.shared::cta.b64 p, [bar], parity;  -> the same question, never suspending the thread
// (a look ahead: whether a later wait would return at once).
__device__ __forceinline__ bool mbarrier_test_wait_parity(uint32_t bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "mbarrier.test_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
      "selp.u32 %0, 1, 0, p;\n\t}"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
}

// mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [bar], parity;  (acquire at cluster scope: the
// writes another CTA of the cluster released with its arrive are visible after it)
__device__ __forceinline__ bool mbarrier_try_wait_parity_acquire_cluster(uint32_t bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\n\t"
      "selp.u32 %0, 1, 0, p;\n\t}"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
}

// mbarrier.arrive.release.cluster.shared::cluster.b64 _, [remote];  (remote: map_shared_cluster of a barrier;
// releases this thread's earlier writes, e.g. st.shared::cluster into that CTA, at cluster scope)
__device__ __forceinline__ void mbarrier_arrive_release_cluster(uint32_t remote) {
  asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];" ::"r"(remote) : "memory");
}

// Spins on a try_wait (each try may suspend the thread for a while in hardware). A wait of more than 10 s by
// %globaltimer, or of 2^26 tries, means a pipeline bug: trap, so the launch fails with an error instead of
// hanging the device.
template <bool (*TryWait)(uint32_t, uint32_t)>
__device__ __forceinline__ void mbarrier_wait_with(uint32_t bar, uint32_t parity) {
  if (TryWait(bar, parity)) return;
  uint64_t t0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  for (uint32_t spins = 1; !TryWait(bar, parity); ++spins) {
    if ((spins & 1023u) == 0) {
      uint64_t t;
      asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
      if (t - t0 > 10000000000ull || spins >= (1u << 26)) __trap();
    }
  }
}

__device__ __forceinline__ void mbarrier_wait_parity(uint32_t bar, uint32_t parity) {
  mbarrier_wait_with<mbarrier_try_wait_parity>(bar, parity);
}
__device__ __forceinline__ void mbarrier_wait_parity_acquire_cluster(uint32_t bar, uint32_t parity) {
  mbarrier_wait_with<mbarrier_try_wait_parity_acquire_cluster>(bar, parity);
}

}  // namespace dsk::ptx
