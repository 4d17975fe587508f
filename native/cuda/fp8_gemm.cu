// FP8 block-scaled GEMMs: the dispatcher and the portable tiled kernel (sm_80+).
//
// Portable kernel: 64x64 output tile per block of 4 warps (2x2, 32x32 each), one 128-wide K block per
// step. fp8 e4m3 is widened to f16 exactly by bit placement (e4m3 bits shifted into an f16 are the value
// times 2^-8, subnormals included), so mma.sync m16n8k16 f16 x f16 -> f32 gives the fp32 partial product of
// each K block times 2^-16; that power of two folds into the promotion scale. The next K block's bytes
// are loaded into registers while the tensor cores work on the current one.
#include <climits>
#include <cstdlib>
#include <mutex>

#include "common.cuh"
#include "fp8_gemm.h"
#include "hopper/fp8_gemm_sm90.h"

namespace dsk::cuda {
namespace {

constexpr int kTileM = 64, kTileN = 64, kThreads = 128;
constexpr int kPitch = 128 + 8;  // halves per smem row: 272 B, so fragment reads hit 32 distinct banks

// Two fp8 e4m3 bytes (b0 at bits 0-7, b1 at bits 16-23) -> two f16 holding value * 2^-8.
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2_scaled(uint32_t y) {
  return ((y & 0x00800080u) << 8) | ((y & 0x007f007fu) << 7);
}

// 16 fp8 bytes -> 16 f16 (value * 2^-8) stored at dst (16-byte aligned).
__device__ __forceinline__ void widen16(const uint4& v, __half* dst) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
  uint32_t h[8];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    h[2 * i] = e4m3x2_to_f16x2_scaled(__byte_perm(w[i], 0, 0x4140));
    h[2 * i + 1] = e4m3x2_to_f16x2_scaled(__byte_perm(w[i], 0, 0x4342));
  }
  reinterpret_cast<uint4*>(dst)[0] = make_uint4(h[0], h[1], h[2], h[3]);
  reinterpret_cast<uint4*>(dst)[1] = make_uint4(h[4], h[5], h[6], h[7]);
}

__device__ __forceinline__ void mma_f16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

struct PortableSmem {
  __half a[kTileM][kPitch];
  __half b[kTileN][kPitch];
  float sa[kTileM];
  int32_t expert[kTileM];  // contiguous: the expert of each row of the tile (-1 = skip)
  int32_t next;
};

