// ep.layout on the GPU: the same chunked two-pass algorithm as cpu::ep_layout, so the outputs are
// bit-identical. Pass 1 counts experts and ranks per chunk of 256 tokens (shared-memory atomics),
// a scan over chunks gives each chunk its bases, and pass 2 assigns positions in (t, k) order: one
// thread per expert (or rank) walks the chunk, held in shared memory, in order.
#include "common.cuh"
#include "ep.h"

namespace dsk::cuda {

namespace {
constexpr int kChunk = 256;  // == cpu::kEpLayoutChunk

__device__ __forceinline__ int ep_expert(const int32_t* idx, int64_t i, int E, DiagRecord* diag, bool report) {
  int32_t e = idx[i];
  if (e == -1) return -1;
  if (e < -1 || e >= E) {
    if (report) diag_report(diag, kDiagEpIndices, e, E);
    return -1;
  }
  return e;
}

__global__ void __launch_bounds__(kChunk) ep_layout_count(const int32_t* idx, int64_t T, int K, int E, int W, int32_t* counts,
                                                          DiagRecord* diag) {
  extern __shared__ int32_t cnt[];  // [E + W]
  const int cats = E + W, Eloc = E / W;
  for (int i = threadIdx.x; i < cats; i += blockDim.x) cnt[i] = 0;
  __syncthreads();
  const int64_t t = int64_t(blockIdx.x) * kChunk + threadIdx.x;
  if (t < T) {
    uint32_t mask = 0;
    for (int k = 0; k < K; k++) {
      int e = ep_expert(idx, t * K + k, E, diag, true);
      if (e >= 0) { atomicAdd(&cnt[e], 1); mask |= 1u << (e / Eloc); }
    }
    for (int d = 0; d < W; d++) if (mask >> d & 1) atomicAdd(&cnt[E + d], 1);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < cats; i += blockDim.x) counts[int64_t(blockIdx.x) * cats + i] = cnt[i];
}

__global__ void __launch_bounds__(1024) ep_layout_scan(const int32_t* counts, int32_t* base, int64_t nchunks, int E, int W, int64_t T,
                                                       int32_t* tokens_per_expert, int32_t* tokens_per_rank, int32_t* send_list) {
  const int cats = E + W;
  for (int cat = threadIdx.x; cat < cats; cat += blockDim.x) {
    int32_t run = 0;
    for (int64_t b = 0; b < nchunks; b++) {
      base[b * cats + cat] = run;
      run += counts[b * cats + cat];
    }
    if (cat < E) tokens_per_expert[cat] = run;
    else tokens_per_rank[cat - E] = run;
  }
  for (int64_t i = threadIdx.x; i < int64_t(W) * T; i += blockDim.x) send_list[i] = -1;
}

__global__ void __launch_bounds__(kChunk) ep_layout_place(const int32_t* idx, int64_t T, int K, int E, int W, const int32_t* base,
                                                          uint8_t* in_rank, int32_t* token_idx_in_rank, int32_t* pos_in_expert,
                                                          int32_t* send_list) {
  extern __shared__ int32_t sm[];
  int32_t* sidx = sm;                                                // [kChunk * K]
  uint32_t* smask = reinterpret_cast<uint32_t*>(sm + kChunk * K);  // [kChunk]
  const int cats = E + W, Eloc = E / W;
  const int64_t t0 = int64_t(blockIdx.x) * kChunk;
  const int n = static_cast<int>((T - t0 < kChunk ? T - t0 : int64_t(kChunk)));
  for (int i = threadIdx.x; i < n * K; i += blockDim.x) {
    int e = ep_expert(idx, t0 * K + i, E, nullptr, false);
    sidx[i] = e;
    if (e < 0) pos_in_expert[t0 * K + i] = -1;
  }
  __syncthreads();
  if (threadIdx.x < n) {
    uint32_t mask = 0;
    for (int k = 0; k < K; k++) { int e = sidx[threadIdx.x * K + k]; if (e >= 0) mask |= 1u << (e / Eloc); }
    smask[threadIdx.x] = mask;
  }
  __syncthreads();
  for (int cat = threadIdx.x; cat < cats; cat += blockDim.x) {
    int32_t run = base[int64_t(blockIdx.x) * cats + cat];
    if (cat < E) {
      for (int i = 0; i < n * K; i++)
        if (sidx[i] == cat) pos_in_expert[t0 * K + i] = run++;
    } else {
      const int d = cat - E;
      for (int i = 0; i < n; i++) {
        const int64_t t = t0 + i;
        const bool in = smask[i] >> d & 1;
        in_rank[t * W + d] = in;
        if (in) {
          token_idx_in_rank[t * W + d] = run;
          send_list[int64_t(d) * T + run] = static_cast<int32_t>(t);
          run++;
        } else {
          token_idx_in_rank[t * W + d] = -1;
        }
      }
    }
  }
}
}  // namespace

int64_t ep_layout_scratch_ints(int64_t T, int E, int W) { return 2 * ((T + kChunk - 1) / kChunk) * (E + W); }

void ep_layout(const int32_t* idx, int64_t T, int K, int E, int W, int32_t* tokens_per_rank, int32_t* tokens_per_expert,
               uint8_t* in_rank, int32_t* token_idx_in_rank, int32_t* pos_in_expert, int32_t* send_list, int32_t* scratch,
               DiagRecord* diag, Stream s) {
  const int64_t nchunks = (T + kChunk - 1) / kChunk;
  const int cats = E + W;
  int32_t* counts = scratch;
  int32_t* base = scratch + nchunks * cats;
  auto st = to_cuda(s);
  if (nchunks) ep_layout_count<<<static_cast<unsigned>(nchunks), kChunk, cats * 4, st>>>(idx, T, K, E, W, counts, diag);
  ep_layout_scan<<<1, 1024, 0, st>>>(counts, base, nchunks, E, W, T, tokens_per_expert, tokens_per_rank, send_list);
  if (nchunks)
    ep_layout_place<<<static_cast<unsigned>(nchunks), kChunk, (kChunk * K + kChunk) * 4, st>>>(idx, T, K, E, W, base, in_rank,
                                                                                              token_idx_in_rank, pos_in_expert, send_list);
}

}  // namespace dsk::cuda
