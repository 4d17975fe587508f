// Sampling, following native/math/sample_math.h step by step so the token equals the CPU reference's. A row
// is handled by a RowGroup (row_group.cuh): one block, or with few rows a cluster of CTAs that each take a
// slice of the vocabulary and combine through distributed shared memory.
//   1. the largest z key (group max);
//   2. the topK bound: the composite (key, index) of the topK-th candidate, by radix select;
//   3. S in the canonical row order (row_sum.cuh): each CTA sums its segments, segment sums are added
//      left to right;
//   4. the sorted candidates are visited in pages of kPage: each page is the next kPage candidates below
//      the previous page (radix select, bitonic sort in CTA 0's shared memory), CTA 0 computes e and the
//      cumulative mass C with the chunked order of the definition, and the first position whose C reaches
//      the target ends the walk. The nucleus walk (topP < 1) usually ends in page 0, which the sampling walk
//      reuses. CTA 0 decides after each page whether the group selects another one (and below which bound).
// Each radix pass reads the slice (from L2 after the first), so a row costs O(V / CTAs) per pass;
// distributions whose nucleus spans many pages cost one page selection per 2048 candidates.
#include <climits>

#include "../math/sample_math.h"
#include "common.cuh"
#include "row_sum.cuh"
#include "sample.h"
#include "select.cuh"
#include "vec.cuh"

