// attentionPrefill on CUDA: variable-length (cu_seqlens) attention, flash-attention style.
//
// bf16: a tensor-core kernel (mma.sync m16n8k16, f32 accumulation). A block owns 64 query rows of one
// (sequence, head): 4 warps x 16 rows. K/V tiles stream through shared memory with cp.async, double
// buffered; S = Q K^T and the online softmax stay in registers, P feeds P.V straight from the S
// accumulators. f32 (exact f32 math) and shapes the tensor-core kernel does not take run a SIMT kernel.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdlib>

#include "../math/attention_common.h"
#include "attention.h"
#include "attention_mma.cuh"
#include "common.cuh"

namespace dsk::cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr float kLog2e = 1.4426950408889634f;

struct PrefillArgs {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  const int32_t* cu;
  int64_t T, max_seqlen;
  int H, Dqk, Dv, B;
  bool causal;
  float scale_log2;  // softmax in base 2: scores scaled by scale * log2(e)
  DiagRecord* diag;
};

// Validates sequence blockIdx.z (and, in one block, the coverage of cu_seqlens). Only thread 0 reports.
__device__ bool prefill_block_sequence(const PrefillArgs& a, int64_t& start, int64_t& len) {
  DiagRecord* d = threadIdx.x == 0 ? a.diag : nullptr;
  if (blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0) prefill_check_coverage(a.cu, a.B, a.T, d);
  return prefill_sequence(a.cu, blockIdx.z, a.T, a.max_seqlen, d, start, len);
}

// ---------------------------------------------------------------- tensor-core kernel (bf16)

constexpr int kMmaRows = 64;  // query rows per block
constexpr int kMmaThreads = 128;

// Shared-memory row strides in elements: the head dim rounded up to 16 (zero padded, so the last k-step
// multiplies zeros) plus 8, which puts the 8 rows an ldmatrix reads into distinct banks.
__host__ __device__ inline int qk_stride(int Dqk) { return (Dqk + 15) / 16 * 16 + 8; }
__host__ __device__ inline int v_stride(int Dv) { return Dv + 8; }
inline size_t mma_smem_bytes(int Dqk, int Dv, int BN) {
  return sizeof(bf16) * (static_cast<size_t>(kMmaRows) * qk_stride(Dqk) + 2ull * BN * qk_stride(Dqk) + 2ull * BN * v_stride(Dv));
}

