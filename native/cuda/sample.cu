// Sampling, one block per row, following native/math/sample_math.h step by step so the token equals the
// CPU reference's:
//   1. the largest z key (block max);
//   2. the topK bound: the composite (key, index) of the topK-th candidate, by radix select;
//   3. S in the canonical row order (row_sum.cuh);
//   4. the sorted candidates are visited in pages of kPage: each page is the next kPage candidates below
//      the previous page (radix select + bitonic sort in shared memory), e and the cumulative mass C are
//      computed with the chunked order of the definition, and the first position whose C reaches the target
//      ends the walk. The nucleus walk (topP < 1) usually ends in page 0, which the sampling walk reuses.
// Each radix pass reads the row (from L2 after the first), so a row costs O(V) per pass; distributions whose
// nucleus spans many pages cost one page selection per 2048 candidates.
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

struct SampleArgs {
  const void* x; int64_t ls; DType dt; int64_t V; float temperature; int64_t top_k; float top_p; uint64_t seed; int32_t* out;
};

struct SampleSmem {
  SelectSmem<kThreads, kPage> sel;
  float cum[kChunks * (kSampleChunk + 1)];  // e, then C, of page entry p at (p / 32) * 33 + p % 32
  float chunk_total[kChunks], chunk_base[kChunks];
  float scratch[33];
  uint32_t red_key[kThreads / 32];
  long long red_idx[kThreads / 32];
  float r_next;
  int found;
};

__device__ __forceinline__ int pad(int p) { return (p / kSampleChunk) * (kSampleChunk + 1) + p % kSampleChunk; }

__global__ void __launch_bounds__(kThreads) sample_kernel(SampleArgs a) {
  __shared__ SampleSmem sm;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t r = blockIdx.x, V = a.V;
  const char* row = static_cast<const char*>(a.x) + r * a.ls * dtype_size(a.dt);
  const DType dt = a.dt;
  const float temperature = a.temperature;
  auto zkey = [&](int64_t i) { return float_order_key(sample_logit(load_f32(row, dt, i), temperature)); };
  auto zkey_ok = [&](int64_t i, uint32_t& key) { key = zkey(i); return true; };

  // 1. the largest key
  uint32_t km = 0;
  for_each_key<kThreads>(V, zkey_ok, [&](int64_t, uint32_t key, bool) { km = max(km, key); });  // key 0 past the end
  for (int off = 16; off >= 1; off >>= 1) km = max(km, __shfl_xor_sync(0xffffffffu, km, off));
  if (lane == 0) sm.red_key[warp] = km;
  __syncthreads();
  km = 0;
  for (int w = 0; w < kThreads / 32; ++w) km = max(km, sm.red_key[w]);
  __syncthreads();
  const float zmax = order_key_float(km);
  if (zmax == __int_as_float(0x7f800000) || zmax == __int_as_float(0xff800000)) {
    long long bi = LLONG_MAX;
    for (int64_t i = tid; i < V; i += kThreads)
      if (zkey(i) == km) { bi = i; break; }
    for (int off = 16; off >= 1; off >>= 1) bi = min(bi, __shfl_xor_sync(0xffffffffu, bi, off));
    if (lane == 0) sm.red_idx[warp] = bi;
    __syncthreads();
    if (tid == 0) {
      for (int w = 0; w < kThreads / 32; ++w) bi = min(bi, sm.red_idx[w]);
      a.out[r] = static_cast<int32_t>(bi);
    }
    return;
  }

  // 2. candidates: composite >= cand_min
  const int64_t nc = a.top_k > 0 && a.top_k < V ? a.top_k : V;
  uint64_t cand_min = 0;
  if (nc < V)
    cand_min = block_kth_composite(V, static_cast<int>(nc), [&](int64_t i, uint32_t& key) { key = zkey(i); return true; }, sm.sel);

  // 3. S
  const float S = row_sum<true>(V, sm.scratch, [&](float acc, int64_t i0, int cnt) {
    for (int k = 0; k < cnt; ++k) {
      uint32_t key = zkey(i0 + k);
      if (composite_key(key, i0 + k) >= cand_min) acc = __fadd_rn(acc, portable_exp(__fsub_rn(order_key_float(key), zmax)));
    }
    return acc;
  });

  // 4. pages of sorted candidates with their cumulative mass
  auto load_page = [&](uint64_t bound, float R) -> int {
    int m = block_select_top(V, kPage, [&](int64_t i, uint32_t& key) {
      key = zkey(i);
      uint64_t c = composite_key(key, i);
      return c >= cand_min && c < bound;
    }, sm.sel);
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
  // First page position p < limit with C >= target (ge) or C > target; -1 if none.
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

  int64_t n_nuc = nc, pos0 = 0;
  float total = S, R = 0.0f;
  uint64_t bound = ~0ull;
  int m = 0, page = -1;
  if (a.top_p < 1.0f) {
    const float target = __fmul_rn(a.top_p, S);
    for (page = 0;; ++page) {
      m = load_page(bound, R);
      if (m == 0) break;
      int p = find_first(m, true, target);
      if (p >= 0) {
        n_nuc = pos0 + p + 1;
        total = sm.cum[pad(p)];
        break;
      }
      pos0 += m;
      R = sm.r_next;
      bound = sm.sel.sel[m - 1];
    }
  }
  const float target = __fmul_rn(sample_uniform(static_cast<uint64_t>(r), a.seed), total);
  if (!(page == 0 && m > 0)) {  // page 0 is not what shared memory holds
    pos0 = 0;
    R = 0.0f;
    bound = ~0ull;
    m = load_page(bound, R);
  }
  for (;;) {
    int limit = static_cast<int>(min64(m, n_nuc - pos0));
    int p = find_first(limit, false, target);
    if (p < 0 && pos0 + m >= n_nuc) p = static_cast<int>(n_nuc - 1 - pos0);
    if (p >= 0) {
      if (tid == 0) a.out[r] = static_cast<int32_t>(composite_index(sm.sel.sel[p]));
      return;
    }
    pos0 += m;
    R = sm.r_next;
    bound = sm.sel.sel[m - 1];
    m = load_page(bound, R);
  }
}

}  // namespace

void sample(const void* logits, int64_t ls, DType dt, int64_t rows, int64_t V, float temperature, int64_t top_k, float top_p,
            uint64_t seed, int32_t* out, Stream stream) {
  if (rows == 0) return;
  SampleArgs a{logits, ls, dt, V, temperature, top_k, top_p, seed, out};
  sample_kernel<<<static_cast<unsigned>(rows), kThreads, 0, to_cuda(stream)>>>(a);
}

}  // namespace dsk::cuda
