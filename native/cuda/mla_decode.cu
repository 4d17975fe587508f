// MLA decode over the paged latent cache, and the cache write.
//
// Decode is memory-bound: every cached token is 576 bf16 = 1152 bytes, used as key (all 576 dims) and value
// (first 512) by all Sq x H absorbed queries of its sequence. The floor is therefore
//   sum_b seqLens[b] * 1152 bytes / HBM bandwidth      (e.g. 32k tokens: 37.7 MB, ~11 us at 3.35 TB/s),
// plus the queries and outputs (B * Sq * H * (576 + 512) elements), negligible next to the cache.
//
// Design (flash-decoding): a block owns one group of 64 query rows (row = j * H + h of one sequence) and
// one split of the sequence. It streams its split's tokens in tiles of 32 x 576 bf16 through shared memory
// (cp.async, double-buffered); all 64 rows use each loaded tile, so each cache byte is read once per
// (sequence, 64-row group). 16 warps: for S = Q K^T warp (rg, tg) computes rows 16rg.. x tokens 8tg..
// with mma.sync; the softmax runs on a shared score tile; for O += P V warp (rg, cg) owns rows 16rg.. x
// output dims 128cg.., its accumulators in registers. Splits write normalized partial outputs and their
// LSE; a combine kernel merges them. Batch 1 with a long cache thus still spreads over all SMs.
// Expected cost (not yet measured): with H = 128 the S = Q K^T fragment loads from shared memory (~600 KB
// per 32-token tile per block) rather than HBM bound the kernel at roughly 2x the floor on H100; with
// H <= 16 only one row group is active and it should sit near the floor. The Hopper kernel replaces this.
// f32 queries (exact f32 math) and GPUs without the 161 KiB of shared memory use a SIMT kernel of the
// same structure with 16-row groups.
#include <cuda_bf16.h>

#include <cmath>

#include "../math/attention_common.h"
#include "attention.h"
#include "attention_mma.cuh"
#include "common.cuh"

namespace dsk::cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr int kChunks = kMlaWidth / 8;  // 16-byte chunks per cached token

struct DecodeArgs {
  const void* q;
  const uint16_t* cache;
  const int32_t* block_table;
  const int32_t* seq_lens;
  void* out;
  float* lse;
  float* o_part;    // [B, nsplit, Sq*H, 512] when nsplit > 1
  float* lse_part;  // [B, nsplit, Sq*H]
  int64_t num_blocks;
  int max_blocks, Sq, H, nsplit;
  bool causal;
  float scale_log2;
  DiagRecord* diag;
};

// The tokens [begin, end) this block (split blockIdx.x of row group blockIdx.y of sequence blockIdx.z)
// covers; ok = false when seq_lens[b] is out of range (reported; the block writes nothing).
struct Split {
  bool ok;
  int rows;  // valid query rows in the group
  int64_t seq_len, begin, end;
};

__device__ Split decode_split(const DecodeArgs& a, int group_rows) {
  Split s{};
  DiagRecord* d = threadIdx.x == 0 ? a.diag : nullptr;
  s.seq_len = a.seq_lens[blockIdx.z];
  s.ok = diag_check_index(d, kDiagSeqLens, s.seq_len, static_cast<int64_t>(a.max_blocks) * kMlaBlockTokens + 1);
  if (!s.ok) return s;
  const int total = a.Sq * a.H, row0 = blockIdx.y * group_rows;
  s.rows = total - row0 < group_rows ? total - row0 : group_rows;
  const int64_t kv_end = mla_key_limit(s.seq_len, a.Sq, (row0 + s.rows - 1) / a.H, a.causal);  // the group's last row sees most
  int64_t chunk = ((kv_end + a.nsplit - 1) / a.nsplit + 31) / 32 * 32;
  const int64_t min_chunk = mla_min_split_tokens(s.rows);
  if (chunk < min_chunk) chunk = min_chunk;
  s.begin = blockIdx.x * chunk;
  s.end = s.begin + chunk < kv_end ? s.begin + chunk : kv_end;
  if (s.begin > s.end) s.begin = s.end;
  return s;
}