namespace dsk::cuda {

namespace {

constexpr int kThreads = 1024;
constexpr int kPage = 2048;
constexpr int kChunks = kPage / kSampleChunk;
constexpr int64_t kMaxClusterSegments = 64;  // rows split over a cluster: V <= 64 * 4096

// A CTA whose slice's keys fit in this much dynamic shared memory computes them once (x / T and the order
// key, in the first pass) and every later pass reads them from there.
constexpr int64_t kKeyCacheBytes = 96 * 1024;

struct SampleArgs {
  const void* x; int64_t ls; DType dt; int64_t V; float temperature; int64_t top_k; float top_p; uint64_t seed; int32_t* out;
};

struct SampleSmem {
  SelectSmem<kThreads, kPage> sel;
  float cum[kChunks * (kSampleChunk + 1)];  // e, then C, of page entry p at (p / 32) * 33 + p % 32
  float chunk_total[kChunks], chunk_base[kChunks];
  float scratch[33];
  float seg[kMaxClusterSegments];  // CTA 0 of a cluster: the row's segment sums
  uint32_t red_key[kThreads / 32];
  long long red_idx[kThreads / 32];
  uint32_t cta_key;    // this CTA's largest key
  long long cta_idx;   // this CTA's first index holding the row's largest key
  uint64_t next_bound; // CTA 0: the bound of the next page to select
  int stop;            // CTA 0: the token is written
  float r_next;
  int found;
};

__device__ __forceinline__ int pad(int p) { return (p / kSampleChunk) * (kSampleChunk + 1) + p % kSampleChunk; }

template <class T, class Op>
__device__ __forceinline__ T block_reduce(T v, T* red, Op op) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int off = 16; off >= 1; off >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = red[0];
  for (int w = 1; w < kThreads / 32; ++w) v = op(v, red[w]);
  __syncthreads();
  return v;
}

// `v` (this CTA's value, the same on all its threads) combined over the group: every CTA publishes it in
// `slot`, and reads every CTA's slot after a group barrier.
template <class T, class Op>
__device__ __forceinline__ T group_reduce(const RowGroup& g, T v, T* slot, Op op) {
  if (g.size == 1) return v;
  if (threadIdx.x == 0) *slot = v;
  g.sync();
  v = *g.at(slot, 0);
  for (int r = 1; r < g.size; ++r) v = op(v, *g.at(slot, r));
  return v;
}

template <bool kCacheKeys>
__global__ void __launch_bounds__(kThreads) sample_kernel(SampleArgs a) {
  __shared__ SampleSmem sm;
  extern __shared__ uint32_t key_cache[];  // kCacheKeys: the keys of this CTA's slice
  const int tid = threadIdx.x;
  const int64_t V = a.V;
  const RowGroup g = row_group(V, kSumSegment);
  const int64_t r = blockIdx.x / g.size;
  const char* row = static_cast<const char*>(a.x) + r * a.ls * dtype_size(a.dt);
  const DType dt = a.dt;
  const float temperature = a.temperature;
  auto zkey_of_x = [&](int64_t i) { return float_order_key(sample_logit(load_f32(row, dt, i), temperature)); };
  // Every key the kernel reads lies in this CTA's slice (selection passes, its segments of S).
  auto zkey = [&](int64_t i) {
    if constexpr (kCacheKeys) return key_cache[i - g.lo];
    else return zkey_of_x(i);
  };
  auto zkey_ok = [&](int64_t i, uint32_t& key) { key = zkey(i); return true; };
  auto zkey_fill = [&](int64_t i, uint32_t& key) {
    key = zkey_of_x(i);
    if constexpr (kCacheKeys) key_cache[i - g.lo] = key;
    return true;
  };
  auto umax = [](uint32_t x, uint32_t y) { return x > y ? x : y; };
  auto imin = [](long long x, long long y) { return x < y ? x : y; };

  // 1. the largest key
  uint32_t km = 0;
  for_each_key<kThreads>(g.lo, g.hi, zkey_fill, [&](int64_t, uint32_t key, bool) { km = umax(km, key); });  // key 0 past the end
  km = group_reduce(g, block_reduce(km, sm.red_key, umax), &sm.cta_key, umax);
  const float zmax = order_key_float(km);
  if (zmax == __int_as_float(0x7f800000) || zmax == __int_as_float(0xff800000)) {
    long long bi = LLONG_MAX;
    for (int64_t i = g.lo + tid; i < g.hi; i += kThreads)
      if (zkey(i) == km) { bi = i; break; }
    bi = group_reduce(g, block_reduce(bi, sm.red_idx, imin), &sm.cta_idx, imin);
    if (g.rank == 0 && tid == 0) a.out[r] = static_cast<int32_t>(bi);
    g.sync();  // no CTA leaves while another may still read its shared memory
    return;
  }

  // 2. candidates: composite >= cand_min
  const int64_t nc = a.top_k > 0 && a.top_k < V ? a.top_k : V;
  uint64_t cand_min = 0;
  if (nc < V) cand_min = group_kth_composite(g, static_cast<int>(nc), zkey_ok, sm.sel);

  // 3. S
  auto add_e = [&](float acc, int64_t i0, int cnt) {
    for (int k = 0; k < cnt; ++k) {
      uint32_t key = zkey(i0 + k);
      if (composite_key(key, i0 + k) >= cand_min) acc = __fadd_rn(acc, portable_exp(__fsub_rn(order_key_float(key), zmax)));
    }
    return acc;
  };
  float S;
  if (g.size == 1) {
    S = row_sum<true>(V, sm.scratch, add_e);
  } else {
    // This CTA's segments (its slice is segment-aligned), their sums stored in CTA 0 in segment order.
    float* seg0 = g.at(sm.seg, 0);
    const int64_t first = g.lo / kSumSegment, last = (g.hi + kSumSegment - 1) / kSumSegment;
    for (int64_t s = first + (tid >> 5); g.lo < g.hi && s < last; s += kThreads / 32) {
      const float sum = warp_segment_sum(s, V, add_e);
      if ((tid & 31) == 0) seg0[s] = sum;
    }
    g.sync();
    if (tid == 0) {
      const int64_t nseg = (V + kSumSegment - 1) / kSumSegment;
      float total = seg0[0];
      for (int64_t s = 1; s < nseg; ++s) total = __fadd_rn(total, seg0[s]);
      sm.scratch[32] = total;
    }
    __syncthreads();
    S = sm.scratch[32];
  }

  // 4. pages of sorted candidates; CTA 0 computes their cumulative mass
  auto load_page = [&](uint64_t bound, float R) -> int {
    int m = group_select_top(g, kPage, [&](int64_t i, uint32_t& key) {
      key = zkey(i);
      uint64_t c = composite_key(key, i);
      return c >= cand_min && c < bound;
    }, sm.sel);
    if (g.rank != 0) return m;
    for (int j = tid; j < m; j += kThreads)
      sm.cum[pad(j)] = portable_exp(__fsub_rn(order_key_float(composite_order_key(sm.sel.sel[j])), zmax));
    __syncthreads();
    const int nch = (m + kSampleChunk - 1) / kSampleChunk;
    if (tid < nch) {
      float P = 0.0f;
      for (int j = 0; j < kSampleChunk && tid * kSampleChunk + j < m; ++j) {
        float& c = sm.cum[pad(tid * kSampleChunk + j)];
        P = __fadd_rn(P, c);
        c = P;
      }
      sm.chunk_total[tid] = P;
    }
    __syncthreads();
    if (tid == 0) {
      float Rr = R;
      for (int q = 0; q < nch; ++q) {
        sm.chunk_base[q] = Rr;
        Rr = __fadd_rn(Rr, sm.chunk_total[q]);
      }
      sm.r_next = Rr;
    }
    __syncthreads();
    for (int j = tid; j < m; j += kThreads) sm.cum[pad(j)] = __fadd_rn(sm.chunk_base[j / kSampleChunk], sm.cum[pad(j)]);
    __syncthreads();
    return m;
  };
  // CTA 0: first page position p < limit with C >= target (ge) or C > target; -1 if none.
  auto find_first = [&](int limit, bool ge, float target) -> int {
    if (tid == 0) sm.found = INT_MAX;
    __syncthreads();
    for (int j = tid; j < limit; j += kThreads) {
      float c = sm.cum[pad(j)];
      if (ge ? c >= target : c > target) {
        atomicMin(&sm.found, j);
        break;
      }
    }
    __syncthreads();
    int p = sm.found;
    __syncthreads();
    return p == INT_MAX ? -1 : p;
  };

  // The walk, decided by CTA 0 after each page (the state below is meaningful there): first the nucleus
  // (topP < 1: the smallest n with C(n) >= topP * S), then the sampling walk over the nucleus.
  const float u = sample_uniform(static_cast<uint64_t>(r), a.seed);
  bool nucleus = a.top_p < 1.0f;
  const float nucleus_target = __fmul_rn(a.top_p, S);
  int64_t n_nuc = nc, pos0 = 0;
  float total = S, R = 0.0f, target = nucleus ? 0.0f : __fmul_rn(u, S);
  int nucleus_pages = 0;
  uint64_t bound = ~0ull;
  for (;;) {
    const int m = load_page(bound, R);
    int stop = 0;
    if (g.rank == 0) {
      bool walk_this_page = !nucleus;
      if (nucleus) {
        ++nucleus_pages;
        bool done = m == 0;
        if (!done) {
          const int p = find_first(m, true, nucleus_target);
          if (p >= 0) {
            n_nuc = pos0 + p + 1;
            total = sm.cum[pad(p)];
            done = true;
          } else {
            pos0 += m;
            R = sm.r_next;
            bound = sm.sel.sel[m - 1];
          }
        }
        if (done) {
          nucleus = false;
          target = __fmul_rn(u, total);
          walk_this_page = nucleus_pages == 1 && m > 0;  // page 0 is what shared memory holds
          if (!walk_this_page) {
            pos0 = 0;
            R = 0.0f;
            bound = ~0ull;
          }
        }
      }
      if (walk_this_page) {
        const int limit = static_cast<int>(min64(m, n_nuc - pos0));
        int p = find_first(limit, false, target);
        if (p < 0 && pos0 + m >= n_nuc) p = static_cast<int>(n_nuc - 1 - pos0);
        if (p >= 0) {
          if (tid == 0) a.out[r] = static_cast<int32_t>(composite_index(sm.sel.sel[p]));
          stop = 1;
        } else {
          pos0 += m;
          R = sm.r_next;
          bound = sm.sel.sel[m - 1];
        }
      }
    }
    if (g.size > 1) {  // CTA 0's decision to the group
      if (g.rank == 0 && tid == 0) {
        sm.stop = stop;
        sm.next_bound = bound;
      }
      g.sync();
      stop = *g.at(&sm.stop, 0);
      bound = *g.at(&sm.next_bound, 0);
    }
    if (stop) break;
  }
  g.sync();  // no CTA leaves while another may still read its shared memory
}

}  // namespace

