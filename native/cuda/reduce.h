// CUDA reductions over the last dim; contracts as in native/cpu/reduce.h (same bits).
#pragma once
#include <cstdint>

#include "../core/runtime.h"

namespace dsk::cuda {

// What a row kernel needs to know to split few long rows over thread block clusters (sample, topk).
struct RowLaunch {
  int sms = 0;            // the device's SM count
  bool clusters = false;  // sm_90 or newer
};

void softmax(const void* x, int64_t xs, DType dt, int64_t rows, int64_t n, bool log, void* out, DType out_dt, Stream stream);
void argmax(const void* x, int64_t xs, DType dt, int64_t rows, int64_t n, int32_t* out, Stream stream);
void topk(const void* x, int64_t xs, DType dt, int64_t rows, int64_t n, int64_t k, void* values, int32_t* indices,
          const RowLaunch& rl, Stream stream);

// The largest k topk accepts (the selection is sorted in shared memory).
constexpr int64_t kTopkMax = 4096;

}  // namespace dsk::cuda
