// A launch configuration for cudaLaunchKernelEx (and cudaOccupancyMaxActiveClusters) with 1-D thread block
// clusters of `cluster` CTAs. Host code. Not copyable: the configuration points at its own attribute.
#pragma once
#include <cuda_runtime.h>

namespace dsk::cuda {

struct ClusterLaunch {
  cudaLaunchConfig_t cfg = {};
  cudaLaunchAttribute attr[1] = {};

  ClusterLaunch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, int cluster) {
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = static_cast<unsigned>(cluster);
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
  }
  ClusterLaunch(const ClusterLaunch&) = delete;
  ClusterLaunch& operator=(const ClusterLaunch&) = delete;
};

}  // namespace dsk::cuda
