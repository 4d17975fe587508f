// Microbenchmark: the BM 256 x BN 128 K loop of fp8_gemm_sm90.cu rebuilt one piece at a time, with no loads, to
// find which piece keeps the promotion from hiding behind the other warpgroup's WGMMAs (v15: the standalone
// two-wave loop with promotion reaches 100% of the tensor floor; the kernel without loads 89-91%). Levels:
//   0  2 math warpgroups x 2 waves (m64n128k32 x 4 each) into one partial, wait, promote; one stage (v15's form),
//      at the kernel's 384 threads and setmaxnreg 40 / 232 (the producer warpgroup idle)
//   1  + a 4-stage ring: each K block's descriptors from its stage
//   2  + full / empty barriers: a producer lane arms each stage (no loads), each math warp releases it twice
//        (own and "peer" barrier) after the K block's last wave
//   3  + scales: the K block's A-row and B scales read from shared memory, their products in the promotion
//   4  + the kernel's look-ahead: the next stage's barrier tested (and its scales read) while the last wave runs
//   5  + loads: the producer lane brings each stage's 48 KB (A 32 KB, B 16 KB) by bulk copies from an L2-resident
//        buffer (the shared-memory writes of the kernel's TMA loads; the data is not the GEMM's)
// Each level with and without the promotion. Prints cycles per K block per warpgroup against the floor (1024:
// 4 waves of 256 tensor cycles), min / median / max over CTAs, and CTA 0's K-block completion clocks per
// warpgroup. Built from the checkout's root: nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I. -o kloop
// bench/data/v16/kloop.cu (one CTA per SM: 197 KB smem). Run: `./kloop` (the levels, the split wave, the loads),
// `./kloop forms` (forms of level 4, the variant flags below), `./kloop trace` (per-wave clock stamps).
// bench/NOTES.md, "v16".
#include <algorithm>
#include <cstdio>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>
#include "ptx/mbarrier.h"
#include "ptx/setmaxnreg.h"
#include "ptx/wgmma.h"
#include "ptx/cluster.h"
using namespace dsk;

// A plain try_wait spin: the library's wait (a globaltimer watchdog that traps) made ptxas spill the promoting
// loops here (168-192 bytes), though not in the kernel.
__device__ __forceinline__ void spin_wait(uint32_t bar, uint32_t parity) {
  while (!ptx::mbarrier_try_wait_parity(bar, parity)) {
  }
}

// Variant flags (F): kDefer releases a stage after the next K block's wave-0 WGMMAs are issued instead of after its
// own last wave; kLocal arrives only on the CTA's own empty barrier (not also through the cluster-mapped address);
// kEarly works out the promotion's scale products before the wave's wait; kNoStamp drops CTA 0's clock stamps;
// kSplit runs each wave as two chains of 4 x m64n64k32 (columns 0-63 into pa, 64-127 into pb, the same 64 registers
// as the partial), so that one chain is promoted while the other runs (wait_group 1); every group retires within
// its K block (a group in flight across the loop's back-edge makes ptxas serialize the WGMMAs, C7514).
// kTrace: warp 0 of each math warpgroup stamps %clock into a shared ring at each wave's issue and after its wait
// (the last 8 K blocks are printed): the chain from a wave's completion to the next issue, per warpgroup.
// kBlockWait: the look-ahead waits for the next stage (no `landed` test and branch after the wait); kPeel: the last
// K block peeled off, so `next` is known at compile time in the loop; kLateRelease: the stage released after the last
// wave's promotion instead of before it.
constexpr int kDefer = 1, kLocal = 2, kEarly = 4, kNoStamp = 8, kSplit = 16, kTrace = 32, kBlockWait = 64, kPeel = 128,
              kLateRelease = 256;
constexpr int kStages = 4, kABytes = 256 * 128, kBBytes = 128 * 128;
constexpr int kOffB = kStages * kABytes, kOffS = kOffB + kStages * kBBytes, kOffBar = kOffS + 256 * 16 + 128;
constexpr int kOffRing = kOffBar + 2 * kStages * 8, kSmem = kOffRing + 2 * 8 * 4 * 4 + 1024;

