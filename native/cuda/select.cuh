// Top-k selection over one row, shared by topk and sample, by the CTAs of a RowGroup (row_group.cuh: one
// block, or a cluster whose CTAs each take a slice). Elements are ordered by their 32-bit order key
// (native/math/order_key.h) with ties to the lower index, i.e. by the composite (key << 32) | ~index. A
// 4-pass MSB radix select (8-bit digits; each CTA histograms its slice in shared memory with warp-aggregated
// atomics, the group adds the CTAs' histograms) finds the key of the k-th element and how many of its ties
// to keep; one more pass collects the winners into CTA 0 (ties taken in index order by a block scan, each
// CTA starting after the ties of the slices before it), and a bitonic sort in CTA 0's shared memory orders
// them. O(n / CTAs) per pass, independent of k; k is at most kCap.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "row_group.cuh"

namespace dsk::cuda {

__device__ __forceinline__ uint64_t composite_key(uint32_t key, int64_t i) {
  return (static_cast<uint64_t>(key) << 32) | (0xffffffffu - static_cast<uint32_t>(i));
}
__device__ __forceinline__ int64_t composite_index(uint64_t c) { return 0xffffffffu - static_cast<uint32_t>(c); }
__device__ __forceinline__ uint32_t composite_order_key(uint64_t c) { return static_cast<uint32_t>(c >> 32); }

template <int kThreads, int kCap>
struct SelectSmem {
  static_assert((kCap & (kCap - 1)) == 0, "kCap must be a power of two");
  uint64_t sel[kCap];  // CTA 0: the selected composites, sorted descending
  int hist[2][256];    // this CTA's slice, alternate passes (the group reads the previous pass's meanwhile)
  int warp_counts[kThreads / 32];
  int found_bucket, found_above, clamped_k;
  int eq_local;   // eligible elements equal to the threshold key in this CTA's slice
  int sel_count;  // CTA 0: winners above the threshold collected so far
};

// The k-th largest eligible element, found by the radix passes: its key, how many elements equal to it
// are kept (the lowest indices first), and k clamped to the number of eligible elements (0: none).
struct Threshold {
  uint32_t key;
  int take_eq;
  int k;
};

// One block streams a whole row (up to a 129280-token vocabulary), so a pass is bound by how many loads
// each thread has in flight, not by bandwidth: every pass first loads kSelectUnroll tiles of keys (the
// loads issue back to back), then processes the tiles in index order.
constexpr int kSelectUnroll = 4;

// Calls use(i, key, ok) for i = lo .. hi-1 in index order (i past hi: ok false), thread tid taking
// i = lo + tile * kThreads + tid; the keys of kSelectUnroll tiles are loaded before any is used.
template <int kThreads, class KeyFn, class UseFn>
__device__ __forceinline__ void for_each_key(int64_t lo, int64_t hi, KeyFn& key_of, UseFn&& use) {
  for (int64_t base = lo; base < hi; base += static_cast<int64_t>(kThreads) * kSelectUnroll) {
    uint32_t keys[kSelectUnroll];
    bool oks[kSelectUnroll];
#pragma unroll
    for (int u = 0; u < kSelectUnroll; ++u) {
      const int64_t i = base + static_cast<int64_t>(u) * kThreads + threadIdx.x;
      keys[u] = 0;
      oks[u] = i < hi && key_of(i, keys[u]);
    }
#pragma unroll
    for (int u = 0; u < kSelectUnroll; ++u) use(base + static_cast<int64_t>(u) * kThreads + threadIdx.x, keys[u], oks[u]);
  }
}

// Every thread of every CTA of the group must call these, with the same arguments. key_of(i, key) sets the
// order key of element i and returns whether it takes part. k <= kCap for group_select_top.
template <int kThreads, int kCap, class KeyFn>
__device__ Threshold group_radix_threshold(const RowGroup& g, int k, KeyFn&& key_of, SelectSmem<kThreads, kCap>& sm) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  uint32_t prefix = 0, mask = 0;
  int remaining = k;
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 24 - 8 * pass;
    int* hist = sm.hist[pass & 1];
    for (int b = tid; b < 256; b += kThreads) hist[b] = 0;
    __syncthreads();
    for_each_key<kThreads>(g.lo, g.hi, key_of, [&](int64_t, uint32_t key, bool ok) {
      ok = ok && (key & mask) == prefix;
      unsigned digit = ok ? (key >> shift) & 255u : 256u;
      unsigned peers = __match_any_sync(0xffffffffu, digit);
      if (ok && lane == __ffs(peers) - 1) atomicAdd(&hist[digit], __popc(peers));
    });
    g.sync();
    if (warp == 0) {
      // Lane l owns buckets 255 - 8l .. 248 - 8l (descending), summed over the group's CTAs; find the
      // bucket where the count from the top reaches `remaining` (clamped to the number of eligible
      // elements on the first pass).
      int own[8], sum = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j) own[j] = 0;
      for (int r = 0; r < g.size; ++r) {
        const int* h = g.at(hist, r);
#pragma unroll
        for (int j = 0; j < 8; ++j) own[j] += h[255 - (lane * 8 + j)];
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) sum += own[j];
      int incl = sum;
#pragma unroll
      for (int off = 1; off < 32; off <<= 1) {
        int v = __shfl_up_sync(0xffffffffu, incl, off);
        if (lane >= off) incl += v;
      }
      int total = __shfl_sync(0xffffffffu, incl, 31);
      int want = pass == 0 && total < remaining ? total : remaining;
      int run = incl - sum;
      if (want > 0 && run < want && incl >= want) {
        for (int j = 0; j < 8; ++j) {
          if (run + own[j] >= want) {
            sm.found_bucket = 255 - (lane * 8 + j);
            sm.found_above = run;
            break;
          }
          run += own[j];
        }
      }
      if (lane == 0) {
        if (want == 0) sm.found_bucket = -1;
        sm.clamped_k = want;
      }
    }
    __syncthreads();
    if (sm.found_bucket < 0) {
      g.sync();  // the group is done reading this CTA's histogram before the next selection clears it
      return Threshold{0, 0, 0};
    }
    if (pass == 0) k = remaining = sm.clamped_k;
    remaining -= sm.found_above;
    prefix |= static_cast<uint32_t>(sm.found_bucket) << shift;
    mask |= 255u << shift;
    if (pass == 3 && tid == 0) sm.eq_local = hist[sm.found_bucket];  // this slice's elements equal to the key
    __syncthreads();
  }
  g.sync();  // every CTA's eq_local is written
  return Threshold{prefix, remaining, k};
}

