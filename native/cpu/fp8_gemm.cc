#include "fp8_gemm.h"

#include <algorithm>
#include <vector>

#include "../core/dtype.h"
#include "../core/runtime.h"

namespace dsk::cpu {
namespace {

constexpr int kRowsPerBlock = 16;   // rows of A sharing one expert, computed together
constexpr int kColsPerTile = 64;    // columns of B decoded per K block
constexpr int64_t kColsPerTask = 256;

struct Fp8Table {
  float v[256];
  Fp8Table() { for (int i = 0; i < 256; ++i) v[i] = fp8e4m3_to_f32(static_cast<uint8_t>(i)); }
};
const float* fp8_table() { static const Fp8Table t; return t.v; }

struct RowBlock {
  int64_t rows[kRowsPerBlock];
  int nr = 0;
  int64_t group = 0;
};

// The row blocks of the problem: runs of rows sharing an expert, at most kRowsPerBlock each.
std::vector<RowBlock> row_blocks(const Fp8GemmProblem& p) {
  std::vector<RowBlock> blocks;
  auto add = [&](int64_t row, int64_t g) {
    if (blocks.empty() || blocks.back().group != g || blocks.back().nr == kRowsPerBlock ||
        blocks.back().rows[blocks.back().nr - 1] != row - 1) {
      blocks.emplace_back();
      blocks.back().group = g;
    }
    RowBlock& b = blocks.back();
    b.rows[b.nr++] = row;
  };
  switch (p.kind) {
    case Fp8GemmKind::Normal:
      for (int64_t r = 0; r < p.m; ++r) add(r, 0);
      break;
    case Fp8GemmKind::Contiguous:
      for (int64_t r = 0; r < p.m; ++r) {
        int64_t g = p.m_indices[r];
        if (g == -1) continue;  // padding row: untouched
        if (!diag_check_index(p.diag, kDiagGroupedGemmIndices, g, p.groups)) continue;
        add(r, g);
      }
      break;
    case Fp8GemmKind::Masked:
      for (int64_t g = 0; g < p.groups; ++g) {
        int64_t valid = p.masked_m[g];
        if (!diag_check_index(p.diag, kDiagMaskedM, valid, p.m + 1)) continue;
        for (int64_t r = 0; r < valid; ++r) add(g * p.m + r, g);
      }
      break;
  }
  return blocks;
}

// Rows of `blk`, columns [c0, c1): per K block an fp32 partial product (outer-product form, so the inner
// loop runs over columns and vectorizes), scaled by sa*sb and summed in fp32.
// a_dec holds the rows of `blk` decoded to f32; decode_a refills it when the block changes.
void decode_a(const Fp8GemmProblem& p, const RowBlock& blk, std::vector<float>& a_dec) {
  const float* lut = fp8_table();
  a_dec.resize(static_cast<size_t>(blk.nr) * p.k);
  for (int r = 0; r < blk.nr; ++r) {
    const uint8_t* src = p.a + blk.rows[r] * p.k;
    float* dst = a_dec.data() + static_cast<size_t>(r) * p.k;
    for (int64_t k = 0; k < p.k; ++k) dst[k] = lut[src[k]];
  }
}

void compute(const Fp8GemmProblem& p, const RowBlock& blk, int64_t c0, int64_t c1, const std::vector<float>& a_dec) {
  const float* lut = fp8_table();
  const int64_t K = p.k, KB = p.k_blocks(), NB = p.n_blocks();
  const int nr = blk.nr;
  const uint8_t* b = p.b + blk.group * p.n * K;
  const float* sb = p.sb + blk.group * NB * KB;
  alignas(64) float bt[128][kColsPerTile];
  alignas(64) float part[kRowsPerBlock][kColsPerTile];
  alignas(64) float acc[kRowsPerBlock][kColsPerTile];
  for (int64_t n0 = c0; n0 < c1; n0 += kColsPerTile) {
    const int nn = static_cast<int>(std::min<int64_t>(kColsPerTile, c1 - n0));
    std::fill(&acc[0][0], &acc[0][0] + kRowsPerBlock * kColsPerTile, 0.0f);
    for (int64_t kb = 0; kb < KB; ++kb) {
      for (int j = 0; j < kColsPerTile; ++j) {
        if (j < nn) {
          const uint8_t* src = b + (n0 + j) * K + kb * 128;
          for (int k = 0; k < 128; ++k) bt[k][j] = lut[src[k]];
        } else {
          for (int k = 0; k < 128; ++k) bt[k][j] = 0.0f;
        }
      }
      for (int r = 0; r < nr; ++r) {
        float* pr = part[r];
        for (int j = 0; j < kColsPerTile; ++j) pr[j] = 0.0f;
        const float* ar = a_dec.data() + static_cast<size_t>(r) * K + kb * 128;
        for (int k = 0; k < 128; ++k) {
          const float av = ar[k];
          const float* br = bt[k];
          for (int j = 0; j < kColsPerTile; ++j) pr[j] += av * br[j];
        }
      }
      for (int r = 0; r < nr; ++r) {
        const float sa = p.sa[blk.rows[r] * KB + kb];
        for (int j = 0; j < nn; ++j) acc[r][j] += part[r][j] * (sa * sb[((n0 + j) / 128) * KB + kb]);
      }
    }
    for (int r = 0; r < nr; ++r) {
      uint16_t* drow = p.d + blk.rows[r] * p.n + n0;
      for (int j = 0; j < nn; ++j) drow[j] = f32_to_bf16(acc[r][j]);
    }
  }
}

}  // namespace

void fp8_gemm(const Fp8GemmProblem& p) {
  if (p.n == 0 || p.m == 0) return;
  const std::vector<RowBlock> blocks = row_blocks(p);
  const int64_t chunks = (p.n + kColsPerTask - 1) / kColsPerTask;
  const int64_t tasks = static_cast<int64_t>(blocks.size()) * chunks;
  parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> a_dec;
    int64_t decoded = -1;
    for (int64_t t = t0; t < t1; ++t) {
      const RowBlock& blk = blocks[t / chunks];
      if (t / chunks != decoded) decode_a(p, blk, a_dec), decoded = t / chunks;
      const int64_t c0 = (t % chunks) * kColsPerTask;
      compute(p, blk, c0, std::min(p.n, c0 + kColsPerTask), a_dec);
    }
  });
}

}  // namespace dsk::cpu
