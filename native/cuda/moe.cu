#include "common.cuh"
#include "moe.h"

namespace dsk::cuda {

constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ uint64_t warp_max_u64(uint64_t v) {
  for (int off = 16; off >= 1; off >>= 1) {
    uint64_t o = __shfl_xor_sync(kFullMask, v, off);
    v = o > v ? o : v;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------
// Gate: one warp per token. Lane l owns experts l, l+32, ... (their keys live in the warp's shared
// memory), which is the order native/cpu/moe.cc reproduces for the softmax partial sums.
// Shared memory per warp: keys[E] | partial[32] | group keys[64] | weights[32].
constexpr int kGateSmemExtra = 32 + kMoeMaxGroups + 32;

__device__ __forceinline__ uint64_t gate_lane_best(const uint32_t* keys, int lane, int E, int per_group, uint64_t allowed) {
  uint64_t best = 0;
  for (int e = lane; e < E; e += 32) {
    uint32_t k = keys[e];
    if (k && ((allowed >> (e / per_group)) & 1)) {
      uint64_t c = moe_pack(k, e);
      best = c > best ? c : best;
    }
  }
  return best;
}

__global__ void moe_gate_kernel(const float* __restrict__ logits, const float* __restrict__ bias, int64_t T, MoeGateParams p,
                                int32_t* __restrict__ indices, float* __restrict__ weights) {
  extern __shared__ uint32_t smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int E = p.num_experts;
  uint32_t* keys = smem + warp * (E + kGateSmemExtra);
  float* partial = reinterpret_cast<float*>(keys + E);
  uint32_t* gkeys = keys + E + 32;
  float* wbuf = reinterpret_cast<float*>(gkeys + kMoeMaxGroups);
  const int64_t t = static_cast<int64_t>(blockIdx.x) * warps + warp;
  if (t >= T) return;  // whole warps leave; nothing below syncs the block
  const float* row = logits + t * E;

  float row_max = 0.0f, row_sum = 0.0f;
  if (p.scoring == kMoeSoftmax) {
    float m = bits_f32(0xff800000u);
    for (int e = lane; e < E; e += 32) m = row[e] > m ? row[e] : m;
    for (int off = 16; off >= 1; off >>= 1) {
      float o = __shfl_xor_sync(kFullMask, m, off);
      m = o > m ? o : m;
    }
    row_max = m;
    float part = 0.0f;
    for (int e = lane; e < E; e += 32) {
      float z = moe_softmax_numerator(row[e], row_max);
      keys[e] = f32_bits(z);
      part = DSK_FADD(part, z);
    }
    partial[lane] = part;
    __syncwarp();
    row_sum = moe_tree_sum32(partial);
    for (int e = lane; e < E; e += 32) keys[e] = moe_key(moe_selection_score(DSK_FDIV(bits_f32(keys[e]), row_sum), bias, e));
  } else {
    for (int e = lane; e < E; e += 32) keys[e] = moe_key(moe_selection_score(portable_sigmoid(row[e]), bias, e));
  }

  const int G = p.n_group, per_group = E / G;
  uint64_t allowed = ~0ull;
  if (G > 1) {
    __syncwarp();
    for (int g = lane; g < G; g += 32) {
      uint32_t k1 = 0, k2 = 0;
      for (int e = g * per_group; e < (g + 1) * per_group; ++e) moe_top2_push(keys[e], k1, k2);
      gkeys[g] = moe_group_key(k1, k2, p.group_score);
    }
    __syncwarp();
    allowed = 0;
    for (int i = 0; i < p.topk_group; ++i) {
      uint64_t best = 0;
      for (int g = lane; g < G; g += 32)
        if (!((allowed >> g) & 1)) {
          uint64_t c = moe_pack(gkeys[g], g);
          best = c > best ? c : best;
        }
      allowed |= 1ull << moe_unpack_index(warp_max_u64(best));
    }
  }

  // Top-k: each lane keeps the best of its own experts; the warp takes the best of the lanes.
  uint64_t mine = gate_lane_best(keys, lane, E, per_group, allowed);
  int my_index = 0;
  for (int j = 0; j < p.topk; ++j) {
    int e = moe_unpack_index(warp_max_u64(mine));
    if (lane == j) my_index = e < 0 ? 0 : e;
    if (e >= 0 && (e & 31) == lane) {  // e < 0 (no candidate left) cannot happen with checked arguments
      keys[e] = 0;
      mine = gate_lane_best(keys, lane, E, per_group, allowed);
    }
  }

  float w = lane < p.topk ? moe_score(row[my_index], p.scoring, row_max, row_sum) : 0.0f;
  wbuf[lane] = w;
  __syncwarp();
  float sum = moe_weight_sum(wbuf, p.topk);
  if (lane < p.topk) {
    indices[t * p.topk + lane] = my_index;
    weights[t * p.topk + lane] = moe_final_weight(w, sum, p);
  }
}

void moe_gate(const float* logits, const float* bias, int64_t T, const MoeGateParams& p, int32_t* indices, float* weights,
              Stream stream) {
  if (T == 0) return;
  const int warps = p.num_experts <= 2048 ? 4 : 2;  // keeps shared memory under 48 KB
  const size_t smem = static_cast<size_t>(warps) * (p.num_experts + kGateSmemExtra) * sizeof(uint32_t);
  const unsigned blocks = static_cast<unsigned>((T + warps - 1) / warps);
  moe_gate_kernel<<<blocks, warps * 32, smem, to_cuda(stream)>>>(logits, bias, T, p, indices, weights);
}

// ---------------------------------------------------------------------------------------------------
// Counts: a shared-memory histogram per block, added to the global one (integers: order-free).
__global__ void moe_count_kernel(const int32_t* __restrict__ indices, int64_t n, int E, int32_t* counts, DiagRecord* diag) {
  extern __shared__ int32_t hist[];
  for (int e = threadIdx.x; e < E; e += blockDim.x) hist[e] = 0;
  __syncthreads();
  DSK_GRID_STRIDE(i, n) {
    int32_t v = indices[i];
    if (diag_check_index(diag, kDiagMoeIndices, v, E)) atomicAdd(&hist[v], 1);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x)
    if (hist[e]) atomicAdd(&counts[e], hist[e]);
}

void moe_count(const int32_t* indices, int64_t n, int64_t E, int32_t* counts, DiagRecord* diag, Stream stream) {
  cudaMemsetAsync(counts, 0, static_cast<size_t>(E) * sizeof(int32_t), to_cuda(stream));
  if (n == 0) return;
  moe_count_kernel<<<grid_for(n, 256, 264), 256, E * sizeof(int32_t), to_cuda(stream)>>>(indices, n, static_cast<int>(E), counts, diag);
}

// ---------------------------------------------------------------------------------------------------
// Bias update: one block; the total load is an integer sum, so the order does not matter.
__global__ void moe_bias_update_kernel(const float* bias, const int32_t* __restrict__ load, int E, float gamma, float* out) {
  __shared__ long long warp_sums[32];
  long long s = 0;
  for (int e = threadIdx.x; e < E; e += blockDim.x) s += load[e];
  for (int off = 16; off >= 1; off >>= 1) s += __shfl_xor_sync(kFullMask, s, off);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = s;
  __syncthreads();
  long long total = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) total += warp_sums[w];
  for (int e = threadIdx.x; e < E; e += blockDim.x) out[e] = moe_bias_step(bias[e], load[e], total, E, gamma);
}

void moe_bias_update(const float* bias, const int32_t* load, int64_t E, float gamma, float* out, Stream stream) {
  moe_bias_update_kernel<<<1, 1024, 0, to_cuda(stream)>>>(bias, load, static_cast<int>(E), gamma, out);
}

// ---------------------------------------------------------------------------------------------------
// Permute: a stable counting sort of the T*k slots by expert, in four deterministic steps:
//   1. per chunk of kMoePermuteChunk slots, a histogram over experts (chunk_hist[c][e]);
//   2. one block turns them into each chunk's first rank per expert, the counts, and the padded offsets;
//   3. one warp per chunk walks its slots in order, ranking equal experts inside each 32-slot step with
//      __match_any_sync, and writes map, mIndices and row -> token;
//   4. one warp per output row copies its token's row (16-byte vectors); padding rows are not written.

__global__ void moe_permute_hist_kernel(const int32_t* __restrict__ indices, int64_t n, int E, int32_t* chunk_hist, DiagRecord* diag) {
  extern __shared__ int32_t hist[];
  for (int e = threadIdx.x; e < E; e += blockDim.x) hist[e] = 0;
  __syncthreads();
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kMoePermuteChunk;
  const int64_t end = min(n, begin + kMoePermuteChunk);
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    int32_t v = indices[i];
    if (diag_check_index(diag, kDiagMoeIndices, v, E)) atomicAdd(&hist[v], 1);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x) chunk_hist[static_cast<int64_t>(blockIdx.x) * E + e] = hist[e];
}

__global__ void moe_permute_scan_kernel(int32_t* chunk_hist, int64_t chunks, int E, int align, int32_t* counts, int32_t* offsets) {
  __shared__ int32_t warp_tot[32];
  __shared__ int32_t carry;
  // Exclusive prefix over chunks, per expert (a thread per expert; reads of one chunk are coalesced).
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    int32_t run = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      int32_t v = chunk_hist[c * E + e];
      chunk_hist[c * E + e] = run;
      run += v;
    }
    counts[e] = run;
  }
  if (threadIdx.x == 0) carry = 0;
  __syncthreads();
  // Exclusive prefix over experts of the padded counts, a tile of blockDim experts at a time.
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int base = 0; base < E; base += blockDim.x) {
    const int e = base + threadIdx.x;
    const int32_t v = e < E ? (counts[e] + align - 1) / align * align : 0;
    int32_t incl = v;
    for (int off = 1; off < 32; off <<= 1) {
      int32_t o = __shfl_up_sync(kFullMask, incl, off);
      if (lane >= off) incl += o;
    }
    if (lane == 31) warp_tot[warp] = incl;
    __syncthreads();
    int32_t before = carry;
    for (int w = 0; w < warp; ++w) before += warp_tot[w];
    if (e < E) offsets[e] = before + incl - v;
    __syncthreads();
    if (threadIdx.x == blockDim.x - 1) carry = before + incl;
    __syncthreads();
  }
  if (threadIdx.x == 0) offsets[E] = carry;
}

