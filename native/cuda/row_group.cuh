// The CTAs that share one long row (a 129280-token vocabulary). One block alone streams a row at a few tens
// of GB/s, so with few rows the row is split over a thread block cluster (sm_90): each CTA takes a slice,
// and they combine counts, maxima and sums through distributed shared memory. Without clusters (sm_80, or a
// launch without the cluster attribute) the group is the block itself and the same code runs.
#pragma once
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cluster_launch.cuh"

namespace dsk::cuda {

struct RowGroup {
  int rank = 0, size = 1;
  int64_t lo = 0, hi = 0;  // this CTA's slice [lo, hi) of the row

  // A barrier of every thread of every CTA of the group; shared-memory writes before it are visible to
  // the whole group after it.
  __device__ __forceinline__ void sync() const {
#if __CUDA_ARCH__ >= 900
    if (size > 1) {
      cooperative_groups::this_cluster().sync();
      return;
    }
#endif
    __syncthreads();
  }
  // `p` (in this CTA's shared memory) as the same variable in CTA r's shared memory.
  template <class T>
  __device__ __forceinline__ T* at(T* p, int r) const {
#if __CUDA_ARCH__ >= 900
    if (size > 1) return cooperative_groups::this_cluster().map_shared_rank(p, r);
#endif
    (void)r;
    return p;
  }
};

// The group of the calling CTA for a row of n elements, slices aligned to `align` elements.
__device__ __forceinline__ RowGroup row_group(int64_t n, int64_t align) {
  RowGroup g;
#if __CUDA_ARCH__ >= 900
  const cooperative_groups::cluster_group c = cooperative_groups::this_cluster();
  g.rank = static_cast<int>(c.block_rank());
  g.size = static_cast<int>(c.num_blocks());
#endif
  const int64_t units = (n + align - 1) / align;
  const int64_t per = (units + g.size - 1) / g.size * align;
  g.lo = per * g.rank < n ? per * g.rank : n;
  g.hi = g.lo + per < n ? g.lo + per : n;
  return g;
}

// Host: how many CTAs share each of `rows` rows of `units` slices' worth of work (row_group's alignment
// units): a power of two up to 8 (the portable cluster size), only while the grid stays within the SMs and
// every CTA keeps at least `min_units`.
inline int row_group_ctas(int64_t rows, int64_t units, int min_units, int sms, bool clusters) {
  int ctas = 1;
  if (!clusters) return 1;
  while (ctas < 8 && rows * ctas * 2 <= sms && units / (ctas * 2) >= min_units) ctas *= 2;
  return ctas;
}

// Launches kernel<<<rows * ctas, threads, smem>>> with clusters of `ctas` CTAs (a plain launch for 1).
template <class... Params, class... Args>
inline void launch_row_groups(void (*kernel)(Params...), int64_t rows, int ctas, int threads, size_t smem, cudaStream_t stream,
                              Args... args) {
  if (ctas == 1) {
    kernel<<<static_cast<unsigned>(rows), threads, smem, stream>>>(args...);
    return;
  }
  ClusterLaunch l(dim3(static_cast<unsigned>(rows * ctas)), dim3(threads), smem, stream, ctas);
  cudaLaunchKernelEx(&l.cfg, kernel, args...);
}

}  // namespace dsk::cuda
