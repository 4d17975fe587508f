// Device helpers of the expert-parallel kernels: bounded waits on peer counters, failure reporting,
// and warp copies of token rows to one or several destinations.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../../ptx/atomics_sys.h"
#include "../../ptx/ld_st.h"
#include "../../ptx/named_barrier.h"
#include "../../ptx/timer.h"
#include "common.cuh"
#include "ep.h"

namespace dsk::cuda {

static __device__ __forceinline__ uint64_t ep_min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static __device__ __forceinline__ uint64_t* ep_counter_ptr(const EpComm& c, int owner, int64_t region, int peer, int channel) {
  return reinterpret_cast<uint64_t*>(c.peers[owner] + ep_counter(region, c.g, peer, channel));
}

// How many pieces to cut each of n tokens into so that G warps get equal work (n * P a multiple of G)
// without pieces so small that a lane has fewer than 4 vectors of a piece in flight.
static __device__ __forceinline__ int ep_pieces(int n, int G, int64_t vecs) {
  int a = n, b = G;
  while (b) { const int t = a % b; a = b; b = t; }  // gcd
  const int want = G / a, cap = vecs >= 256 ? static_cast<int>(vecs / 128) : 1;
  return want < cap ? want : cap;
}

// The group has failed (another block timed out, or the host saw a rank die): report it once and stop.
static __device__ __forceinline__ bool ep_aborted(const EpComm& c) {
  uint32_t a = ptx::ld_relaxed_sys_u32(c.abort);
  if (a == 0) return false;
  diag_report(c.diag, kDiagEpAborted, int64_t(a) - 1, 0);  // dropped if a timeout was recorded first
  return true;
}

// A wait that ran out of time: the first failure names the peer; every block then sees the abort word.
static __device__ __forceinline__ void ep_fail(const EpComm& c, int32_t site, int peer, int64_t bound) {
  diag_report(c.diag, site, peer, bound);
  ptx::atom_cas_sys_u32(c.abort, 0u, static_cast<uint32_t>(peer + 1));
}

// Spins until *p >= target. False when the deadline passed (reported, naming `peer`) or the group failed.
static __device__ __noinline__ bool ep_wait_geq(const EpComm& c, const uint64_t* p, uint64_t target, int peer) {
  if (ptx::ld_acquire_sys_u64(p) >= target) return true;
  const uint64_t t0 = ptx::globaltimer_ns();
  for (uint32_t it = 1;; it++) {
    if (ptx::ld_acquire_sys_u64(p) >= target) return true;
    if ((it & 255) == 0) {
      if (ep_aborted(c)) return false;
      if (ptx::globaltimer_ns() - t0 > c.timeout_ns) {
        ep_fail(c, kDiagEpTimeout, peer, static_cast<int64_t>(c.timeout_ns / 1000000));
        return false;
      }
    }
  }
}

// Spins until *p > have; returns the value read, or 0 on failure (reported as above).
static __device__ __noinline__ uint64_t ep_wait_gt(const EpComm& c, const uint64_t* p, uint64_t have, int peer) {
  uint64_t v = ptx::ld_acquire_sys_u64(p);
  if (v > have) return v;
  const uint64_t t0 = ptx::globaltimer_ns();
  for (uint32_t it = 1;; it++) {
    v = ptx::ld_acquire_sys_u64(p);
    if (v > have) return v;
    if ((it & 255) == 0) {
      if (ep_aborted(c)) return 0;
      if (ptx::globaltimer_ns() - t0 > c.timeout_ns) {
        ep_fail(c, kDiagEpTimeout, peer, static_cast<int64_t>(c.timeout_ns / 1000000));
        return 0;
      }
    }
  }
}

// A warp's view of one token's destinations: lane k < K holds `row` (or -1); `mask` has a bit for every
// lane with a valid row, so the rows are visited in k order with shuffles instead of register arrays.
struct EpLaneRows {
  int row;
  uint32_t mask;
};
static __device__ __forceinline__ EpLaneRows ep_lane_rows(int row, int K, int lane) {
  EpLaneRows r;
  r.row = row;
  r.mask = __ballot_sync(0xffffffffu, lane < K && row >= 0);
  return r;
}

// A 16-byte load from memory nothing writes during the kernel (read-only path), or from a ring slot a
// peer rewrites (coherent path); neither allocates in L1.
template <bool kRing>
static __device__ __forceinline__ int4 ep_load(const int4* p) {
  return kRing ? ptx::ld_na_v4(p) : ptx::ld_nc_na_v4(p);
}

// Copies 16-byte vectors [v0, v1) of `src` to every row of `dst` (row stride in vectors), U loads in
// flight per lane; stores skip L1. kRing: `src` is a ring slot.
template <int U, bool kRing>
static __device__ __forceinline__ void ep_copy_rows(const int4* src, int4* dst, int64_t stride_v, const EpLaneRows& r, int64_t v0,
                                             int64_t v1, int lane) {
  for (int64_t vb = v0; vb < v1; vb += 32 * U) {  // warp-uniform: every lane takes part in the shuffles
    const int64_t v = vb + lane;
    int4 buf[U];
#pragma unroll
    for (int u = 0; u < U; u++)
      if (v + u * 32 < v1) buf[u] = ep_load<kRing>(src + v + u * 32);
    for (uint32_t m = r.mask; m; m &= m - 1) {
      const int row = __shfl_sync(0xffffffffu, r.row, __ffs(m) - 1);
      int4* d = dst + int64_t(row) * stride_v;
#pragma unroll
      for (int u = 0; u < U; u++)
        if (v + u * 32 < v1) ptx::st_na_v4(d + v + u * 32, buf[u]);
    }
  }
}

// Copies vectors [v0, v1) of `src` to `dst` (one destination, e.g. a ring slot on a peer).
template <int U>
static __device__ __forceinline__ void ep_copy_one(const int4* src, int4* dst, int64_t v0, int64_t v1, int lane) {
  for (int64_t v = v0 + lane; v < v1; v += 32 * U) {
    int4 buf[U];
#pragma unroll
    for (int u = 0; u < U; u++)
      if (v + u * 32 < v1) buf[u] = ptx::ld_nc_na_v4(src + v + u * 32);
#pragma unroll
    for (int u = 0; u < U; u++)
      if (v + u * 32 < v1) ptx::st_na_v4(dst + v + u * 32, buf[u]);
  }
}

// 8 bf16 values (one 16-byte vector) as f32.
static __device__ __forceinline__ void bf16x8_to_f32(const int4& v, float* f) {
  const uint32_t w[4] = {static_cast<uint32_t>(v.x), static_cast<uint32_t>(v.y), static_cast<uint32_t>(v.z), static_cast<uint32_t>(v.w)};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    f[2 * i] = bits_f32(w[i] << 16);
    f[2 * i + 1] = bits_f32(w[i] & 0xffff0000u);
  }
}
static __device__ __forceinline__ int4 f32_to_bf16x8(const float* f) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; i++) w[i] = uint32_t(f32_to_bf16(f[2 * i])) | (uint32_t(f32_to_bf16(f[2 * i + 1])) << 16);
  return make_int4(static_cast<int>(w[0]), static_cast<int>(w[1]), static_cast<int>(w[2]), static_cast<int>(w[3]));
}

// fp8 scales of one token (nscale floats) to each of its rows. kRing: `src` is a ring slot.
template <bool kRing>
static __device__ __forceinline__ void ep_copy_scales(const float* src, float* dst, int64_t nscale, const EpLaneRows& r, int lane) {
  for (uint32_t m = r.mask; m; m &= m - 1) {
    const int row = __shfl_sync(0xffffffffu, r.row, __ffs(m) - 1);
    for (int64_t q = lane; q < nscale; q += 32)
      ptx::st_na_f32(dst + int64_t(row) * nscale + q, kRing ? ptx::ld_na_f32(src + q) : ptx::ld_nc_na_f32(src + q));
  }
}

}  // namespace dsk::cuda