__device__ __forceinline__ uint32_t saddr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
// cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [dst], [src], bytes, [bar];
__device__ __forceinline__ void bulk_load(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst), "l"(src),
               "r"(bytes), "r"(bar)
               : "memory");
}
// `next` known at run time (bool) or at compile time (std::true_type / std::false_type, kPeel).
__device__ __forceinline__ bool as_bool(bool b) { return b; }
template <bool B>
__device__ __forceinline__ constexpr bool as_bool(std::integral_constant<bool, B>) { return B; }

// @pred st.shared.u32 [addr], %clock;  (no branch)
__device__ __forceinline__ void stamp(uint32_t addr, bool pred) {
  asm volatile("{\n\t.reg .pred p;\n\t.reg .u32 c;\n\tsetp.ne.b32 p, %1, 0;\n\tmov.u32 c, %%clock;\n\t@p st.shared.u32 [%0], c;\n\t}" ::"r"(addr),
               "r"(static_cast<uint32_t>(pred))
               : "memory");
}
__device__ __forceinline__ uint32_t lds_u32(uint32_t a) {
  uint32_t v;
  asm volatile("ld.shared.u32 %0, [%1];" : "=r"(v) : "r"(a) : "memory");
  return v;
}
__device__ __forceinline__ float lds(uint32_t a) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(a) : "memory");
  return v;
}