// DVT: Dv rounded up to the register tile (128 or 256); BN: keys per tile.
template <int DVT, int BN>
__global__ void __launch_bounds__(kMmaThreads) prefill_mma_kernel(PrefillArgs a) {
  using namespace mma;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int QS = qk_stride(a.Dqk), VS = v_stride(a.Dv);
  bf16* qs = reinterpret_cast<bf16*>(smem_raw);  // [kMmaRows][QS]
  bf16* ks = qs + kMmaRows * QS;                  // [2][BN][QS]
  bf16* vs = ks + 2 * BN * QS;                    // [2][BN][VS]

  int64_t start, len;
  if (!prefill_block_sequence(a, start, len)) return;
  const int h = blockIdx.y;
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kMmaRows;
  if (q0 >= len) return;

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, g = lane / 4, t4 = lane % 4;
  const int64_t qk_row = static_cast<int64_t>(a.H) * a.Dqk, v_row = static_cast<int64_t>(a.H) * a.Dv;
  const bf16* qg = static_cast<const bf16*>(a.q) + (start * a.H + h) * a.Dqk;
  const bf16* kg = static_cast<const bf16*>(a.k) + (start * a.H + h) * a.Dqk;
  const bf16* vg = static_cast<const bf16*>(a.v) + (start * a.H + h) * a.Dv;
  const int qk_chunks = a.Dqk / 8, v_chunks = a.Dv / 8;  // 16-byte chunks per row

  if (a.Dqk % 16) {  // zero the padding columns of Q and both K buffers (contiguous rows); loads never write them
    for (int r = tid; r < kMmaRows + 2 * BN; r += kMmaThreads) *reinterpret_cast<uint4*>(qs + r * QS + a.Dqk) = make_uint4(0, 0, 0, 0);
  }
  for (int c = tid; c < kMmaRows * qk_chunks; c += kMmaThreads) {
    const int r = c / qk_chunks, col = (c % qk_chunks) * 8;
    const bool ok = q0 + r < len;
    cp_async_16(qs + r * QS + col, ok ? qg + (q0 + r) * qk_row + col : qg, ok);
  }
  auto load_kv = [&](int tile, int buf) {
    const int64_t kv0 = static_cast<int64_t>(tile) * BN;
    bf16* kd = ks + buf * BN * QS;
    bf16* vd = vs + buf * BN * VS;
    for (int c = tid; c < BN * qk_chunks; c += kMmaThreads) {
      const int r = c / qk_chunks, col = (c % qk_chunks) * 8;
      const bool ok = kv0 + r < len;  // rows past the end are zero-filled: P = 0 must not meet NaN garbage
      cp_async_16(kd + r * QS + col, ok ? kg + (kv0 + r) * qk_row + col : kg, ok);
    }
    for (int c = tid; c < BN * v_chunks; c += kMmaThreads) {
      const int r = c / v_chunks, col = (c % v_chunks) * 8;
      const bool ok = kv0 + r < len;
      cp_async_16(vd + r * VS + col, ok ? vg + (kv0 + r) * v_row + col : vg, ok);
    }
  };

  const int64_t kv_len = a.causal ? (len < q0 + kMmaRows ? len : q0 + kMmaRows) : len;
  const int n_tiles = static_cast<int>((kv_len + BN - 1) / BN);
  load_kv(0, 0);
  cp_async_commit();

  float o[DVT / 8][4];
#pragma unroll
  for (int i = 0; i < DVT / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int64_t wrow0 = q0 + warp * 16;  // this warp's first query (index within the sequence)
  const bool warp_active = wrow0 < len;

  for (int kt = 0; kt < n_tiles; ++kt) {
    if (kt + 1 < n_tiles) load_kv(kt + 1, (kt + 1) & 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const int64_t kv0 = static_cast<int64_t>(kt) * BN;
    const bf16* kb = ks + (kt & 1) * BN * QS;
    const bf16* vb = vs + (kt & 1) * BN * VS;
    if (warp_active && !(a.causal && kv0 > wrow0 + 15)) {
      // S = Q K^T for the warp's 16 rows x BN keys.
      float s[BN / 8][4];
#pragma unroll
      for (int i = 0; i < BN / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
      for (int kk = 0; kk < QS - 8; kk += 16) {
        uint32_t af[4];
        ldmatrix_x4(af, qs + (warp * 16 + lane % 16) * QS + kk + (lane / 16) * 8);
#pragma unroll
        for (int np = 0; np < BN / 16; ++np) {
          uint32_t bfr[4];  // two n-tiles of keys: (keys 0-7, k lo), (keys 0-7, k hi), (keys 8-15, k lo), (keys 8-15, k hi)
          ldmatrix_x4(bfr, kb + (np * 16 + lane % 8 + (lane / 16) * 8) * QS + kk + ((lane / 8) % 2) * 8);
          mma_bf16(s[2 * np], af, bfr[0], bfr[1]);
          mma_bf16(s[2 * np + 1], af, bfr[2], bfr[3]);
        }
      }
      // Mask, then the online softmax for rows g (r = 0) and g + 8 (r = 1); a quad shares a row.
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int64_t key = kv0 + nt * 8 + 2 * t4 + (e & 1), qrow = wrow0 + g + (e >> 1) * 8;
          const bool ok = key < len && (!a.causal || key <= qrow);
          s[nt][e] = ok ? s[nt][e] * a.scale_log2 : -INFINITY;
          mx[e >> 1] = fmaxf(mx[e >> 1], s[nt][e]);
        }
      online_softmax_step(s, mx, m, l, o);
      // O += P V: the C fragments of key n-tiles 2kk, 2kk+1 are the A fragment of keys 16kk..16kk+15.
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        uint32_t pf[4], pl[4];  // P split into bf16 hi + lo parts (see pack_bf16_split)
        pack_bf16_split(s[2 * kk][0], s[2 * kk][1], pf[0], pl[0]);
        pack_bf16_split(s[2 * kk][2], s[2 * kk][3], pf[1], pl[1]);
        pack_bf16_split(s[2 * kk + 1][0], s[2 * kk + 1][1], pf[2], pl[2]);
        pack_bf16_split(s[2 * kk + 1][2], s[2 * kk + 1][3], pf[3], pl[3]);
#pragma unroll
        for (int dp = 0; dp < DVT / 16; ++dp) {
          if (dp * 16 >= a.Dv) continue;
          uint32_t bfr[4];  // V rows are keys: transpose to get (k = key, n = dim) fragments for dims dp*16 .. +16
          ldmatrix_x4_trans(bfr, vb + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * VS + dp * 16 + (lane / 16) * 8);
          mma_bf16(o[2 * dp], pf, bfr[0], bfr[1]);
          mma_bf16(o[2 * dp + 1], pf, bfr[2], bfr[3]);
          mma_bf16(o[2 * dp], pl, bfr[0], bfr[1]);
          mma_bf16(o[2 * dp + 1], pl, bfr[2], bfr[3]);
        }
      }
    }
    __syncthreads();  // everyone is done with buffer kt & 1 before the next iteration refills it
  }

  if (!warp_active) return;
  store_o_rows(o, l, wrow0, len, static_cast<bf16*>(a.out) + (start * a.H + h) * a.Dv, v_row, a.Dv);
}

// ---------------------------------------------------------------- MLA tensor-core kernel (bf16, Dqk 192, Dv 128)
//
// The shape of every DeepSeek prefill, with the head dims known at compile time. Against the generic
// kernel above: 128 query rows per block (8 warps x 16 rows), so each K/V tile brought into shared memory
// serves twice the rows; the warp's Q fragments stay in registers for the whole key loop (the generic
// kernel re-reads them from shared memory for every tile); a 3-stage cp.async ring of 64-key tiles; the
// causal/length mask is applied only on tiles that cross the diagonal or the sequence end; the grid runs
// heads fastest and the last (heaviest, causal) query blocks first, so the tail of the launch is the
// cheap blocks. Same arithmetic as the generic kernel: f32 scores and online softmax, P split into bf16
// hi + lo for P.V.

constexpr int kMlaRows = 128, kMlaKeys = 64, kMlaThreads = 256, kMlaStages = 3;

template <int DQK, int DV>
constexpr size_t mla_smem_bytes() {
  return sizeof(bf16) * (static_cast<size_t>(kMlaRows) * (DQK + 8) + static_cast<size_t>(kMlaStages) * kMlaKeys * (DQK + 8 + DV + 8));
}

template <int DQK, int DV>
__global__ void __launch_bounds__(kMlaThreads, 1) prefill_mla_kernel(PrefillArgs a) {
  using namespace mma;
  static_assert(DQK % 16 == 0 && DV % 16 == 0, "head dims must be whole k-steps / n-tile pairs");
  constexpr int BM = kMlaRows, BN = kMlaKeys, S = kMlaStages, NT = kMlaThreads;
  constexpr int QS = DQK + 8, VS = DV + 8;  // +8 halves: the 8 rows an ldmatrix reads fall in distinct banks
  constexpr int QC = DQK / 8, VC = DV / 8;  // 16-byte chunks per row
  static_assert(BM * QC % NT == 0, "the Q tile copy splits evenly over the threads");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* qs = reinterpret_cast<bf16*>(smem_raw);  // [BM][QS]
  bf16* ks = qs + BM * QS;                        // [S][BN][QS]
  bf16* vs = ks + S * BN * QS;                    // [S][BN][VS]

  int64_t start, len;
  if (!prefill_block_sequence(a, start, len)) return;
  const int h = blockIdx.x;
  const int64_t n_qblocks = (len + BM - 1) / BM;
  if (static_cast<int64_t>(blockIdx.y) >= n_qblocks) return;
  const int64_t qb = a.causal ? n_qblocks - 1 - blockIdx.y : blockIdx.y;  // causal: the longest rows first
  const int64_t q0 = qb * BM;

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, g = lane / 4, t4 = lane % 4;
  const int64_t qk_row = static_cast<int64_t>(a.H) * DQK, v_row = static_cast<int64_t>(a.H) * DV;
  const bf16* qg = static_cast<const bf16*>(a.q) + (start * a.H + h) * DQK;
  const bf16* kg = static_cast<const bf16*>(a.k) + (start * a.H + h) * DQK;
  const bf16* vg = static_cast<const bf16*>(a.v) + (start * a.H + h) * DV;

#pragma unroll
  for (int i = 0; i < BM * QC / NT; ++i) {
    const int c = tid + i * NT, r = c / QC, col = (c % QC) * 8;
    const bool ok = q0 + r < len;
    cp_async_16(qs + r * QS + col, ok ? qg + (q0 + r) * qk_row + col : qg, ok);
  }
  cp_async_commit();
  // Thread tid copies row tid / 4 of each K/V tile, 16-byte chunks tid % 4, +4, +8, ...: one row pointer and
  // one predicate per tile, the chunks at constant offsets (keeps the address registers few).
  static_assert(NT == 4 * BN && QC % 4 == 0 && VC % 4 == 0, "4 threads per K/V row");
  const int ld_row = tid / 4, ld_chunk = tid % 4;
  auto load_kv = [&](int tile, int buf) {
    const int64_t key = static_cast<int64_t>(tile) * BN + ld_row;
    const bool ok = key < len;  // rows past the end are zero-filled: P = 0 must not meet NaN garbage
    const bf16* ksrc = ok ? kg + key * qk_row + ld_chunk * 8 : kg;
    const bf16* vsrc = ok ? vg + key * v_row + ld_chunk * 8 : vg;
    bf16* kd = ks + (buf * BN + ld_row) * QS + ld_chunk * 8;
    bf16* vd = vs + (buf * BN + ld_row) * VS + ld_chunk * 8;
#pragma unroll
    for (int j = 0; j < QC / 4; ++j) cp_async_16(kd + j * 32, ok ? ksrc + j * 32 : ksrc, ok);
#pragma unroll
    for (int j = 0; j < VC / 4; ++j) cp_async_16(vd + j * 32, ok ? vsrc + j * 32 : vsrc, ok);
  };

  const int64_t kv_len = a.causal ? (len < q0 + BM ? len : q0 + BM) : len;
  const int n_tiles = static_cast<int>((kv_len + BN - 1) / BN);
#pragma unroll
  for (int i = 0; i < S - 1; ++i) {
    if (i < n_tiles) load_kv(i, i);
    cp_async_commit();  // always commit, so group counting stays uniform
  }

  const int64_t wrow0 = q0 + warp * 16;  // this warp's first query (index within the sequence)
  const bool warp_active = wrow0 < len;
  // Q fragments of the warp's 16 rows, all DQK/16 k-steps, kept for the whole loop.
  cp_async_wait<S - 1>();  // the Q group (the oldest) has landed
  __syncthreads();
  uint32_t qf[DQK / 16][4];
#pragma unroll
  for (int kk = 0; kk < DQK / 16; ++kk) ldmatrix_x4(qf[kk], qs + (warp * 16 + lane % 16) * QS + kk * 16 + (lane / 16) * 8);

  float o[DV / 8][4];
#pragma unroll
  for (int i = 0; i < DV / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

  for (int kt = 0; kt < n_tiles; ++kt) {
    if (kt + S - 1 < n_tiles) load_kv(kt + S - 1, (kt + S - 1) % S);  // into the buffer freed by tile kt - 1
    cp_async_commit();
    cp_async_wait<S - 1>();  // tile kt has landed (for this thread's copies) ...
    __syncthreads();         // ... and for everyone's
    const int64_t kv0 = static_cast<int64_t>(kt) * BN;
    const bf16* kb = ks + (kt % S) * BN * QS;
    const bf16* vb = vs + (kt % S) * BN * VS;
    if (warp_active && !(a.causal && kv0 > wrow0 + 15)) {
      // S = Q K^T for the warp's 16 rows x BN keys.
      float s[BN / 8][4];
#pragma unroll
      for (int i = 0; i < BN / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < DQK / 16; ++kk) {
#pragma unroll
        for (int np = 0; np < BN / 16; ++np) {
          uint32_t bfr[4];  // (keys 0-7, k lo), (keys 0-7, k hi), (keys 8-15, k lo), (keys 8-15, k hi) of key pair np
          ldmatrix_x4(bfr, kb + (np * 16 + lane % 8 + (lane / 16) * 8) * QS + kk * 16 + ((lane / 8) % 2) * 8);
          mma_bf16(s[2 * np], qf[kk], bfr[0], bfr[1]);
          mma_bf16(s[2 * np + 1], qf[kk], bfr[2], bfr[3]);
        }
      }
      // Scale into base 2; mask only where some key of the tile is invisible to some row of the warp.
      const bool edge = kv0 + BN > len || (a.causal && kv0 + BN - 1 > wrow0);
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nt][e] *= a.scale_log2;
      if (edge) {
        // In tile-local 32-bit terms: key j (0..BN-1) is visible to warp row i (0..15) iff j < keys_left and,
        // causal, j <= i + diag. Both bounds are clamped to what the comparison can distinguish.
        const int keys_left = static_cast<int>(len - kv0 < BN ? len - kv0 : BN);
        const int64_t dd = a.causal ? wrow0 - kv0 : BN;
        const int diag = static_cast<int>(dd < BN ? dd : BN);
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int j = nt * 8 + 2 * t4 + (e & 1), i = g + (e >> 1) * 8;
            if (j >= keys_left || j > i + diag) s[nt][e] = -INFINITY;
          }
      }
      // Online softmax for rows g (r = 0) and g + 8 (r = 1); a quad shares a row.
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
        mx[0] = fmaxf(mx[0], fmaxf(s[nt][0], s[nt][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[nt][2], s[nt][3]));
      }
      online_softmax_step(s, mx, m, l, o);
      // O += P V, P split into bf16 hi + lo (see pack_bf16_split); the C fragments of key n-tiles 2kk, 2kk+1
      // are the A fragment of keys 16kk .. 16kk+15.
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        uint32_t pf[4], pl[4];
        pack_bf16_split(s[2 * kk][0], s[2 * kk][1], pf[0], pl[0]);
        pack_bf16_split(s[2 * kk][2], s[2 * kk][3], pf[1], pl[1]);
        pack_bf16_split(s[2 * kk + 1][0], s[2 * kk + 1][1], pf[2], pl[2]);
        pack_bf16_split(s[2 * kk + 1][2], s[2 * kk + 1][3], pf[3], pl[3]);
#pragma unroll
        for (int dp = 0; dp < DV / 16; ++dp) {
          uint32_t bfr[4];  // V rows are keys: transposed loads give (k = key, n = dim) fragments for dims dp*16 .. +16
          ldmatrix_x4_trans(bfr, vb + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * VS + dp * 16 + (lane / 16) * 8);
          mma_bf16(o[2 * dp], pf, bfr[0], bfr[1]);
          mma_bf16(o[2 * dp + 1], pf, bfr[2], bfr[3]);
          mma_bf16(o[2 * dp], pl, bfr[0], bfr[1]);
          mma_bf16(o[2 * dp + 1], pl, bfr[2], bfr[3]);
        }
      }
    }
    __syncthreads();  // everyone is done with buffer kt % S before a later iteration refills it
  }

  if (!warp_active) return;
  store_o_rows(o, l, wrow0, len, static_cast<bf16*>(a.out) + (start * a.H + h) * DV, v_row, DV);
}

