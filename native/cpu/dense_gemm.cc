// Cache-blocked: the work is split into panels of 32 columns of b (kept hot in cache while every row of a
// streams past them), run in parallel. Each output is a dot product over K kept in 8 partial sums (k mod 8),
// added pairwise at the end: independent accumulators the compiler can vectorize without reassociating.
#include "dense_gemm.h"

#include <vector>

#include "../core/runtime.h"

namespace dsk::cpu {

namespace {

constexpr int kLanes = 8;
constexpr int kMr = 2, kNr = 4;  // register tile: 2 rows of a x 4 rows of b
constexpr int64_t kPanel = 32;   // columns of the output per task

inline float lane_total(const float* l) {
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// acc[i][j] = dot(ar[i], br[j]) over K (f32 rows).
void micro(const float* const* ar, const float* const* br, int64_t K, float out[kMr][kNr]) {
  float acc[kMr][kNr][kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= K; k += kLanes)
    for (int i = 0; i < kMr; ++i)
      for (int j = 0; j < kNr; ++j)
        for (int l = 0; l < kLanes; ++l) acc[i][j][l] += ar[i][k + l] * br[j][k + l];
  for (int l = 0; k < K; ++k, ++l)
    for (int i = 0; i < kMr; ++i)
      for (int j = 0; j < kNr; ++j) acc[i][j][l] += ar[i][k] * br[j][k];
  for (int i = 0; i < kMr; ++i)
    for (int j = 0; j < kNr; ++j) out[i][j] = lane_total(acc[i][j]);
}

// Row r of a matrix as f32: a pointer into the matrix itself (f32) or into a converted copy (bf16).
void row_f32(const void* m, int64_t ld, DType dt, int64_t r, int64_t K, float* buf) {
  if (dt == DType::F32) return;
  const uint16_t* s = static_cast<const uint16_t*>(m) + r * ld;
  for (int64_t k = 0; k < K; ++k) buf[k] = bf16_to_f32(s[k]);
}

}  // namespace

void gemm_nt(const void* a, int64_t lda, const void* b, int64_t ldb, DType in_dt, int64_t M, int64_t N, int64_t K, void* out,
             DType out_dt) {
  if (M == 0 || N == 0) return;
  const int64_t panels = (N + kPanel - 1) / kPanel;
  const bool f32 = in_dt == DType::F32;
  parallel_for(panels, 1, [&](int64_t p0, int64_t p1) {
    std::vector<float> bbuf(f32 ? 0 : kPanel * K), abuf(f32 ? 0 : kMr * K);
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n0 = p * kPanel, nn = N - n0 < kPanel ? N - n0 : kPanel;
      const float* brow[kPanel];
      for (int64_t j = 0; j < nn; ++j) {
        if (f32) brow[j] = static_cast<const float*>(b) + (n0 + j) * ldb;
        else { row_f32(b, ldb, in_dt, n0 + j, K, &bbuf[j * K]); brow[j] = &bbuf[j * K]; }
      }
      for (int64_t m0 = 0; m0 < M; m0 += kMr) {
        // Edge tiles repeat the last valid row/column and drop the duplicate results.
        const float* arow[kMr];
        for (int i = 0; i < kMr; ++i) {
          int64_t r = m0 + i < M ? m0 + i : M - 1;
          if (f32) arow[i] = static_cast<const float*>(a) + r * lda;
          else { row_f32(a, lda, in_dt, r, K, &abuf[i * K]); arow[i] = &abuf[i * K]; }
        }
        for (int64_t j0 = 0; j0 < nn; j0 += kNr) {
          const float* bt[kNr];
          for (int j = 0; j < kNr; ++j) bt[j] = brow[j0 + j < nn ? j0 + j : nn - 1];
          float tile[kMr][kNr];
          micro(arow, bt, K, tile);
          for (int i = 0; i < kMr && m0 + i < M; ++i)
            for (int j = 0; j < kNr && j0 + j < nn; ++j) store_f32(out, out_dt, (m0 + i) * N + n0 + j0 + j, tile[i][j]);
        }
      }
    }
  });
}

}  // namespace dsk::cpu
