#include "common.cuh"
#include "layers.h"

namespace dsk::cuda {

// One block per token row; 16-byte copies when the row allows it.
__global__ void embedding_kernel(const int32_t* ids, const char* table, int64_t V, int64_t row_bytes, char* out, DiagRecord* diag) {
  int64_t t = blockIdx.x;
  int64_t id = ids[t];
  if (!diag_check_index(diag, kDiagEmbeddingIds, id, V)) return;
  const char* src = table + id * row_bytes;
  char* dst = out + t * row_bytes;
  if (row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0 && reinterpret_cast<uintptr_t>(dst) % 16 == 0) {
    for (int64_t i = threadIdx.x; i < row_bytes / 16; i += blockDim.x)
      reinterpret_cast<int4*>(dst)[i] = reinterpret_cast<const int4*>(src)[i];
  } else {
    for (int64_t i = threadIdx.x; i < row_bytes; i += blockDim.x) dst[i] = src[i];
  }
}

void embedding(const int32_t* ids, int64_t T, const void* table, int64_t V, int64_t D, DType dt, void* out, DiagRecord* diag,
               Stream stream) {
  if (T == 0) return;
  embedding_kernel<<<static_cast<unsigned>(T), 128, 0, to_cuda(stream)>>>(ids, static_cast<const char*>(table), V,
                                                                          D * dtype_size(dt), static_cast<char*>(out), diag);
}

}  // namespace dsk::cuda