__global__ void moe_permute_scatter_kernel(const int32_t* __restrict__ indices, int64_t n, int k, int E, const int32_t* chunk_first,
                                           const int32_t* __restrict__ offsets, int32_t* map, int32_t* row_token, int32_t* mindices) {
  extern __shared__ int32_t next_row[];
  const int lane = threadIdx.x;
  const int64_t c = blockIdx.x;
  for (int e = lane; e < E; e += 32) next_row[e] = offsets[e] + chunk_first[c * E + e];
  __syncwarp();
  const int64_t begin = c * kMoePermuteChunk, end = min(n, begin + kMoePermuteChunk);
  for (int64_t base = begin; base < end; base += 32) {
    const int64_t i = base + lane;
    const bool valid = i < end;
    const int32_t e = valid ? indices[i] : -1;
    const bool ok = valid && e >= 0 && e < E;
    const unsigned peers = __match_any_sync(kFullMask, ok ? e : -1);
    if (ok) {
      const int32_t r = next_row[e] + __popc(peers & ((1u << lane) - 1u));
      map[i] = r;
      row_token[r] = static_cast<int32_t>(i / k);
      mindices[r] = e;
    } else if (valid) {
      map[i] = -1;
    }
    __syncwarp();
    if (ok && lane == __ffs(peers) - 1) next_row[e] += __popc(peers);
    __syncwarp();
  }
}

