#include "layers.h"

#include <cstring>

#include "../core/runtime.h"

namespace dsk::cpu {

void embedding(const int32_t* ids, int64_t T, const void* table, int64_t V, int64_t D, DType dt, void* out, DiagRecord* diag) {
  const size_t row = static_cast<size_t>(D) * dtype_size(dt);
  parallel_for(T, 16, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      int64_t id = ids[t];
      if (!diag_check_index(diag, kDiagEmbeddingIds, id, V)) continue;
      std::memcpy(static_cast<char*>(out) + t * row, static_cast<const char*>(table) + id * row, row);
    }
  });
}

}  // namespace dsk::cpu