// grid (n tiles, m tiles, groups for the masked kind). Each block computes its 64x64 tile once per expert
// present among its rows (once in the normal and masked kinds, and for contiguous layouts padded to 64).
__global__ void __launch_bounds__(kThreads) fp8_gemm_portable_kernel(Fp8GemmProblem p) {
  __shared__ __align__(16) PortableSmem s;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wm = warp / 2, wn = warp % 2, g8 = lane / 4, t4 = lane % 4;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTileN;
  const int64_t m0_local = static_cast<int64_t>(blockIdx.y) * kTileM;
  const int64_t K = p.k, KB = p.k_blocks(), NB = p.n_blocks(), N = p.n;

  // Rows of this tile: [row0, row0 + row_count) of a/d, valid ones decided per kind.
  int64_t row0 = m0_local, row_count = 0, group = 0;
  if (p.kind == Fp8GemmKind::Masked) {
    group = blockIdx.z;
    int64_t valid = p.masked_m[group];
    if (!diag_check_index(blockIdx.x == 0 && blockIdx.y == 0 && tid == 0 ? p.diag : nullptr, kDiagMaskedM, valid, p.m + 1)) valid = 0;
    if (valid < 0 || valid > p.m) valid = 0;
    row0 = group * p.m + m0_local;
    row_count = valid - m0_local;
  } else {
    row_count = p.m - m0_local;
  }
  if (row_count <= 0) return;
  if (row_count > kTileM) row_count = kTileM;
  const int64_t rows_total = p.rows();

  if (p.kind == Fp8GemmKind::Contiguous && tid < kTileM) {
    int32_t e = -1;
    if (tid < row_count) {
      e = p.m_indices[row0 + tid];
      if (e != -1 && !diag_check_index(blockIdx.x == 0 ? p.diag : nullptr, kDiagGroupedGemmIndices, e, p.groups)) e = -1;
      if (e < -1 || e >= p.groups) e = -1;
    }
    s.expert[tid] = e;
  }

  int32_t prev = -1;
  for (;;) {
    // The expert of this pass: the smallest one above the previous pass among the tile's rows.
    if (p.kind == Fp8GemmKind::Contiguous) {
      if (tid == 0) s.next = INT_MAX;
      __syncthreads();
      if (tid < kTileM && s.expert[tid] > prev) atomicMin(&s.next, s.expert[tid]);
      __syncthreads();
      group = s.next;
      __syncthreads();
      if (group == INT_MAX) return;
    }
    const uint8_t* b = p.b + group * N * K;
    const float* sb = p.sb + group * NB * KB;

    float acc[2][4][4] = {};
    // Global -> register staging: 4 x 16 B of A and of B per thread per K block.
    uint4 ra[4], rb[4];
    auto load_stage = [&](int64_t kb) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int c = tid + i * kThreads, r = c / 8, ch = c % 8;
        const int64_t ar = row0 + r, bn = n0 + r;
        ra[i] = (r < row_count && ar < rows_total) ? *reinterpret_cast<const uint4*>(p.a + ar * K + kb * 128 + ch * 16) : make_uint4(0, 0, 0, 0);
        rb[i] = bn < N ? *reinterpret_cast<const uint4*>(b + bn * K + kb * 128 + ch * 16) : make_uint4(0, 0, 0, 0);
      }
    };
    load_stage(0);
    for (int64_t kb = 0; kb < KB; ++kb) {
      __syncthreads();  // the previous step's fragment reads are done
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int c = tid + i * kThreads, r = c / 8, ch = c % 8;
        widen16(ra[i], &s.a[r][ch * 16]);
        widen16(rb[i], &s.b[r][ch * 16]);
      }
      if (tid < kTileM) s.sa[tid] = (tid < row_count && row0 + tid < rows_total) ? p.sa[(row0 + tid) * KB + kb] : 0.0f;
      const float sbv = sb[(n0 / 128) * KB + kb];  // a 64-column tile lies in one 128-column scale block
      __syncthreads();
      if (kb + 1 < KB) load_stage(kb + 1);

      float part[2][4][4] = {};
