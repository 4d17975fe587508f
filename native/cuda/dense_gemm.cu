// Dense NT GEMM, out[M, N] = a[M, K] · b[N, K]^T with f32 accumulation. Three kernels:
//  - skinny (M <= 8 for bf16, M <= 32 for f32, in chunks of 8 rows): one warp per pair of output columns
//    streams those rows of b once with 16-byte loads while the few rows of a come from L1; this is the
//    decode-time lm_head / router case, bound by reading b.
//  - bf16 tensor cores (mma.sync m16n8k16, f32 accumulators): 64x128 block tiles, 32-deep K steps through a
//    3-stage cp.async pipeline into XOR-swizzled shared memory read with ldmatrix. Portable sm80/sm90.
//  - f32 (no tensor cores, to keep full f32 precision): 64x64 tiles, 16-deep K steps, 4x4 outputs per thread.
// Edges (M, N, K not multiples of the tiles) are zero-filled on load and masked on store.
#include "common.cuh"
#include "dense_gemm.h"
#include "vec.cuh"

namespace dsk::cuda {

namespace {

__device__ __forceinline__ void store_pair(void* out, DType dt, int64_t N, int64_t r, int64_t c, int64_t M, float x, float y) {
  if (r >= M) return;
  if (c < N) store_f32(out, dt, r * N + c, x);
  if (c + 1 < N) store_f32(out, dt, r * N + c + 1, y);
}

// ---------------- skinny: few rows of a ----------------

constexpr int kSkinnyRows = 8;    // rows of a per block (blockIdx.y picks the chunk)
constexpr int kSkinnyCols = 2;    // output columns per warp
constexpr int kSkinnyWarps = 8;

__global__ void __launch_bounds__(kSkinnyWarps * 32) gemm_skinny_kernel(const void* a, int64_t lda, const void* b, int64_t ldb,
                                                                         DType dt, int64_t M, int64_t N, int64_t K, bool vec,
                                                                         void* out, DType out_dt) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t n0 = (static_cast<int64_t>(blockIdx.x) * kSkinnyWarps + warp) * kSkinnyCols;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kSkinnyRows;
  if (n0 >= N) return;
  const int rows = static_cast<int>(min64(kSkinnyRows, M - m0));
  float acc[kSkinnyRows][kSkinnyCols];
#pragma unroll
  for (int i = 0; i < kSkinnyRows; ++i)
#pragma unroll
    for (int j = 0; j < kSkinnyCols; ++j) acc[i][j] = 0.0f;
  for (int64_t k = static_cast<int64_t>(lane) * 8; k < K; k += 32 * 8) {
    const int cnt = static_cast<int>(min64(8, K - k));
    float bv[kSkinnyCols][8];
#pragma unroll
    for (int j = 0; j < kSkinnyCols; ++j) {
      if (n0 + j < N) load_vec<8>(b, dt, (n0 + j) * ldb + k, cnt, vec, bv[j]);
      else
#pragma unroll
        for (int e = 0; e < 8; ++e) bv[j][e] = 0.0f;
    }
#pragma unroll
    for (int i = 0; i < kSkinnyRows; ++i) {
      if (i < rows) {
        float av[8];
        load_vec<8>(a, dt, (m0 + i) * lda + k, cnt, vec, av);
#pragma unroll
        for (int j = 0; j < kSkinnyCols; ++j)
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[i][j] = fmaf(av[e], bv[j][e], acc[i][j]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kSkinnyRows; ++i)
#pragma unroll
    for (int j = 0; j < kSkinnyCols; ++j) {
      float v = acc[i][j];
#pragma unroll
      for (int off = 16; off >= 1; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
      acc[i][j] = v;
    }
  if (lane < rows * kSkinnyCols) {
    // Lane (i * kSkinnyCols + j) stores output (m0 + i, n0 + j); pick it out of the unrolled registers.
    float v = 0.0f;
#pragma unroll
    for (int i = 0; i < kSkinnyRows; ++i)
#pragma unroll
      for (int j = 0; j < kSkinnyCols; ++j)
        if (lane == i * kSkinnyCols + j) v = acc[i][j];
    const int i = lane / kSkinnyCols, j = lane % kSkinnyCols;
    if (n0 + j < N) store_f32(out, out_dt, (m0 + i) * N + n0 + j, v);
  }
}

// ---------------- bf16 tensor cores ----------------

constexpr int kBM = 64, kBN = 128, kBK = 32, kStages = 3, kMmaThreads = 128;
// Shared memory rows are kBK bf16 = 64 bytes = 4 chunks of 16 bytes; chunk c of row r is stored at chunk
// c ^ ((r >> 1) & 3), so the 8 rows an ldmatrix reads fall in 8 different bank groups.
__device__ __forceinline__ int swz(int r, int c) { return r * (kBK / 8) + (c ^ ((r >> 1) & 3)); }

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}

__device__ __forceinline__ void mma_bf16(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Copies rows [r0, r0 + ROWS) x k [k0, k0 + kBK) of a row-major bf16 matrix into a swizzled stage; rows
// past `rows` and k past K are zero. async: 16-byte cp.async (needs K % 8 == 0 and 16-byte aligned rows);
// otherwise element loads.
template <int ROWS>
__device__ __forceinline__ void load_tile(uint4* stage, const uint16_t* m, int64_t ld, int64_t r0, int64_t rows, int64_t k0,
                                          int64_t K, bool async) {
  constexpr int chunks = ROWS * kBK / 8;
#pragma unroll
  for (int i = 0; i < chunks / kMmaThreads; ++i) {
    int idx = threadIdx.x + i * kMmaThreads, r = idx / (kBK / 8), c = idx % (kBK / 8);
    int64_t gr = r0 + r, gk = k0 + c * 8;
    uint4* dst = stage + swz(r, c);
    if (async) {
      bool valid = gr < rows && gk < K;
      cp_async16(smem_addr(dst), valid ? m + gr * ld + gk : m, valid);
    } else {
      uint16_t v[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) v[e] = (gr < rows && gk + e < K) ? m[gr * ld + gk + e] : 0;
      *dst = make_uint4(v[0] | (uint32_t(v[1]) << 16), v[2] | (uint32_t(v[3]) << 16), v[4] | (uint32_t(v[5]) << 16),
                        v[6] | (uint32_t(v[7]) << 16));
    }
  }
}

__global__ void __launch_bounds__(kMmaThreads) gemm_bf16_mma_kernel(const uint16_t* a, int64_t lda, const uint16_t* b, int64_t ldb,
                                                                     int64_t M, int64_t N, int64_t K, bool async, void* out,
                                                                     DType out_dt) {
  __shared__ uint4 sA[kStages][kBM * kBK / 8];
  __shared__ uint4 sB[kStages][kBN * kBK / 8];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wm = warp >> 1, wn = warp & 1;  // warp tile: rows wm*32 .. +32, cols wn*64 .. +64
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kBM, n0 = static_cast<int64_t>(blockIdx.x) * kBN;
  const int KT = static_cast<int>((K + kBK - 1) / kBK);

  float acc[2][8][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < KT) {
      load_tile<kBM>(sA[s], a, lda, m0, M, int64_t(s) * kBK, K, async);
      load_tile<kBN>(sB[s], b, ldb, n0, N, int64_t(s) * kBK, K, async);
    }
    cp_async_commit();
  }

  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();
    const int nk = kt + kStages - 1;
    if (nk < KT) {
      load_tile<kBM>(sA[nk % kStages], a, lda, m0, M, int64_t(nk) * kBK, K, async);
      load_tile<kBN>(sB[nk % kStages], b, ldb, n0, N, int64_t(nk) * kBK, K, async);
    }
    cp_async_commit();
    const uint4* tA = sA[kt % kStages];
    const uint4* tB = sB[kt % kStages];
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ++ks) {
      uint32_t af[2][4];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        int r = wm * 32 + i * 16 + (lane & 15), c = ks * 2 + (lane >> 4);
        ldmatrix_x4(smem_addr(tA + swz(r, c)), af[i][0], af[i][1], af[i][2], af[i][3]);
      }
#pragma unroll
      for (int jp = 0; jp < 4; ++jp) {  // pairs of n8 tiles
        int r = wn * 64 + jp * 16 + ((lane >> 4) << 3) + (lane & 7), c = ks * 2 + ((lane >> 3) & 1);
        uint32_t b0, b1, b2, b3;
        ldmatrix_x4(smem_addr(tB + swz(r, c)), b0, b1, b2, b3);
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          mma_bf16(acc[i][2 * jp], af[i], b0, b1);
          mma_bf16(acc[i][2 * jp + 1], af[i], b2, b3);
        }
      }
    }
  }
  cp_async_wait<0>();

#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      int64_t r = m0 + wm * 32 + i * 16 + (lane >> 2), c = n0 + wn * 64 + j * 8 + (lane & 3) * 2;
      store_pair(out, out_dt, N, r, c, M, acc[i][j][0], acc[i][j][1]);
      store_pair(out, out_dt, N, r + 8, c, M, acc[i][j][2], acc[i][j][3]);
    }
}