// Walks the group's elements equal to th.key in index order (a block scan per tile of kThreads, each CTA
// after the ties of the slices before it), calling take(i, rank) for the first th.take_eq of them; calls
// gt(i, key) for every element above th.key.
template <int kThreads, int kCap, class KeyFn, class GtFn, class EqFn>
__device__ void group_walk_selected(const RowGroup& g, const Threshold& th, KeyFn&& key_of, GtFn&& gt, EqFn&& take,
                                    SelectSmem<kThreads, kCap>& sm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int eq_seen = 0;  // uniform across the block
  for (int r = 0; r < g.rank; ++r) eq_seen += *g.at(&sm.eq_local, r);
  // Tiles are used in index order, so ties are ranked in index order.
  for_each_key<kThreads>(g.lo, g.hi, key_of, [&](int64_t i, uint32_t key, bool ok) {
    if (ok && key > th.key) gt(i, key);
    if (eq_seen < th.take_eq) {
      bool eq = ok && key == th.key;
      unsigned bal = __ballot_sync(0xffffffffu, eq);
      if (lane == 0) sm.warp_counts[warp] = __popc(bal);
      __syncthreads();
      int before = 0, tile = 0;
      for (int w = 0; w < kThreads / 32; ++w) {
        int c = sm.warp_counts[w];
        before += w < warp ? c : 0;
        tile += c;
      }
      int rank = eq_seen + before + __popc(bal & ((1u << lane) - 1u));
      if (eq && rank < th.take_eq) take(i, rank);
      eq_seen += tile;
      __syncthreads();
    }
  });
}

// The composite of the k-th largest eligible element of the group's row (0 when there is none), on every CTA.
template <int kThreads, int kCap, class KeyFn>
__device__ uint64_t group_kth_composite(const RowGroup& g, int k, KeyFn&& key_of, SelectSmem<kThreads, kCap>& sm) {
  Threshold th = group_radix_threshold(g, k, key_of, sm);
  if (th.k == 0) return 0;
  uint64_t* sel0 = g.at(sm.sel, 0);
  group_walk_selected(g, th, key_of, [](int64_t, uint32_t) {},
                      [&](int64_t i, int rank) {
                        if (rank == th.take_eq - 1) sel0[0] = composite_key(th.key, i);
                      },
                      sm);
  g.sync();
  uint64_t c = sel0[0];
  __syncthreads();
  return c;
}

// Selects the min(k, #eligible) largest eligible elements of the group's row, sorts their composites
// descending into CTA 0's sm.sel and returns how many there are (on every CTA).
template <int kThreads, int kCap, class KeyFn>
__device__ int group_select_top(const RowGroup& g, int k, KeyFn&& key_of, SelectSmem<kThreads, kCap>& sm) {
  const int tid = threadIdx.x;
  if (g.rank == 0 && tid == 0) sm.sel_count = 0;  // read by the walk, after the threshold's barriers
  Threshold th = group_radix_threshold(g, k, key_of, sm);
  k = th.k;
  if (k == 0) return 0;
  const int n_gt = k - th.take_eq;
  uint64_t* sel0 = g.at(sm.sel, 0);
  int* count0 = g.at(&sm.sel_count, 0);
  group_walk_selected(g, th, key_of, [&](int64_t i, uint32_t key) { sel0[atomicAdd(count0, 1)] = composite_key(key, i); },
                      [&](int64_t i, int rank) { sel0[n_gt + rank] = composite_key(th.key, i); }, sm);
  g.sync();
  if (g.rank != 0) return k;
  // Bitonic sort, descending, over the next power of two (the zero padding sorts last).
  int p2 = 1;
  while (p2 < k) p2 <<= 1;
  for (int j = k + tid; j < p2; j += kThreads) sm.sel[j] = 0;
  __syncthreads();
  for (int size = 2; size <= p2; size <<= 1)
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int t = tid; t < p2 / 2; t += kThreads) {
        int lo = 2 * stride * (t / stride) + t % stride, hi = lo + stride;
        bool desc = (lo & size) == 0;
        uint64_t a = sm.sel[lo], b = sm.sel[hi];
        if ((a < b) == desc) {
          sm.sel[lo] = b;
          sm.sel[hi] = a;
        }
      }
      __syncthreads();
    }
  return k;
}

}  // namespace dsk::cuda