// ---------------------------------------------------------------- SIMT kernel (f32 math throughout)

constexpr int kSimtRows = 16, kSimtKeys = 32, kSimtThreads = 256;

__device__ __forceinline__ float ld(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float ld(const uint16_t* p, int64_t i) { return bf16_to_f32(p[i]); }
__device__ __forceinline__ void st(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(uint16_t* p, int64_t i, float v) { p[i] = f32_to_bf16(v); }

inline size_t simt_smem_bytes(int Dqk, int Dv) {
  return sizeof(float) * (static_cast<size_t>(kSimtRows) * Dqk + kSimtKeys * (Dqk + 1) + kSimtKeys * Dv +
                          kSimtRows * kSimtKeys + 3 * kSimtRows);
}

// A block owns 16 query rows of one (sequence, head). Warp w scores rows w and w + 8 against the tile's
// 32 keys (lane = key); thread d accumulates output dim d of all 16 rows.
template <class T>
__global__ void __launch_bounds__(kSimtThreads) prefill_simt_kernel(PrefillArgs a) {
  extern __shared__ float sm[];
  const int Dqk = a.Dqk, Dv = a.Dv, KS = Dqk + 1;  // odd K stride: lanes read distinct banks
  float* qs = sm;                          // [16][Dqk]
  float* ks = qs + kSimtRows * Dqk;        // [32][KS]
  float* vs = ks + kSimtKeys * KS;         // [32][Dv]
  float* ps = vs + kSimtKeys * Dv;         // [16][32]
  float* alpha_s = ps + kSimtRows * kSimtKeys;
  float* l_s = alpha_s + kSimtRows;
  float* m_s = l_s + kSimtRows;

  int64_t start, len;
  if (!prefill_block_sequence(a, start, len)) return;
  const int h = blockIdx.y;
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kSimtRows;
  if (q0 >= len) return;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int64_t qk_row = static_cast<int64_t>(a.H) * Dqk, v_row = static_cast<int64_t>(a.H) * Dv;
  const T* qg = static_cast<const T*>(a.q) + (start * a.H + h) * Dqk;
  const T* kg = static_cast<const T*>(a.k) + (start * a.H + h) * Dqk;
  const T* vg = static_cast<const T*>(a.v) + (start * a.H + h) * Dv;

  for (int i = tid; i < kSimtRows * Dqk; i += kSimtThreads) {
    const int r = i / Dqk, d = i % Dqk;
    qs[i] = q0 + r < len ? ld(qg, (q0 + r) * qk_row + d) : 0.f;
  }
  if (tid < kSimtRows) {
    m_s[tid] = -INFINITY;
    l_s[tid] = 0.f;
  }
  float acc[kSimtRows];
#pragma unroll
  for (int r = 0; r < kSimtRows; ++r) acc[r] = 0.f;

  const int64_t kv_len = a.causal ? (len < q0 + kSimtRows ? len : q0 + kSimtRows) : len;
  for (int64_t kv0 = 0; kv0 < kv_len; kv0 += kSimtKeys) {
    __syncthreads();  // the previous tile's P.V is done
    for (int i = tid; i < kSimtKeys * Dqk; i += kSimtThreads) {
      const int r = i / Dqk, d = i % Dqk;
      ks[r * KS + d] = kv0 + r < len ? ld(kg, (kv0 + r) * qk_row + d) : 0.f;
    }
    for (int i = tid; i < kSimtKeys * Dv; i += kSimtThreads) {
      const int r = i / Dv, d = i % Dv;
      vs[i] = kv0 + r < len ? ld(vg, (kv0 + r) * v_row + d) : 0.f;
    }
    __syncthreads();
    for (int rr = warp; rr < kSimtRows; rr += kSimtThreads / 32) {
      float dot = 0.f;
      for (int d = 0; d < Dqk; ++d) dot += qs[rr * Dqk + d] * ks[lane * KS + d];
      const int64_t key = kv0 + lane, qrow = q0 + rr;
      const bool ok = key < len && (!a.causal || key <= qrow);
      const float sc = ok ? dot * a.scale_log2 : -INFINITY;
      float mx = sc;
      for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float mo = m_s[rr], mn = fmaxf(mo, mx), mu = mn == -INFINITY ? 0.f : mn;
      const float p = exp2f(sc - mu);
      float sum = p;
      for (int o = 16; o; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      ps[rr * kSimtKeys + lane] = p;
      __syncwarp();  // every lane has read m_s[rr] before lane 0 replaces it
      if (lane == 0) {
        const float al = exp2f(mo - mu);
        alpha_s[rr] = al;
        l_s[rr] = l_s[rr] * al + sum;
        m_s[rr] = mn;
      }
    }
    __syncthreads();
    if (tid < Dv) {
#pragma unroll
      for (int r = 0; r < kSimtRows; ++r) acc[r] *= alpha_s[r];
      for (int j = 0; j < kSimtKeys; ++j) {
        const float vv = vs[j * Dv + tid];
#pragma unroll
        for (int r = 0; r < kSimtRows; ++r) acc[r] += ps[r * kSimtKeys + j] * vv;
      }
    }
  }
  __syncthreads();
  if (tid >= Dv) return;
  T* og = static_cast<T*>(a.out) + (start * a.H + h) * Dv;
#pragma unroll
  for (int r = 0; r < kSimtRows; ++r) {
    if (q0 + r >= len) break;
    st(og, (q0 + r) * v_row + tid, acc[r] / l_s[r]);
  }
}

template <class Kernel>
void launch(Kernel kernel, dim3 grid, int threads, size_t smem, cudaStream_t s, const PrefillArgs& a) {
  if (smem > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  kernel<<<grid, threads, smem, s>>>(a);
}

// DSK_ATTN_PREFILL_GENERIC=1 sends the MLA shape to the generic tensor-core kernel (benchmarks compare the two).
bool generic_forced() {
  static const bool on = [] { const char* v = std::getenv("DSK_ATTN_PREFILL_GENERIC"); return v && v[0] == '1'; }();
  return on;
}

int smem_optin() {
  int dev = 0, v = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  return v;
}

}  // namespace

void attention_prefill(const void* q, const void* k, const void* v, DType dt, int64_t T, int64_t H, int64_t Dqk,
                       int64_t Dv, const int32_t* cu_seqlens, int64_t B, int64_t max_seqlen, bool causal, float scale,
                       void* out, DiagRecord* diag, Stream stream) {
  if (T == 0 || H == 0) return;
  PrefillArgs a{q, k, v, out, cu_seqlens, T, max_seqlen, int(H), int(Dqk), int(Dv), int(B), causal, scale * kLog2e, diag};
  const int64_t rows = max_seqlen < T ? max_seqlen : T;  // no sequence is longer than this (checked in the kernel)
  auto grid = [&](int per_block) {
    int64_t x = (rows + per_block - 1) / per_block;
    return dim3(static_cast<unsigned>(x < 1 ? 1 : x), static_cast<unsigned>(H), static_cast<unsigned>(B));
  };
  cudaStream_t s = to_cuda(stream);
  const size_t optin = static_cast<size_t>(smem_optin());
  if (dt == DType::BF16 && Dqk == 192 && Dv == 128 && mla_smem_bytes<192, 128>() <= optin && !generic_forced()) {
    const int64_t qblocks = (rows + kMlaRows - 1) / kMlaRows;
    const dim3 g(static_cast<unsigned>(H), static_cast<unsigned>(qblocks < 1 ? 1 : qblocks), static_cast<unsigned>(B));
    return launch(prefill_mla_kernel<192, 128>, g, kMlaThreads, mla_smem_bytes<192, 128>(), s, a);
  }
  if (dt == DType::BF16 && Dv % 8 == 0) {
    if (Dv <= 128 && mma_smem_bytes(int(Dqk), int(Dv), 64) <= optin)
      return launch(prefill_mma_kernel<128, 64>, grid(kMmaRows), kMmaThreads, mma_smem_bytes(int(Dqk), int(Dv), 64), s, a);
    if (Dv > 128 && mma_smem_bytes(int(Dqk), int(Dv), 32) <= optin)
      return launch(prefill_mma_kernel<256, 32>, grid(kMmaRows), kMmaThreads, mma_smem_bytes(int(Dqk), int(Dv), 32), s, a);
  }
  const size_t smem = simt_smem_bytes(int(Dqk), int(Dv));
  if (dt == DType::F32) launch(prefill_simt_kernel<float>, grid(kSimtRows), kSimtThreads, smem, s, a);
  else launch(prefill_simt_kernel<uint16_t>, grid(kSimtRows), kSimtThreads, smem, s, a);
}

}  // namespace dsk::cuda