template <int L, int F, bool PROMOTE>
__device__ __forceinline__ void math(uint64_t* out, int iters, float s_in, uint32_t smem, uint32_t wg) {
  const uint32_t lane = threadIdx.x % 32;
  const uint32_t bar_full = smem + kOffBar, bar_empty = bar_full + kStages * 8;
  const uint32_t w = (threadIdx.x % 128) / 32;
  const int row_lo = static_cast<int>(wg * 128 + w * 16 + lane / 4);
  const uint32_t peer_empty = ptx::map_shared_cluster(bar_empty, 0);
  const uint64_t desc_a0 = ptx::wgmma_desc_k128b(smem + wg * 128 * 128), desc_b0 = ptx::wgmma_desc_k128b(smem + kOffB);
  const uint32_t sm_s = smem + kOffS;
  float acc[2][64], part[64];
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[j][i] = 0.0f;
#pragma unroll
  for (int i = 0; i < 64; ++i) part[i] = 0.0f;
  uint32_t stage = 0, phase = 0, cur = 0, sa_next = 0;
  uint64_t da_next = desc_a0, db_next = desc_b0;
  float sa_lo0 = s_in, sa_hi0 = s_in, sb0 = 1.0f;
  auto locate = [&]() {
    cur = L >= 1 ? stage : 0;
    sa_next = sm_s + cur * 4;
    da_next = desc_a0 + cur * (kABytes >> 4);
    db_next = desc_b0 + cur * (kBBytes >> 4);
  };
  auto read_scales = [&]() {
    if (L >= 3) {
      sa_lo0 = lds(sa_next + row_lo * 16), sa_hi0 = lds(sa_next + (row_lo + 8) * 16);
      sb0 = lds(sm_s + 256 * 16 + cur * 4);
    }
    if (++stage == kStages) stage = 0, phase ^= 1;
  };
  auto release = [&](uint32_t st) {
    if (L >= 2) {
      ptx::mbarrier_arrive_if(bar_empty + st * 8, lane == 0);
      if (!(F & kLocal)) ptx::mbarrier_arrive_mapped_if(peer_empty + st * 8, lane == 0);
    }
  };
  uint32_t held = 0;  // kDefer: the stage whose release waits for the next K block's wave 0
  uint64_t* stamps = out + gridDim.x * 4;
  const uint32_t ring = smem + kOffRing + wg * 8 * 4 * 4;
  const bool tracer = (threadIdx.x % 128) == 0;
  locate();
  if (L >= 2) spin_wait(bar_full + stage * 8, phase);
  read_scales();
  const uint64_t t0 = clock64();
  auto body = [&](int kb, auto next_c) {
    const bool next = as_bool(next_c);
    const uint32_t st = cur, sa_stage = sa_next;
    const uint64_t da = da_next, db = db_next;
    const float cb0 = sb0;
    float sa_lo[2] = {sa_lo0, 0.0f}, sa_hi[2] = {sa_hi0, 0.0f};
    bool landed = false;
    float s_lo[2], s_hi[2];
    if constexpr ((F & kSplit) != 0) {
      float* pa = &part[0];
      float* pb = &part[32];
      auto chain = [&](float* P, uint64_t a, uint64_t b) {
#pragma unroll
        for (int i = 0; i < 32; ++i) ptx::wgmma_fence_operand(P[i]);
        ptx::wgmma_fence();
#pragma unroll
        for (int k = 0; k < 4; ++k) ptx::WgmmaE4M3<64>::mma(*reinterpret_cast<float(*)[32]>(P), a + 2 * k, b + 2 * k, k > 0);
        ptx::wgmma_commit();
#pragma unroll
        for (int i = 0; i < 32; ++i) ptx::wgmma_fence_operand(P[i]);
      };
      auto promote_half = [&](float* A, float* P, float lo, float hi) {
#pragma unroll
        for (int i = 0; i < 32; ++i) ptx::wgmma_fence_operand(P[i]);
        if (PROMOTE) {
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            A[4 * i + 0] += P[4 * i + 0] * lo;
            A[4 * i + 1] += P[4 * i + 1] * lo;
            A[4 * i + 2] += P[4 * i + 2] * hi;
            A[4 * i + 3] += P[4 * i + 3] * hi;
          }
        } else if (s_in == 12345.0f) {
          float t = lo + hi;
#pragma unroll
          for (int i = 0; i < 32; ++i) t += P[i];
          out[threadIdx.x] = static_cast<uint64_t>(t);
        }
      };
      const uint64_t da1 = da + (64 * 128 >> 4), db_hi = db + (64 * 128 >> 4);
      s_lo[0] = sa_lo[0] * cb0, s_hi[0] = sa_hi[0] * cb0;
      chain(pa, da, db);
      chain(pb, da, db_hi);
      if (L >= 3) sa_lo[1] = lds(sa_stage + (row_lo + 64) * 16), sa_hi[1] = lds(sa_stage + (row_lo + 72) * 16);
      else sa_lo[1] = s_in, sa_hi[1] = s_in;
      ptx::wgmma_wait<1>();
      promote_half(&acc[0][0], pa, s_lo[0], s_hi[0]);
      chain(pa, da1, db);
      ptx::wgmma_wait<1>();
      promote_half(&acc[0][32], pb, s_lo[0], s_hi[0]);
      chain(pb, da1, db_hi);
      s_lo[1] = sa_lo[1] * cb0, s_hi[1] = sa_hi[1] * cb0;
      if (L >= 4 && next) {
        locate();
        landed = ptx::mbarrier_test_wait_parity(bar_full + stage * 8, phase);
        if (landed) read_scales();
      }
      ptx::wgmma_wait<1>();
      promote_half(&acc[1][0], pa, s_lo[1], s_hi[1]);
      ptx::wgmma_wait<0>();
      release(st);
      if (next && !landed) {
        if (L < 4) locate();
        if (L >= 2) spin_wait(bar_full + stage * 8, phase);
        read_scales();
      }
      promote_half(&acc[1][32], pb, s_lo[1], s_hi[1]);
    } else {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      if (j > 0) {
        if (L >= 3) sa_lo[1] = lds(sa_stage + (row_lo + 64) * 16), sa_hi[1] = lds(sa_stage + (row_lo + 72) * 16);
        else sa_lo[1] = s_in, sa_hi[1] = s_in;
      }
#pragma unroll
      for (int i = 0; i < 64; ++i) ptx::wgmma_fence_operand(part[i]);
      if (F & kTrace) stamp(ring + (((kb & 7) * 2 + j) * 2 + 0) * 4, tracer);
      ptx::wgmma_fence();
#pragma unroll
      for (int k = 0; k < 4; ++k) ptx::WgmmaE4M3<128>::mma(part, da + j * (64 * 128 >> 4) + 2 * k, db + 2 * k, k > 0);
      ptx::wgmma_commit();
#pragma unroll
      for (int i = 0; i < 64; ++i) ptx::wgmma_fence_operand(part[i]);
      if ((F & kDefer) && j == 0 && kb > 0) release(held);
      if ((F & kEarly) && PROMOTE) s_lo[j] = sa_lo[j] * cb0, s_hi[j] = sa_hi[j] * cb0;
      if (L >= 4 && j == 1 && next) {
        locate();
        if (F & kBlockWait) {
          spin_wait(bar_full + stage * 8, phase);
          landed = true;
        } else {
          landed = ptx::mbarrier_test_wait_parity(bar_full + stage * 8, phase);
        }
        if (landed) read_scales();
      }
      ptx::wgmma_wait<0>();
#pragma unroll
      for (int i = 0; i < 64; ++i) ptx::wgmma_fence_operand(part[i]);
      if (F & kTrace) stamp(ring + (((kb & 7) * 2 + j) * 2 + 1) * 4, tracer);
      if (j == 1) {
        if (F & kDefer) held = st;
        else if (!(F & kLateRelease)) release(st);
        if (next && !landed) {
          if (L < 4) locate();
          if (L >= 2) spin_wait(bar_full + stage * 8, phase);
          read_scales();
        }
        if (!(F & kNoStamp) && blockIdx.x == 0 && (threadIdx.x % 128) == 0 && kb >= 100 && kb < 112) stamps[wg * 16 + kb - 100] = clock64();
      }
      if (PROMOTE) {
        if (!(F & kEarly)) s_lo[j] = sa_lo[j] * cb0, s_hi[j] = sa_hi[j] * cb0;
#pragma unroll
        for (int i = 0; i < 16; ++i) {
          acc[j][4 * i + 0] += part[4 * i + 0] * s_lo[j];
          acc[j][4 * i + 1] += part[4 * i + 1] * s_lo[j];
          acc[j][4 * i + 2] += part[4 * i + 2] * s_hi[j];
          acc[j][4 * i + 3] += part[4 * i + 3] * s_hi[j];
        }
        if ((F & kLateRelease) && j == 1) release(st);
      } else if (s_in == 12345.0f) {  // never at run time: keeps every wave's results live for ptxas
        float t = sa_lo[j] + sa_hi[j] + cb0;
#pragma unroll
        for (int i = 0; i < 64; ++i) t += part[i];
        out[threadIdx.x] = static_cast<uint64_t>(t);
      }
    }
    }
  };
  if constexpr ((F & kPeel) != 0) {
    for (int kb = 0; kb < iters - 1; ++kb) body(kb, std::true_type{});
    body(iters - 1, std::false_type{});
  } else {
    for (int kb = 0; kb < iters; ++kb) body(kb, kb + 1 < iters);
  }
  const uint64_t t1 = clock64();
  if (threadIdx.x % 128 == 0) out[blockIdx.x * 4 + wg] = t1 - t0;
  if ((F & kTrace) && blockIdx.x == 0 && threadIdx.x % 128 < 32)  // the ring: [kb & 7][wave][issue, done]
    out[gridDim.x * 4 + 64 + wg * 32 + threadIdx.x % 32] = lds_u32(ring + (threadIdx.x % 32) * 4);
  if (s_in == 12345.0f) {
    float t = 0.0f;
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int i = 0; i < 64; ++i) t += acc[j][i];
    out[threadIdx.x] = static_cast<uint64_t>(t);
  }
}