// The cache block holding position kv0 of sequence b, checked; -1 when out of range (reported once).
__device__ int64_t cache_block(const DecodeArgs& a, int64_t kv0) {
  const int64_t blk = a.block_table[static_cast<int64_t>(blockIdx.z) * a.max_blocks + kv0 / kMlaBlockTokens];
  return diag_check_index(threadIdx.x == 0 ? a.diag : nullptr, kDiagBlockTable, blk, a.num_blocks) ? blk : -1;
}

__device__ __forceinline__ void store_out(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store_out(uint16_t* p, int64_t i, float v) { p[i] = f32_to_bf16(v); }
__device__ __forceinline__ float load_in(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load_in(const uint16_t* p, int64_t i) { return bf16_to_f32(p[i]); }

// Writes output dims (dim, dim + 1) of a finished row: the final output when there is one split, else the
// split's partial (already normalized by 1 / l).
template <class T>
__device__ __forceinline__ void write_pair(const DecodeArgs& a, int row, int dim, float v0, float v1) {
  const int64_t b = blockIdx.z, total = static_cast<int64_t>(a.Sq) * a.H;
  if (a.nsplit == 1) {
    T* o = static_cast<T*>(a.out) + (b * total + row) * kMlaLatent + dim;
    store_out(o, 0, v0);
    store_out(o, 1, v1);
  } else {
    *reinterpret_cast<float2*>(a.o_part + ((b * a.nsplit + blockIdx.x) * total + row) * kMlaLatent + dim) = make_float2(v0, v1);
  }
}
// The row's LSE (natural log) from its max m2 (log2 units) and sum l; -inf when it saw no key.
__device__ void write_lse(const DecodeArgs& a, int row, float m2, float l) {
  const float v = l > 0.f ? (m2 + log2f(l)) * kLn2 : -INFINITY;
  const int64_t b = blockIdx.z, total = static_cast<int64_t>(a.Sq) * a.H;
  if (a.nsplit == 1) a.lse[(b * a.H + row % a.H) * a.Sq + row / a.H] = v;
  else a.lse_part[(b * a.nsplit + blockIdx.x) * total + row] = v;
}

// ---------------------------------------------------------------- tensor-core kernel (bf16 queries)

constexpr int kRows = 64, kKeys = 32, kThreads = 512;
constexpr int kQS = kMlaWidth + 8;  // bf16 row stride of Q and KV tiles: ldmatrix rows in distinct banks
constexpr int kSS = kKeys + 4;      // f32 score stride
constexpr int kPS = kKeys + 8;      // bf16 probability stride
static_assert(kRows * kPS * 2 <= kRows * kSS * 4, "the lo part of P must fit over the score tile");
constexpr size_t kMmaSmem = sizeof(bf16) * (kRows * kQS + 2 * kKeys * kQS + kRows * kPS) + sizeof(float) * (kRows * kSS + 3 * kRows);

__global__ void __launch_bounds__(kThreads, 1) mla_decode_mma_kernel(DecodeArgs a) {
  using namespace mma;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* qs = reinterpret_cast<bf16*>(smem_raw);      // [64][kQS]
  bf16* kv = qs + kRows * kQS;                        // [2][32][kQS]
  bf16* ps = kv + 2 * kKeys * kQS;                    // [64][kPS]
  float* ss = reinterpret_cast<float*>(ps + kRows * kPS);  // [64][kSS]
  bf16* pl = reinterpret_cast<bf16*>(ss);                  // [64][kPS], the lo part of P, over the scores
  float* m_s = ss + kRows * kSS;
  float* l_s = m_s + kRows;
  float* al_s = l_s + kRows;

  const Split sp = decode_split(a, kRows);
  if (!sp.ok) return;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, g = lane / 4, t4 = lane % 4;
  const int rg = warp / 4, cg = warp % 4;  // row group; token group (S) and dim group (P.V)
  const int row0 = blockIdx.y * kRows;
  const bf16* qg = static_cast<const bf16*>(a.q) + (static_cast<int64_t>(blockIdx.z) * a.Sq * a.H + row0) * kMlaWidth;

  for (int c = tid; c < kRows * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    cp_async_16(qs + r * kQS + col, r < sp.rows ? qg + r * kMlaWidth + col : qg, r < sp.rows);
  }
  if (tid < kRows) {
    m_s[tid] = -INFINITY;
    l_s[tid] = 0.f;
  }
  auto load_tile = [&](int64_t kv0, int buf) {
    const int64_t blk = cache_block(a, kv0);  // a bad block id zero-fills the tile (reported)
    const uint16_t* src = a.cache + (blk < 0 ? 0 : (blk * kMlaBlockTokens + kv0 % kMlaBlockTokens) * kMlaWidth);
    bf16* dst = kv + buf * kKeys * kQS;
    for (int c = tid; c < kKeys * kChunks; c += kThreads) {
      const int r = c / kChunks, col = (c % kChunks) * 8;
      const bool ok = blk >= 0 && kv0 + r < sp.end;
      cp_async_16(dst + r * kQS + col, ok ? src + r * kMlaWidth + col : a.cache, ok);
    }
  };
  const int n_tiles = static_cast<int>((sp.end - sp.begin + kKeys - 1) / kKeys);
  if (n_tiles > 0) load_tile(sp.begin, 0);
  cp_async_commit();

  // Each thread's two S rows (g, g + 8 of its row group) and the positions they may see.
  const bool rg_active = rg * 16 < sp.rows;
  int64_t limit[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int rl = rg * 16 + g + 8 * r;
    limit[r] = rl < sp.rows ? mla_key_limit(sp.seq_len, a.Sq, (row0 + rl) / a.H, a.causal) : 0;
  }
  float o[16][4];
#pragma unroll
  for (int i = 0; i < 16; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;

  for (int t = 0; t < n_tiles; ++t) {
    const int64_t kv0 = sp.begin + static_cast<int64_t>(t) * kKeys;
    if (t + 1 < n_tiles) load_tile(kv0 + kKeys, (t + 1) & 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const bf16* kb = kv + (t & 1) * kKeys * kQS;

    if (rg_active) {  // S: rows 16rg.. x tokens 8cg.., all 576 dims
      float s[4] = {0.f, 0.f, 0.f, 0.f};
      const bf16* qa = qs + (rg * 16 + lane % 16) * kQS + (lane / 16) * 8;
      const bf16* kt = kb + (cg * 8 + lane % 8) * kQS + (lane / 8) * 8;  // x4: k-steps kk and kk + 16
#pragma unroll 6
      for (int kk = 0; kk < kMlaWidth; kk += 32) {
        uint32_t a0[4], a1[4], bk[4];
        ldmatrix_x4(a0, qa + kk);
        ldmatrix_x4(a1, qa + kk + 16);
        ldmatrix_x4(bk, kt + kk);
        mma_bf16(s, a0, bk[0], bk[1]);
        mma_bf16(s, a1, bk[2], bk[3]);
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int col = cg * 8 + 2 * t4;
        const int64_t pos = kv0 + col;
        float2 v;
        v.x = pos < sp.end && pos < limit[r] ? s[2 * r] * a.scale_log2 : -INFINITY;
        v.y = pos + 1 < sp.end && pos + 1 < limit[r] ? s[2 * r + 1] * a.scale_log2 : -INFINITY;
        *reinterpret_cast<float2*>(ss + (rg * 16 + g + 8 * r) * kSS + col) = v;
      }
    }
    __syncthreads();
    {  // online softmax: 8 threads per row, 4 tokens each
      const int rl = tid / 8, sub = tid % 8;
      float4 v = make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
      if (rl < sp.rows) v = *reinterpret_cast<const float4*>(ss + rl * kSS + sub * 4);
      float mx = fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
      const float mo = m_s[rl], mn = fmaxf(mo, mx), mu = mn == -INFINITY ? 0.f : mn;
      const float p0 = exp2f(v.x - mu), p1 = exp2f(v.y - mu), p2 = exp2f(v.z - mu), p3 = exp2f(v.w - mu);
      float sum = (p0 + p1) + (p2 + p3);
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      sum += __shfl_xor_sync(0xffffffffu, sum, 4);
      // P as bf16 hi + lo parts (see pack_bf16_split); the lo part lives in the score tile, which every
      // thread has read once all are past this barrier.
      __syncthreads();
      uint32_t h01, l01, h23, l23;
      pack_bf16_split(p0, p1, h01, l01);
      pack_bf16_split(p2, p3, h23, l23);
      *reinterpret_cast<uint2*>(ps + rl * kPS + sub * 4) = make_uint2(h01, h23);
      *reinterpret_cast<uint2*>(pl + rl * kPS + sub * 4) = make_uint2(l01, l23);
      __syncwarp();  // all 8 threads have read m_s[rl] before it changes
      if (sub == 0) {
        const float al = exp2f(mo - mu);
        m_s[rl] = mn;
        l_s[rl] = l_s[rl] * al + sum;
        al_s[rl] = al;
      }
    }
    __syncthreads();
    if (rg_active) {  // O = O * alpha + P V for rows 16rg.. x dims 128cg..
      const float al0 = al_s[rg * 16 + g], al1 = al_s[rg * 16 + g + 8];
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        o[i][0] *= al0;
        o[i][1] *= al0;
        o[i][2] *= al1;
        o[i][3] *= al1;
      }
#pragma unroll
      for (int kk = 0; kk < kKeys; kk += 16) {
        uint32_t pa[4], pla[4];
        ldmatrix_x4(pa, ps + (rg * 16 + lane % 16) * kPS + kk + (lane / 16) * 8);
        ldmatrix_x4(pla, pl + (rg * 16 + lane % 16) * kPS + kk + (lane / 16) * 8);
        const bf16* vt = kb + (kk + lane % 8 + ((lane / 8) % 2) * 8) * kQS + cg * 128 + (lane / 16) * 8;
#pragma unroll
        for (int dp = 0; dp < 8; ++dp) {
          uint32_t bv[4];
          ldmatrix_x4_trans(bv, vt + dp * 16);
          mma_bf16(o[2 * dp], pa, bv[0], bv[1]);
          mma_bf16(o[2 * dp + 1], pa, bv[2], bv[3]);
          mma_bf16(o[2 * dp], pla, bv[0], bv[1]);
          mma_bf16(o[2 * dp + 1], pla, bv[2], bv[3]);
        }
      }
    }
    __syncthreads();  // tile t & 1, ps and al_s are free for the next iteration
  }
  cp_async_wait<0>();
  __syncthreads();

  if (rg_active) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int rl = rg * 16 + g + 8 * r;
      if (rl >= sp.rows) continue;
      const float l = l_s[rl], inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
      for (int i = 0; i < 16; ++i) write_pair<uint16_t>(a, row0 + rl, cg * 128 + i * 8 + 2 * t4, o[i][2 * r] * inv, o[i][2 * r + 1] * inv);
    }
  }
  if (tid < sp.rows) write_lse(a, row0 + tid, m_s[tid], l_s[tid]);
}

// ---------------------------------------------------------------- SIMT kernel (f32 math)

constexpr int kSRows = 16, kSKeys = 32, kSThreads = 256;
constexpr int kKVW = kMlaWidth / 2 + 1;  // 32-bit words per token row in shared memory: odd, conflict-free
constexpr size_t kSimtSmem = sizeof(float) * (kSRows * kMlaWidth + kSRows * kSKeys + 3 * kSRows) + sizeof(uint32_t) * kSKeys * kKVW;

// Warp w scores rows w and w + 8 (lane = token); thread i accumulates dims 2i, 2i + 1 of all 16 rows.
template <class T>
__global__ void __launch_bounds__(kSThreads) mla_decode_simt_kernel(DecodeArgs a) {
  extern __shared__ float smf[];
  float* qs = smf;                                                    // [16][576]
  float* ps = qs + kSRows * kMlaWidth;                                // [16][32]
  float* m_s = ps + kSRows * kSKeys;
  float* l_s = m_s + kSRows;
  float* al_s = l_s + kSRows;
  uint32_t* kvw = reinterpret_cast<uint32_t*>(al_s + kSRows);         // [32][kKVW] bf16 pairs

  const Split sp = decode_split(a, kSRows);
  if (!sp.ok) return;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int row0 = blockIdx.y * kSRows;
  const T* qg = static_cast<const T*>(a.q) + (static_cast<int64_t>(blockIdx.z) * a.Sq * a.H + row0) * kMlaWidth;
  for (int i = tid; i < kSRows * kMlaWidth; i += kSThreads) qs[i] = i / kMlaWidth < sp.rows ? load_in(qg, i) : 0.f;
  if (tid < kSRows) {
    m_s[tid] = -INFINITY;
    l_s[tid] = 0.f;
  }
  float acc[kSRows][2];
#pragma unroll
  for (int r = 0; r < kSRows; ++r) acc[r][0] = acc[r][1] = 0.f;

  for (int64_t kv0 = sp.begin; kv0 < sp.end; kv0 += kSKeys) {
    __syncthreads();
    const int64_t blk = cache_block(a, kv0);
    const uint16_t* src = a.cache + (blk < 0 ? 0 : (blk * kMlaBlockTokens + kv0 % kMlaBlockTokens) * kMlaWidth);
    for (int c = tid; c < kSKeys * kChunks; c += kSThreads) {
      const int r = c / kChunks, w = (c % kChunks) * 4;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (blk >= 0 && kv0 + r < sp.end) v = *reinterpret_cast<const uint4*>(src + r * kMlaWidth + w * 2);
      uint32_t* d = kvw + r * kKVW + w;
      d[0] = v.x;
      d[1] = v.y;
      d[2] = v.z;
      d[3] = v.w;
    }
    __syncthreads();
    for (int rr = warp; rr < kSRows; rr += kSThreads / 32) {
      const float* qr = qs + rr * kMlaWidth;
      const uint32_t* kr = kvw + lane * kKVW;
      float part[4] = {0.f, 0.f, 0.f, 0.f};  // four partial sums: shorter rounding chains, more ILP
      for (int i = 0; i < kMlaWidth / 2; i += 2) {
#pragma unroll
        for (int u = 0; u < 2; ++u) {
          const uint32_t w = kr[i + u];
          part[2 * u] += qr[2 * (i + u)] * bf16_to_f32(static_cast<uint16_t>(w & 0xffffu));
          part[2 * u + 1] += qr[2 * (i + u) + 1] * bf16_to_f32(static_cast<uint16_t>(w >> 16));
        }
      }
      const float dot = (part[0] + part[1]) + (part[2] + part[3]);
      const int64_t pos = kv0 + lane;
      const int64_t lim = rr < sp.rows ? mla_key_limit(sp.seq_len, a.Sq, (row0 + rr) / a.H, a.causal) : 0;
      const float sc = pos < sp.end && pos < lim ? dot * a.scale_log2 : -INFINITY;
      float mx = sc;
      for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float mo = m_s[rr], mn = fmaxf(mo, mx), mu = mn == -INFINITY ? 0.f : mn;
      const float p = exp2f(sc - mu);
      float sum = p;
      for (int o = 16; o; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      ps[rr * kSKeys + lane] = p;
      __syncwarp();
      if (lane == 0) {
        const float al = exp2f(mo - mu);
        al_s[rr] = al;
        l_s[rr] = l_s[rr] * al + sum;
        m_s[rr] = mn;
      }
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kSRows; ++r) {
      acc[r][0] *= al_s[r];
      acc[r][1] *= al_s[r];
    }
    for (int j = 0; j < kSKeys; ++j) {
      const uint32_t w = kvw[j * kKVW + tid];  // dims 2 tid, 2 tid + 1 of token j
      const float v0 = bf16_to_f32(static_cast<uint16_t>(w & 0xffffu)), v1 = bf16_to_f32(static_cast<uint16_t>(w >> 16));
#pragma unroll
      for (int r = 0; r < kSRows; ++r) {
        acc[r][0] += ps[r * kSKeys + j] * v0;
        acc[r][1] += ps[r * kSKeys + j] * v1;
      }
    }
  }
  __syncthreads();
#pragma unroll
  for (int r = 0; r < kSRows; ++r) {
    if (r >= sp.rows) break;
    const float l = l_s[r], inv = l > 0.f ? 1.f / l : 0.f;
    write_pair<T>(a, row0 + r, 2 * tid, acc[r][0] * inv, acc[r][1] * inv);
  }
  if (tid < sp.rows) write_lse(a, row0 + tid, m_s[tid], l_s[tid]);
}

// ---------------------------------------------------------------- split combine

// One block per (row, sequence): out = sum_s w_s O_s / sum_s w_s with w_s = exp(lse_s - max lse).
template <class T>
__global__ void __launch_bounds__(128) mla_combine_kernel(DecodeArgs a) {
  __shared__ float w_s[kMlaMaxSplits];
  __shared__ float red[2];
  const int row = blockIdx.x, tid = threadIdx.x;
  const int64_t b = blockIdx.y, total = static_cast<int64_t>(a.Sq) * a.H;
  const float* lp = a.lse_part + b * a.nsplit * total + row;
  if (tid < 32) {
    float mx = -INFINITY;
    for (int s = tid; s < a.nsplit; s += 32) mx = fmaxf(mx, lp[s * total]);
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
    for (int s = tid; s < a.nsplit; s += 32) {
      const float ls = lp[s * total];
      const float w = ls == -INFINITY ? 0.f : expf(ls - mx);
      w_s[s] = w;
      sum += w;
    }
    for (int o = 16; o; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (tid == 0) {
      red[0] = mx;
      red[1] = sum;
    }
  }
  __syncthreads();
  const float mx = red[0], sum = red[1], inv = sum > 0.f ? 1.f / sum : 0.f;
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  const float* op = a.o_part + (b * a.nsplit * total + row) * kMlaLatent + 4 * tid;
  for (int s = 0; s < a.nsplit; ++s) {
    const float w = w_s[s];
    if (w == 0.f) continue;  // empty splits: their partials are never read
    const float4 v = *reinterpret_cast<const float4*>(op + s * total * kMlaLatent);
    acc[0] += w * v.x;
    acc[1] += w * v.y;
    acc[2] += w * v.z;
    acc[3] += w * v.w;
  }
  T* o = static_cast<T*>(a.out) + (b * total + row) * kMlaLatent + 4 * tid;
  for (int i = 0; i < 4; ++i) store_out(o, i, acc[i] * inv);
  if (tid == 0) a.lse[(b * a.H + row % a.H) * a.Sq + row / a.H] = sum > 0.f ? mx + logf(sum) : -INFINITY;
}

// ---------------------------------------------------------------- cache write

// Thread per 16-byte chunk of a cache row (8 bf16): 72 chunks per token, consecutive threads consecutive chunks.
template <class T>
__global__ void mla_cache_write_kernel(uint16_t* cache, int64_t num_slots, const T* latent, int64_t T_, const int32_t* slots,
                                       DiagRecord* diag) {
  DSK_GRID_STRIDE(c, T_ * kChunks) {
    const int64_t t = c / kChunks, part = c % kChunks;
    const int64_t slot = slots[t];
    if (!diag_check_index(part == 0 ? diag : nullptr, kDiagCacheSlots, slot, num_slots)) continue;
    uint4 v;
    if constexpr (sizeof(T) == 2) {
      v = reinterpret_cast<const uint4*>(latent + t * kMlaWidth)[part];
    } else {
      const float4 lo = reinterpret_cast<const float4*>(latent + t * kMlaWidth)[2 * part];
      const float4 hi = reinterpret_cast<const float4*>(latent + t * kMlaWidth)[2 * part + 1];
      v.x = f32_to_bf16(lo.x) | static_cast<uint32_t>(f32_to_bf16(lo.y)) << 16;
      v.y = f32_to_bf16(lo.z) | static_cast<uint32_t>(f32_to_bf16(lo.w)) << 16;
      v.z = f32_to_bf16(hi.x) | static_cast<uint32_t>(f32_to_bf16(hi.y)) << 16;
      v.w = f32_to_bf16(hi.z) | static_cast<uint32_t>(f32_to_bf16(hi.w)) << 16;
    }
    reinterpret_cast<uint4*>(cache + slot * kMlaWidth)[part] = v;
  }
}

int smem_optin() {
  int dev = 0, v = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  return v;
}

}  // namespace

void mla_cache_write(uint16_t* cache, int64_t num_blocks, const void* latent, DType dt, int64_t T, const int32_t* slots,
                     DiagRecord* diag, Stream stream) {
  if (T == 0) return;
  const unsigned grid = grid_for(T * kChunks, 256);
  const int64_t num_slots = num_blocks * kMlaBlockTokens;
  if (dt == DType::BF16)
    mla_cache_write_kernel<uint16_t><<<grid, 256, 0, to_cuda(stream)>>>(cache, num_slots, static_cast<const uint16_t*>(latent), T, slots, diag);
  else
    mla_cache_write_kernel<float><<<grid, 256, 0, to_cuda(stream)>>>(cache, num_slots, static_cast<const float*>(latent), T, slots, diag);
}

void mla_decode(const void* q, DType dt, int64_t B, int64_t Sq, int64_t H, const uint16_t* cache, int64_t num_blocks,
                const int32_t* block_table, int64_t max_blocks, const int32_t* seq_lens, float scale, bool causal,
                void* out, float* lse, int nsplit, float* workspace, DiagRecord* diag, Stream stream) {
  if (B == 0 || H == 0) return;
  const int64_t total = Sq * H;
  DecodeArgs a{q, cache, block_table, seq_lens, out, lse, workspace, workspace ? workspace + B * nsplit * total * kMlaLatent : nullptr,
               num_blocks, int(max_blocks), int(Sq), int(H), nsplit, causal, scale * kLog2e, diag};
  cudaStream_t s = to_cuda(stream);
  if (dt == DType::BF16 && static_cast<size_t>(smem_optin()) >= kMmaSmem) {
    cudaFuncSetAttribute(mla_decode_mma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kMmaSmem));
    const dim3 grid(nsplit, static_cast<unsigned>((total + kRows - 1) / kRows), static_cast<unsigned>(B));
    mla_decode_mma_kernel<<<grid, kThreads, kMmaSmem, s>>>(a);
  } else {
    const dim3 grid(nsplit, static_cast<unsigned>((total + kSRows - 1) / kSRows), static_cast<unsigned>(B));
    if (dt == DType::F32) {
      cudaFuncSetAttribute(mla_decode_simt_kernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSimtSmem));
      mla_decode_simt_kernel<float><<<grid, kSThreads, kSimtSmem, s>>>(a);
    } else {
      cudaFuncSetAttribute(mla_decode_simt_kernel<uint16_t>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSimtSmem));
      mla_decode_simt_kernel<uint16_t><<<grid, kSThreads, kSimtSmem, s>>>(a);
    }
  }
  if (nsplit > 1) {
    const dim3 grid(static_cast<unsigned>(total), static_cast<unsigned>(B));
    if (dt == DType::F32) mla_combine_kernel<float><<<grid, 128, 0, s>>>(a);
    else mla_combine_kernel<uint16_t><<<grid, 128, 0, s>>>(a);
  }
}

}  // namespace dsk::cuda