// ---------------- f32 ----------------

constexpr int kFBM = 64, kFBN = 64, kFBK = 16, kFThreads = 256;

__device__ __forceinline__ void load_f32_tile(float (*s)[kFBM + 4], const float* m, int64_t ld, int64_t r0, int64_t rows,
                                              int64_t k0, int64_t K, bool vec) {
  // 64 rows x 16 k = 256 groups of 4 k; stored transposed (k-major) for the 4x4 outer products.
  int r = threadIdx.x >> 2, c = (threadIdx.x & 3) * 4;
  int64_t gr = r0 + r, gk = k0 + c;
  float v[4];
  if (gr < rows) load_vec<4>(m, DType::F32, gr * ld + gk, static_cast<int>(max64(0, min64(4, K - gk))), vec, v);
  else v[0] = v[1] = v[2] = v[3] = 0.0f;
#pragma unroll
  for (int e = 0; e < 4; ++e) s[c + e][r] = v[e];
}

__global__ void __launch_bounds__(kFThreads) gemm_f32_kernel(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t M,
                                                              int64_t N, int64_t K, bool vec, void* out, DType out_dt) {
  __shared__ __align__(16) float sA[kFBK][kFBM + 4];
  __shared__ __align__(16) float sB[kFBK][kFBN + 4];
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kFBM, n0 = static_cast<int64_t>(blockIdx.x) * kFBN;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kFBK) {
    load_f32_tile(sA, a, lda, m0, M, k0, K, vec);
    load_f32_tile(sB, b, ldb, n0, N, k0, K, vec);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kFBK; ++k) {
      float4 av = *reinterpret_cast<const float4*>(&sA[k][ty * 4]);
      float4 bv = *reinterpret_cast<const float4*>(&sB[k][tx * 4]);
      float ar[4] = {av.x, av.y, av.z, av.w}, br[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; j += 2) store_pair(out, out_dt, N, m0 + ty * 4 + i, n0 + tx * 4 + j, M, acc[i][j], acc[i][j + 1]);
}

}  // namespace