template <int L, int F, bool PROMOTE>
__global__ void __launch_bounds__(384, 1) kloop(uint64_t* out, int iters, float s_in, const uint8_t* src) {
  extern __shared__ __align__(1024) uint8_t raw[];
  const uint32_t smem = (saddr(raw) + 1023u) & ~1023u;
  uint8_t* base = raw + (smem - saddr(raw));
  const uint32_t wg = __shfl_sync(0xffffffffu, threadIdx.x / 128, 0);
  constexpr int nthreads = 384;
  for (int i = threadIdx.x; i < kOffS; i += nthreads) base[i] = static_cast<uint8_t>((i * 37) & 0x3f);  // small e4m3
  for (int i = threadIdx.x; i < 256 * 4 + 32; i += nthreads) reinterpret_cast<float*>(base + kOffS)[i] = 1.0f;
  const uint32_t bar_full = smem + kOffBar, bar_empty = bar_full + kStages * 8;
  if (threadIdx.x == 0)
    for (int s = 0; s < kStages; ++s) ptx::mbarrier_init(bar_full + 8 * s, 1), ptx::mbarrier_init(bar_empty + 8 * s, F & kLocal ? 8 : 16);
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  __syncthreads();
  if (wg == 2) {  // the producer warpgroup
    ptx::setmaxnreg_dec<40>();
    if (L >= 2 && threadIdx.x == 256) {
      uint32_t stage = 0, phase = 0;
      for (int kb = 0; kb < iters; ++kb) {
        spin_wait(bar_empty + stage * 8, phase ^ 1);
        if (L >= 5) {
          const uint8_t* from = src + static_cast<size_t>((blockIdx.x * 7 + kb) % 64) * (kABytes + kBBytes);
          ptx::mbarrier_arrive_expect_tx(bar_full + stage * 8, kABytes + kBBytes);
          bulk_load(smem + stage * kABytes, from, kABytes, bar_full + stage * 8);
          bulk_load(smem + kOffB + stage * kBBytes, from + kABytes, kBBytes, bar_full + stage * 8);
        } else {
          ptx::mbarrier_arrive_if(bar_full + stage * 8, true);
        }
        if (++stage == kStages) stage = 0, phase ^= 1;
      }
    }
  } else {
    ptx::setmaxnreg_inc<232>();
    math<L, F, PROMOTE>(out, iters, s_in, smem, wg);
  }
  // a tail after the role branches: ptxas keeps setmaxnreg's raised budget in the math branch (as in the kernel)
  asm volatile("bar.sync 1, %0;" ::"r"(nthreads) : "memory");
}