#pragma unroll
      for (int kk = 0; kk < 128; kk += 16) {
        uint32_t af[2][4], bfr[4][2];
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
          const int r = wm * 32 + mt * 16 + g8;
          af[mt][0] = *reinterpret_cast<const uint32_t*>(&s.a[r][kk + 2 * t4]);
          af[mt][1] = *reinterpret_cast<const uint32_t*>(&s.a[r + 8][kk + 2 * t4]);
          af[mt][2] = *reinterpret_cast<const uint32_t*>(&s.a[r][kk + 8 + 2 * t4]);
          af[mt][3] = *reinterpret_cast<const uint32_t*>(&s.a[r + 8][kk + 8 + 2 * t4]);
        }
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
          const int c = wn * 32 + nt * 8 + g8;
          bfr[nt][0] = *reinterpret_cast<const uint32_t*>(&s.b[c][kk + 2 * t4]);
          bfr[nt][1] = *reinterpret_cast<const uint32_t*>(&s.b[c][kk + 8 + 2 * t4]);
        }
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
          for (int nt = 0; nt < 4; ++nt) mma_f16_16816(part[mt][nt], af[mt], bfr[nt][0], bfr[nt][1]);
      }
      // Promotion: the block's partial sum (times 2^-16 from the widening) scaled by sa*sb into fp32.
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        const float s_lo = s.sa[wm * 32 + mt * 16 + g8] * sbv * 65536.0f;
        const float s_hi = s.sa[wm * 32 + mt * 16 + g8 + 8] * sbv * 65536.0f;
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
          acc[mt][nt][0] += part[mt][nt][0] * s_lo;
          acc[mt][nt][1] += part[mt][nt][1] * s_lo;
          acc[mt][nt][2] += part[mt][nt][2] * s_hi;
          acc[mt][nt][3] += part[mt][nt][3] * s_hi;
        }
      }
    }

    // Epilogue: stage the bf16 tile in smem (reusing s.a), then 16-byte stores of the rows this pass owns.
    __syncthreads();
    uint16_t(*out)[kTileN + 8] = reinterpret_cast<uint16_t(*)[kTileN + 8]>(&s.a[0][0]);
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) {
        const int r = wm * 32 + mt * 16 + g8, c = wn * 32 + nt * 8 + 2 * t4;
        out[r][c] = f32_to_bf16(acc[mt][nt][0]);
        out[r][c + 1] = f32_to_bf16(acc[mt][nt][1]);
        out[r + 8][c] = f32_to_bf16(acc[mt][nt][2]);
        out[r + 8][c + 1] = f32_to_bf16(acc[mt][nt][3]);
      }
    __syncthreads();
    const bool vec_ok = (N % 8 == 0) && (reinterpret_cast<uintptr_t>(p.d) % 16 == 0);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int c = tid + i * kThreads, r = c / 8, ch = c % 8;
      if (r >= row_count) continue;
      if (p.kind == Fp8GemmKind::Contiguous && s.expert[r] != group) continue;
      const int64_t col = n0 + ch * 8;
      if (col >= N) continue;
      uint16_t* dst = p.d + (row0 + r) * N + col;
      if (vec_ok && col + 8 <= N) {
        *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(&out[r][ch * 8]);
      } else {
        for (int j = 0; j < 8 && col + j < N; ++j) dst[j] = out[r][ch * 8 + j];
      }
    }
    if (p.kind != Fp8GemmKind::Contiguous) return;
    prev = group;
  }
}

std::mutex g_config_mu;
std::string& forced_config() {
  static std::string name = [] { const char* v = std::getenv("DSK_FP8_GEMM_CONFIG"); return std::string(v ? v : ""); }();
  return name;
}

}  // namespace

void fp8_gemm_portable(const Fp8GemmProblem& p, Stream stream) {
  const int64_t m_tiles = (p.m + kTileM - 1) / kTileM, n_tiles = (p.n + kTileN - 1) / kTileN;
  const int64_t z = p.kind == Fp8GemmKind::Masked ? p.groups : 1;
  if (m_tiles == 0 || n_tiles == 0 || z == 0) return;
  dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(m_tiles), static_cast<unsigned>(z));
  fp8_gemm_portable_kernel<<<grid, kThreads, 0, to_cuda(stream)>>>(p);
}

std::vector<std::string> fp8_gemm_configs() {
  std::vector<std::string> names{"portable"};
  for (auto& n : sm90::config_names()) names.push_back(n);
  return names;
}

void fp8_gemm_force_config(const std::string& name) {
  std::lock_guard<std::mutex> l(g_config_mu);
  forced_config() = name;
}

std::string fp8_gemm_choice(const Fp8GemmProblem& p, const GpuTraits& gpu) {
  std::string forced;
  {
    std::lock_guard<std::mutex> l(g_config_mu);
    forced = forced_config();
  }
  if (forced == "portable") return forced;
  if (gpu.cc_major == 9 && gpu.cc_minor == 0 && sm90::supports(p)) {
    int cfg = forced.empty() ? sm90::pick_config(p, gpu.sm_count) : sm90::config_index(forced);
    if (cfg >= 0) return sm90::config_names()[sm90::resolve_config(p, cfg)];
  }
  return "portable";
}

void fp8_gemm(const Fp8GemmProblem& p, const GpuTraits& gpu, Stream stream) {
  if (p.m == 0 || p.n == 0 || p.groups == 0) return;
  const std::string choice = fp8_gemm_choice(p, gpu);
  if (choice != "portable") {
    sm90::run(p, sm90::config_index(choice), gpu.device, gpu.sm_count, to_cuda(stream));
    return;
  }
  fp8_gemm_portable(p, stream);
}

}  // namespace dsk::cuda
