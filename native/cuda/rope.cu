#include "../math/rope_freqs.h"
#include "common.cuh"
#include "rope.h"

namespace dsk::cuda {

// The frequency table travels as a kernel parameter (1 KiB), no device allocation needed.
struct RopeFreqs {
  double inv_freq[kMaxRopeDim / 2];
};

// A block handles `tpb` consecutive tokens: first the tokens' cos/sin (double-precision angles, as the CPU
// reference), shared by all heads, then every (head, pair) of those tokens. Memory-bound: each element is
// read and written once, consecutive threads touch consecutive pairs.
template <DType DT>
__global__ void rope_kernel(const void* x, void* out, int64_t T, int H, int D, int rope_dim, const int32_t* positions,
                            RopeFreqs f, double mscale, int tpb) {
  extern __shared__ float2 cs[];  // [tpb][rope_dim / 2]
  const int half = rope_dim / 2;
  const int64_t t0 = static_cast<int64_t>(blockIdx.x) * tpb;
  const int nt = static_cast<int>(T - t0 < tpb ? T - t0 : tpb);
  for (int k = threadIdx.x; k < nt * half; k += blockDim.x) {
    const int i = k % half;
    double s, c;
    sincos(static_cast<double>(positions[t0 + k / half]) * f.inv_freq[i], &s, &c);
    cs[k] = make_float2(static_cast<float>(c * mscale), static_cast<float>(s * mscale));
  }
  __syncthreads();
  const int pairs = D / 2, pass = (D - rope_dim) / 2;
  const int64_t n = static_cast<int64_t>(nt) * H * pairs;
  for (int64_t k = threadIdx.x; k < n; k += blockDim.x) {
    const int64_t row = k / pairs;
    const int p = static_cast<int>(k - row * pairs);
    const int64_t j = (t0 * H + row) * D + 2 * p;
    float x0 = load_f32(x, DT, j), x1 = load_f32(x, DT, j + 1);
    if (p >= pass) {
      const float2 c = cs[(row / H) * half + (p - pass)];
      float y0, y1;
      rope_rotate_pair(x0, x1, c.x, c.y, y0, y1);
      x0 = y0;
      x1 = y1;
    }
    store_f32(out, DT, j, x0);
    store_f32(out, DT, j + 1, x1);
  }
}

void rope(const void* x, DType dt, int64_t T, int64_t H, int64_t D, int rope_dim, const int32_t* positions,
          const double* inv_freq, double mscale, void* out, Stream stream) {
  if (T == 0 || H == 0) return;
  RopeFreqs f{};
  for (int i = 0; i < rope_dim / 2; ++i) f.inv_freq[i] = inv_freq[i];
  const int64_t pairs_per_token = H * D / 2;
  int tpb = static_cast<int>(pairs_per_token >= 1024 ? 1 : 1024 / pairs_per_token);
  if (tpb > 32) tpb = 32;
  const unsigned grid = static_cast<unsigned>((T + tpb - 1) / tpb);
  const size_t smem = static_cast<size_t>(tpb) * (rope_dim / 2) * sizeof(float2);
  auto s = to_cuda(stream);
  switch (dt) {
    case DType::F32: rope_kernel<DType::F32><<<grid, 256, smem, s>>>(x, out, T, int(H), int(D), rope_dim, positions, f, mscale, tpb); break;
    case DType::BF16: rope_kernel<DType::BF16><<<grid, 256, smem, s>>>(x, out, T, int(H), int(D), rope_dim, positions, f, mscale, tpb); break;
    default: rope_kernel<DType::F16><<<grid, 256, smem, s>>>(x, out, T, int(H), int(D), rope_dim, positions, f, mscale, tpb); break;
  }
}

}  // namespace dsk::cuda