void gemm_nt(const void* a, int64_t lda, const void* b, int64_t ldb, DType in_dt, int64_t M, int64_t N, int64_t K, void* out,
             DType out_dt, Stream stream) {
  if (M == 0 || N == 0) return;
  cudaStream_t s = to_cuda(stream);
  const bool bf16 = in_dt == DType::BF16;
  if (M <= (bf16 ? 8 : 32)) {
    bool vec = vec_aligned(a, in_dt, lda, 8) && vec_aligned(b, in_dt, ldb, 8);
    dim3 grid(static_cast<unsigned>((N + kSkinnyWarps * kSkinnyCols - 1) / (kSkinnyWarps * kSkinnyCols)),
              static_cast<unsigned>((M + kSkinnyRows - 1) / kSkinnyRows));
    gemm_skinny_kernel<<<grid, kSkinnyWarps * 32, 0, s>>>(a, lda, b, ldb, in_dt, M, N, K, vec, out, out_dt);
    return;
  }
  if (bf16) {
    bool async = K % 8 == 0 && vec_aligned(a, in_dt, lda, 8) && vec_aligned(b, in_dt, ldb, 8);
    dim3 grid(static_cast<unsigned>((N + kBN - 1) / kBN), static_cast<unsigned>((M + kBM - 1) / kBM));
    gemm_bf16_mma_kernel<<<grid, kMmaThreads, 0, s>>>(static_cast<const uint16_t*>(a), lda, static_cast<const uint16_t*>(b), ldb, M,
                                                      N, K, async, out, out_dt);
    return;
  }
  bool vec = vec_aligned(a, in_dt, lda, 4) && vec_aligned(b, in_dt, ldb, 4);
  dim3 grid(static_cast<unsigned>((N + kFBN - 1) / kFBN), static_cast<unsigned>((M + kFBM - 1) / kFBM));
  gemm_f32_kernel<<<grid, kFThreads, 0, s>>>(static_cast<const float*>(a), lda, static_cast<const float*>(b), ldb, M, N, K, vec,
                                             out, out_dt);
}

}  // namespace dsk::cuda