template <bool kVec16>
__global__ void moe_permute_copy_kernel(const char* __restrict__ x, int64_t row_bytes, const float* __restrict__ scale, int64_t S,
                                        const int32_t* __restrict__ row_token, int64_t rows, char* out, float* scale_out) {
  const int lane = threadIdx.x & 31;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (r >= rows) return;
  const int32_t src = row_token[r];
  if (src < 0) return;  // padding: left unwritten, nothing reads it
  char* dst = out + r * row_bytes;
  if (kVec16) {
    int4* d = reinterpret_cast<int4*>(dst);
    const int64_t nv = row_bytes / 16;
    const int4* s = reinterpret_cast<const int4*>(x + static_cast<int64_t>(src) * row_bytes);
#pragma unroll 4
    for (int64_t i = lane; i < nv; i += 32) d[i] = s[i];
  } else {
    const char* s = x + static_cast<int64_t>(src) * row_bytes;
    for (int64_t i = lane; i < row_bytes; i += 32) dst[i] = s[i];
  }
  if (scale_out)
    for (int64_t c = lane; c < S; c += 32) scale_out[r * S + c] = scale[src * S + c];
}

void moe_permute(const void* x, int64_t row_bytes, const float* scale, int64_t S, const int32_t* indices, int64_t T, int64_t k,
                 int64_t E, int64_t align, int64_t rows, void* out, float* scale_out, int32_t* mindices, int32_t* map,
                 int32_t* counts, int32_t* offsets, int32_t* workspace, DiagRecord* diag, Stream stream) {
  cudaStream_t st = to_cuda(stream);
  const int64_t n = T * k, chunks = (n + kMoePermuteChunk - 1) / kMoePermuteChunk;
  int32_t* chunk_hist = workspace;
  int32_t* row_token = workspace + chunks * E;
  const size_t hist_smem = static_cast<size_t>(E) * sizeof(int32_t);
  if (rows > 0) {
    cudaMemsetAsync(mindices, 0xff, static_cast<size_t>(rows) * sizeof(int32_t), st);
    cudaMemsetAsync(row_token, 0xff, static_cast<size_t>(rows) * sizeof(int32_t), st);
  }
  if (chunks > 0)
    moe_permute_hist_kernel<<<static_cast<unsigned>(chunks), 256, hist_smem, st>>>(indices, n, static_cast<int>(E), chunk_hist, diag);
  moe_permute_scan_kernel<<<1, 1024, 0, st>>>(chunk_hist, chunks, static_cast<int>(E), static_cast<int>(align), counts, offsets);
  if (chunks > 0)
    moe_permute_scatter_kernel<<<static_cast<unsigned>(chunks), 32, hist_smem, st>>>(indices, n, static_cast<int>(k), static_cast<int>(E),
                                                                                   chunk_hist, offsets, map, row_token, mindices);
  if (rows == 0) return;
  const unsigned blocks = static_cast<unsigned>((rows + 7) / 8);
  const bool vec16 = row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0;
  if (vec16)
    moe_permute_copy_kernel<true><<<blocks, 256, 0, st>>>(static_cast<const char*>(x), row_bytes, scale, S, row_token, rows,
                                                        static_cast<char*>(out), scale_out);
  else
    moe_permute_copy_kernel<false><<<blocks, 256, 0, st>>>(static_cast<const char*>(x), row_bytes, scale, S, row_token, rows,
                                                         static_cast<char*>(out), scale_out);
}