void sample(const void* logits, int64_t ls, DType dt, int64_t rows, int64_t V, float temperature, int64_t top_k, float top_p,
            uint64_t seed, int32_t* out, const RowLaunch& rl, Stream stream) {
  if (rows == 0) return;
  SampleArgs a{logits, ls, dt, V, temperature, top_k, top_p, seed, out};
  // Few rows: split each over a cluster of CTAs (the SMs would idle otherwise), each CTA keeping at least
  // 4 segments (16384 elements) so the group's barriers stay cheap next to the streaming.
  const int64_t nseg = (V + kSumSegment - 1) / kSumSegment;
  const int ctas = V <= kMaxClusterSegments * kSumSegment ? row_group_ctas(rows, nseg, 4, rl.sms, rl.clusters) : 1;
  // The slice row_group gives each CTA (segment-aligned): its keys are cached when they fit.
  const int64_t slice = (nseg + ctas - 1) / ctas * kSumSegment;
  const int64_t longest = slice < V ? slice : V;
  if (longest * 4 <= kKeyCacheBytes) {
    cudaFuncSetAttribute(sample_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kKeyCacheBytes));
    launch_row_groups(sample_kernel<true>, rows, ctas, kThreads, static_cast<size_t>(longest) * 4, to_cuda(stream), a);
  } else {
    launch_row_groups(sample_kernel<false>, rows, ctas, kThreads, 0, to_cuda(stream), a);
  }
}

}  // namespace dsk::cuda
