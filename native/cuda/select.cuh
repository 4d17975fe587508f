// Block-wide top-k selection over one row, shared by topk and sample. Elements are ordered by their
// 32-bit order key (native/math/order_key.h) with ties to the lower index, i.e. by the composite
// (key << 32) | ~index. A 4-pass MSB radix select (8-bit digits, shared-memory histograms with
// warp-aggregated atomics) finds the key of the k-th element and how many of its ties to keep; one more
// pass collects the winners (ties taken in index order by a block scan), and a bitonic sort in shared
// memory orders them. O(n) per pass, independent of k; k is at most kCap.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace dsk::cuda {

__device__ __forceinline__ uint64_t composite_key(uint32_t key, int64_t i) {
  return (static_cast<uint64_t>(key) << 32) | (0xffffffffu - static_cast<uint32_t>(i));
}
__device__ __forceinline__ int64_t composite_index(uint64_t c) { return 0xffffffffu - static_cast<uint32_t>(c); }
__device__ __forceinline__ uint32_t composite_order_key(uint64_t c) { return static_cast<uint32_t>(c >> 32); }

template <int kThreads, int kCap>
struct SelectSmem {
  static_assert((kCap & (kCap - 1)) == 0, "kCap must be a power of two");
  uint64_t sel[kCap];  // the selected composites, sorted descending
  int hist[256];
  int warp_counts[kThreads / 32];
  int found_bucket, found_above, gt_count;
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

// Calls use(i, key, ok) for i = 0 .. n-1 in index order (i past n: ok false), thread tid taking
// i = tile * kThreads + tid; the keys of kSelectUnroll tiles are loaded before any is used.
template <int kThreads, class KeyFn, class UseFn>
__device__ __forceinline__ void for_each_key(int64_t n, KeyFn& key_of, UseFn&& use) {
  for (int64_t base = 0; base < n; base += static_cast<int64_t>(kThreads) * kSelectUnroll) {
    uint32_t keys[kSelectUnroll];
    bool oks[kSelectUnroll];
#pragma unroll
    for (int u = 0; u < kSelectUnroll; ++u) {
      const int64_t i = base + static_cast<int64_t>(u) * kThreads + threadIdx.x;
      keys[u] = 0;
      oks[u] = i < n && key_of(i, keys[u]);
    }
#pragma unroll
    for (int u = 0; u < kSelectUnroll; ++u) use(base + static_cast<int64_t>(u) * kThreads + threadIdx.x, keys[u], oks[u]);
  }
}

// Every thread of the block must call these. key_of(i, key) sets the order key of element i and returns
// whether it takes part. k <= kCap for block_select_top.
template <int kThreads, int kCap, class KeyFn>
__device__ Threshold block_radix_threshold(int64_t n, int k, KeyFn&& key_of, SelectSmem<kThreads, kCap>& sm) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  uint32_t prefix = 0, mask = 0;
  int remaining = k;
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 24 - 8 * pass;
    for (int b = tid; b < 256; b += kThreads) sm.hist[b] = 0;
    __syncthreads();
    for_each_key<kThreads>(n, key_of, [&](int64_t, uint32_t key, bool ok) {
      ok = ok && (key & mask) == prefix;
      unsigned digit = ok ? (key >> shift) & 255u : 256u;
      unsigned peers = __match_any_sync(0xffffffffu, digit);
      if (ok && lane == __ffs(peers) - 1) atomicAdd(&sm.hist[digit], __popc(peers));
    });
    __syncthreads();
    if (warp == 0) {
      // Lane l owns buckets 255 - 8l .. 248 - 8l (descending); find the bucket where the count from the
      // top reaches `remaining` (clamped to the number of eligible elements on the first pass).
      int own[8], sum = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j) sum += own[j] = sm.hist[255 - (lane * 8 + j)];
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
        sm.gt_count = want;  // carries the clamped k out of pass 0
      }
    }
    __syncthreads();
    if (sm.found_bucket < 0) {
      __syncthreads();
      return Threshold{0, 0, 0};
    }
    if (pass == 0) k = remaining = sm.gt_count;
    remaining -= sm.found_above;
    prefix |= static_cast<uint32_t>(sm.found_bucket) << shift;
    mask |= 255u << shift;
    __syncthreads();
  }
  return Threshold{prefix, remaining, k};
}

// Walks the elements equal to th.key in index order (a block scan per tile of kThreads), calling
// take(i, rank) for the first th.take_eq of them; calls gt(i, key) for every element above th.key.
template <int kThreads, int kCap, class KeyFn, class GtFn, class EqFn>
__device__ void block_walk_selected(int64_t n, const Threshold& th, KeyFn&& key_of, GtFn&& gt, EqFn&& take,
                                    SelectSmem<kThreads, kCap>& sm) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int eq_seen = 0;  // uniform across the block
  // Tiles are used in index order, so ties are ranked in index order.
  for_each_key<kThreads>(n, key_of, [&](int64_t i, uint32_t key, bool ok) {
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

// The composite of the k-th largest eligible element (0 when there is none).
template <int kThreads, int kCap, class KeyFn>
__device__ uint64_t block_kth_composite(int64_t n, int k, KeyFn&& key_of, SelectSmem<kThreads, kCap>& sm) {
  Threshold th = block_radix_threshold(n, k, key_of, sm);
  if (th.k == 0) return 0;
  block_walk_selected(n, th, key_of, [](int64_t, uint32_t) {},
                      [&](int64_t i, int rank) {
                        if (rank == th.take_eq - 1) sm.sel[0] = composite_key(th.key, i);
                      },
                      sm);
  __syncthreads();
  uint64_t c = sm.sel[0];
  __syncthreads();
  return c;
}

// Selects the min(k, #eligible) largest eligible elements, sorts their composites descending into sm.sel
// and returns how many there are.
template <int kThreads, int kCap, class KeyFn>
__device__ int block_select_top(int64_t n, int k, KeyFn&& key_of, SelectSmem<kThreads, kCap>& sm) {
  const int tid = threadIdx.x;
  Threshold th = block_radix_threshold(n, k, key_of, sm);
  k = th.k;
  if (k == 0) return 0;
  const int n_gt = k - th.take_eq;
  if (tid == 0) sm.gt_count = 0;
  __syncthreads();
  block_walk_selected(n, th, key_of, [&](int64_t i, uint32_t key) { sm.sel[atomicAdd(&sm.gt_count, 1)] = composite_key(key, i); },
                      [&](int64_t i, int rank) { sm.sel[n_gt + rank] = composite_key(th.key, i); }, sm);
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