// ---------------------------------------------------------------------------------------------------
// Unpermute: one block per token; each thread owns 8 consecutive columns (16-byte loads of bf16, two of
// f32) and adds the k slots in order, as the CPU does.

// Thread 0 reports the token's first bad map entry (the others skip such entries silently).
__device__ __forceinline__ void unpermute_check_map(const int32_t* map, int64_t t, int64_t k, int64_t M, DiagRecord* diag) {
  if (threadIdx.x != 0) return;
  for (int64_t j = 0; j < k; ++j) {
    int32_t r = map[t * k + j];
    if (r != -1 && !diag_check_index(diag, kDiagMoeMap, r, M)) return;
  }
}

template <bool kYBf16, bool kOutBf16>
__global__ void moe_unpermute_vec8_kernel(const void* __restrict__ y, int64_t M, int64_t N, const int32_t* __restrict__ map,
                                          const float* __restrict__ weights, int64_t k, void* out, DiagRecord* diag) {
  const int64_t t = blockIdx.x;
  unpermute_check_map(map, t, k, M, diag);
  for (int64_t c8 = threadIdx.x; c8 < N / 8; c8 += blockDim.x) {
    float acc[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[i] = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      const int32_t r = map[t * k + j];
      if (r < 0 || r >= M) continue;
      const float w = weights[t * k + j];
      float v[8];
      if (kYBf16) {
        int4 q = reinterpret_cast<const int4*>(static_cast<const uint16_t*>(y) + r * N)[c8];
        const uint32_t u[4] = {static_cast<uint32_t>(q.x), static_cast<uint32_t>(q.y), static_cast<uint32_t>(q.z), static_cast<uint32_t>(q.w)};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          v[2 * i] = bits_f32(u[i] << 16);
          v[2 * i + 1] = bits_f32(u[i] & 0xffff0000u);
        }
      } else {
        const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(y) + r * N) + 2 * c8;
        float4 a = p[0], b = p[1];
        v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[i] = DSK_FADD(acc[i], DSK_FMUL(w, v[i]));
    }
    if (kOutBf16) {
      uint32_t u[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) u[i] = static_cast<uint32_t>(f32_to_bf16(acc[2 * i])) | (static_cast<uint32_t>(f32_to_bf16(acc[2 * i + 1])) << 16);
      reinterpret_cast<int4*>(static_cast<uint16_t*>(out) + t * N)[c8] =
          make_int4(static_cast<int>(u[0]), static_cast<int>(u[1]), static_cast<int>(u[2]), static_cast<int>(u[3]));
    } else {
      float4* p = reinterpret_cast<float4*>(static_cast<float*>(out) + t * N) + 2 * c8;
      p[0] = make_float4(acc[0], acc[1], acc[2], acc[3]);
      p[1] = make_float4(acc[4], acc[5], acc[6], acc[7]);
    }
  }
}