template <int L, int F, bool PROMOTE>
void run(const char* name) {
  auto kern = kloop<L, F, PROMOTE>;
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  const int iters = 4000;
  uint64_t* d;
  const size_t n = sms * 4 + 64 + 64;
  cudaMalloc(&d, n * 8);
  cudaMemset(d, 0, n * 8);
  cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  uint8_t* src;  // 64 stages' worth of small e4m3 values (0x30 = 0.5): 3 MB, resident in L2
  cudaMalloc(&src, 64 * (kABytes + kBBytes));
  cudaMemset(src, 0x30, 64 * (kABytes + kBBytes));
  kern<<<sms, 384, kSmem>>>(d, 100, 1.0f, src);  // warm-up
  kern<<<sms, 384, kSmem>>>(d, iters, 1.0f, src);
  const cudaError_t e = cudaDeviceSynchronize();
  std::vector<uint64_t> h(n);
  cudaMemcpy(h.data(), d, n * 8, cudaMemcpyDeviceToHost);
  std::vector<double> per_cta;
  for (int b = 0; b < sms; ++b) per_cta.push_back(0.5 * (h[b * 4] + h[b * 4 + 1]) / iters);
  std::sort(per_cta.begin(), per_cta.end());
  const double med = per_cta[sms / 2];
  std::printf("L%d F%d %-10s %-40s cycles per K block: min %.1f median %.1f max %.1f, floor 1024: %.1f%% %s\n", L, F,
              PROMOTE ? "promote" : "no-promote", name, per_cta.front(), med, per_cta.back(), 102400.0 / med,
              e == cudaSuccess ? "" : cudaGetErrorString(e));
  const uint64_t* st = h.data() + sms * 4;
  for (int g = 0; g < 2; ++g) {
    std::printf("   CTA 0 wg%d K-block ends (from wg0's first):", g);
    for (int i = 0; i < 12; ++i) std::printf(" %lld", static_cast<long long>(st[g * 16 + i] - st[0]));
    std::printf("\n");
  }
  if (F & kTrace) {  // K blocks iters-8 .. iters-1: per warpgroup, each wave's issue and done, from the first issue
    const uint64_t* r = h.data() + sms * 4 + 64;
    const int first = iters % 8;  // ring index of K block iters - 8
    const uint32_t t00 = static_cast<uint32_t>(std::min(r[first * 4], r[32 + first * 4]));
    for (int g = 0; g < 2; ++g) {
      std::printf("   wg%d (issue w0, done w0, issue w1, done w1):", g);
      for (int q = 0; q < 8; ++q) {
        const int i = (first + q) % 8;
        std::printf(" |");
        for (int e = 0; e < 4; ++e) std::printf(" %d", static_cast<int>(static_cast<uint32_t>(r[g * 32 + i * 4 + e]) - t00));
      }
      std::printf("\n");
    }
  }
  cudaFree(d);
  cudaFree(src);
}

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "levels";
  if (what == "trace") {
    run<0, kNoStamp | kTrace, true>("trace: one stage");
    run<1, kNoStamp | kTrace, true>("trace: + 4-stage ring");
    run<2, kNoStamp | kTrace, true>("trace: + barriers");
    run<4, kNoStamp | kTrace, true>("trace: kernel's loop");
    run<4, kNoStamp | kTrace, false>("trace: kernel's loop");
    return 0;
  }
  if (what == "forms") {  // forms of the kernel's loop (level 4), with the promotion, no stamps
    constexpr int B = kNoStamp;
    run<0, B, true>("one stage (reference)");
    run<4, B, true>("kernel's loop");
    run<4, B | kBlockWait, true>("blocking look-ahead");
    run<4, B | kPeel, true>("last K block peeled");
    run<4, B | kBlockWait | kPeel, true>("blocking + peeled");
    run<4, B | kLateRelease, true>("late release");
    run<4, B | kBlockWait | kPeel | kLateRelease, true>("blocking + peeled + late release");
    run<4, B | kBlockWait | kPeel | kLocal, true>("blocking + peeled + local release");
    run<4, B | kBlockWait | kPeel | kEarly, true>("blocking + peeled + early products");
    run<4, B | kBlockWait | kPeel | kDefer, true>("blocking + peeled + deferred release");
    run<4, B | kBlockWait | kPeel | kTrace, true>("blocking + peeled, traced");
    return 0;
  }
  run<0, 0, true>("one stage");
  run<1, 0, true>("+ 4-stage ring");
  run<2, 0, true>("+ full/empty barriers");
  run<3, 0, true>("+ scales from smem");
  run<4, 0, false>("+ look-ahead (the kernel's loop)");
  run<4, 0, true>("+ look-ahead (the kernel's loop)");
  run<4, kNoStamp, true>("kernel's loop, no stamps");
  run<5, 0, false>("+ loads");
  run<5, 0, true>("+ loads");
  run<5, kNoStamp, true>("+ loads, no stamps");
  run<5, kNoStamp | kLocal, true>("+ loads, no stamps, local release");
  run<0, kSplit, true>("split: one stage");
  run<2, kSplit, true>("split: + barriers");
  run<4, kSplit, false>("split: kernel's loop");
  run<4, kSplit, true>("split: kernel's loop");
  run<4, kSplit | kNoStamp, true>("split: kernel's loop, no stamps");
  run<5, kSplit, false>("split: + loads");
  run<5, kSplit, true>("split: + loads");
  run<5, kSplit | kNoStamp, true>("split: + loads, no stamps");
  return 0;
}