__global__ void moe_unpermute_scalar_kernel(const void* __restrict__ y, DType ydt, int64_t M, int64_t N, const int32_t* __restrict__ map,
                                            const float* __restrict__ weights, int64_t k, void* out, DType odt, DiagRecord* diag) {
  const int64_t t = blockIdx.x;
  unpermute_check_map(map, t, k, M, diag);
  for (int64_t c = threadIdx.x; c < N; c += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      const int32_t r = map[t * k + j];
      if (r < 0 || r >= M) continue;
      acc = DSK_FADD(acc, DSK_FMUL(weights[t * k + j], load_f32(y, ydt, r * N + c)));
    }
    store_f32(out, odt, t * N + c, acc);
  }
}

void moe_unpermute(const void* y, DType ydt, int64_t M, int64_t N, const int32_t* map, const float* weights, int64_t T, int64_t k,
                   void* out, DType odt, DiagRecord* diag, Stream stream) {
  if (T == 0) return;
  cudaStream_t st = to_cuda(stream);
  const unsigned blocks = static_cast<unsigned>(T);
  const bool vec = N % 8 == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0;
  if (!vec) {
    moe_unpermute_scalar_kernel<<<blocks, 128, 0, st>>>(y, ydt, M, N, map, weights, k, out, odt, diag);
    return;
  }
  const bool yb = ydt == DType::BF16, ob = odt == DType::BF16;
  if (yb && ob) moe_unpermute_vec8_kernel<true, true><<<blocks, 128, 0, st>>>(y, M, N, map, weights, k, out, diag);
  else if (yb) moe_unpermute_vec8_kernel<true, false><<<blocks, 128, 0, st>>>(y, M, N, map, weights, k, out, diag);
  else if (ob) moe_unpermute_vec8_kernel<false, true><<<blocks, 128, 0, st>>>(y, M, N, map, weights, k, out, diag);
  else moe_unpermute_vec8_kernel<false, false><<<blocks, 128, 0, st>>>(y, M, N, map, weights, k, out, diag);
}

}  // namespace dsk::cuda
