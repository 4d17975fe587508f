// FP8 block-scaled GEMMs: argument checks (every pointer the kernels touch lies inside its tensor), then
// dispatch to native/cpu/fp8_gemm.h or native/cuda/fp8_gemm.h. Outputs are allocated (or passed) by the TS
// layer; rows the op must leave untouched keep whatever `out` held.
#include <algorithm>

#include "../cpu/fp8_gemm.h"
#include "../cuda/fp8_gemm.h"
#include "addon.h"

namespace dsk::addon {
namespace {

// Checks a, aScale, b, bScale, out for a problem with `a_rows` rows of A and `groups` groups of B, and
// fills the pointers and sizes of `p`. `a_dims`/`b_dims` are 2 or 3 (leading group dim).
void check_operands(const OpArgs& args, const TensorArg& a, const TensorArg& sa, const TensorArg& b, const TensorArg& sb,
                    const TensorArg& out, int a_dims, int b_dims, Fp8GemmProblem& p) {
  for (const TensorArg* t : {&a, &b}) args.dtype_in(*t, {DType::FP8E4M3});
  for (const TensorArg* t : {&sa, &sb}) args.dtype_in(*t, {DType::F32});
  args.dtype_in(out, {DType::BF16});
  args.ndim_is(a, a_dims);
  args.ndim_is(sa, a_dims);
  args.ndim_is(b, b_dims);
  args.ndim_is(sb, b_dims);
  args.ndim_is(out, a_dims);
  for (const TensorArg* t : {&a, &sa, &b, &sb, &out}) args.contiguous(*t);
  const int64_t K = a.size(-1);
  if (K % 128 != 0) args.fail_range("a.shape[-1] (K) must be a multiple of 128, got " + std::to_string(K));
  const int64_t N = b.size(-2), KB = K / 128, NB = (N + 127) / 128;
  args.dim_is(b, -1, K, "K of a");
  if (a_dims == 3) args.dim_is(sa, 0, a.size(0), "groups of a");
  args.dim_is(sa, a_dims - 2, a.size(a_dims - 2), "rows of a");
  args.dim_is(sa, a_dims - 1, KB, "K/128");
  if (b_dims == 3) args.dim_is(sb, 0, b.size(0), "groups of b");
  args.dim_is(sb, b_dims - 2, NB, "ceil(N/128)");
  args.dim_is(sb, b_dims - 1, KB, "K/128");
  if (a_dims == 3) args.dim_is(out, 0, a.size(0), "groups of a");
  args.dim_is(out, a_dims - 2, a.size(a_dims - 2), "rows of a");
  args.dim_is(out, a_dims - 1, N, "N of b");
  p.a = a.ptr<uint8_t>();
  p.sa = sa.ptr<float>();
  p.b = b.ptr<uint8_t>();
  p.sb = sb.ptr<float>();
  p.d = out.ptr<uint16_t>();
  p.n = N;
  p.k = K;
  p.groups = b_dims == 3 ? b.size(0) : 1;
}

void launch(const OpArgs& args, Device dev, const Fp8GemmProblem& p, std::initializer_list<TensorArg> keep) {
  std::vector<TensorArg> hold(keep);  // keeps the buffers alive until the CPU task has run
  enqueue(args.op(), dev,
          [p, hold] {
            Fp8GemmProblem q = p;
            q.diag = cpu_diag();
            cpu::fp8_gemm(q);
          },
          [&](auto& d) {
            Fp8GemmProblem q = p;
            q.diag = d.diag_device();
            cuda::GpuTraits gpu{d.index(), d.info().cc_major, d.info().cc_minor, d.info().sm_count};
            cuda::fp8_gemm(q, gpu, d.stream());
          });
}

}  // namespace

// fp8Gemm(a fp8 [M,K], aScale f32 [M,K/128], b fp8 [N,K], bScale f32 [ceil(N/128),K/128], out bf16 [M,N])
static Napi::Value fp8_gemm(const Napi::CallbackInfo& info) {
  OpArgs args(info, "fp8Gemm", 5);
  TensorArg a = args.tensor(0, "a"), sa = args.tensor(1, "aScale"), b = args.tensor(2, "b"), sb = args.tensor(3, "bScale"),
            out = args.tensor(4, "out");
  Fp8GemmProblem p;
  p.kind = Fp8GemmKind::Normal;
  check_operands(args, a, sa, b, sb, out, 2, 2, p);
  p.m = a.size(0);
  Device dev = args.same_device({&a, &sa, &b, &sb, &out});
  launch(args, dev, p, {a, sa, b, sb, out});
  return info.Env().Undefined();
}

// fp8GroupedGemmContiguous(a [M,K], aScale [M,K/128], b [G,N,K], bScale [G,ceil(N/128),K/128], mIndices i32 [M],
// out bf16 [M,N])
static Napi::Value fp8_grouped_gemm_contiguous(const Napi::CallbackInfo& info) {
  OpArgs args(info, "fp8GroupedGemmContiguous", 6);
  TensorArg a = args.tensor(0, "a"), sa = args.tensor(1, "aScale"), b = args.tensor(2, "b"), sb = args.tensor(3, "bScale"),
            idx = args.tensor(4, "mIndices"), out = args.tensor(5, "out");
  Fp8GemmProblem p;
  p.kind = Fp8GemmKind::Contiguous;
  check_operands(args, a, sa, b, sb, out, 2, 3, p);
  args.dtype_in(idx, {DType::I32});
  args.ndim_is(idx, 1);
  args.contiguous(idx);
  args.dim_is(idx, 0, a.size(0), "rows of a");
  p.m = a.size(0);
  p.m_indices = idx.ptr<int32_t>();
  Device dev = args.same_device({&a, &sa, &b, &sb, &idx, &out});
  launch(args, dev, p, {a, sa, b, sb, idx, out});
  return info.Env().Undefined();
}

// fp8GroupedGemmMasked(a [G,Mmax,K], aScale [G,Mmax,K/128], b [G,N,K], bScale [G,ceil(N/128),K/128], maskedM i32 [G],
// out bf16 [G,Mmax,N])
static Napi::Value fp8_grouped_gemm_masked(const Napi::CallbackInfo& info) {
  OpArgs args(info, "fp8GroupedGemmMasked", 6);
  TensorArg a = args.tensor(0, "a"), sa = args.tensor(1, "aScale"), b = args.tensor(2, "b"), sb = args.tensor(3, "bScale"),
            mm = args.tensor(4, "maskedM"), out = args.tensor(5, "out");
  Fp8GemmProblem p;
  p.kind = Fp8GemmKind::Masked;
  check_operands(args, a, sa, b, sb, out, 3, 3, p);
  args.dim_is(b, 0, a.size(0), "groups of a");
  args.dtype_in(mm, {DType::I32});
  args.ndim_is(mm, 1);
  args.contiguous(mm);
  args.dim_is(mm, 0, a.size(0), "groups of a");
  p.m = a.size(1);
  p.masked_m = mm.ptr<int32_t>();
  Device dev = args.same_device({&a, &sa, &b, &sb, &mm, &out});
  launch(args, dev, p, {a, sa, b, sb, mm, out});
  return info.Env().Undefined();
}

// Test hooks. fp8GemmConfigs() -> names; fp8GemmForceConfig(name) ('' = heuristic);
// fp8GemmChoice(device, kind 0|1|2, m, n, k, groups) -> the configuration the dispatcher would run.
static Napi::Value fp8_gemm_configs(const Napi::CallbackInfo& info) {
  Napi::Array arr = Napi::Array::New(info.Env());
#if DSK_WITH_CUDA
  auto names = cuda::fp8_gemm_configs();
  for (size_t i = 0; i < names.size(); ++i) arr.Set(static_cast<uint32_t>(i), names[i]);
#endif
  return arr;
}

static Napi::Value fp8_gemm_force_config(const Napi::CallbackInfo& info) {
  OpArgs args(info, "fp8GemmForceConfig", 1);
  std::string name = args.string(0, "name");
#if DSK_WITH_CUDA
  if (!name.empty()) {
    auto names = cuda::fp8_gemm_configs();
    if (std::find(names.begin(), names.end(), name) == names.end()) args.fail_range("unknown configuration '" + name + "'");
  }
  cuda::fp8_gemm_force_config(name);
#else
  if (!name.empty()) args.fail_range("this build has no CUDA configurations");
#endif
  return info.Env().Undefined();
}

static Napi::Value fp8_gemm_choice(const Napi::CallbackInfo& info) {
  OpArgs args(info, "fp8GemmChoice", 6);
  int device = args.device(0, "device");
  Fp8GemmProblem p;
  p.kind = static_cast<Fp8GemmKind>(args.integer(1, "kind", 0, 2));
  p.m = args.integer(2, "m", 0, int64_t(1) << 40);
  p.n = args.integer(3, "n", 0, int64_t(1) << 40);
  p.k = args.integer(4, "k", 0, int64_t(1) << 40);
  p.groups = args.integer(5, "groups", 1, int64_t(1) << 20);
  if (device < 0) return Napi::String::New(info.Env(), "cpu");
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(device, args.op());
  cuda::GpuTraits gpu{d.index(), d.info().cc_major, d.info().cc_minor, d.info().sm_count};
  return Napi::String::New(info.Env(), cuda::fp8_gemm_choice(p, gpu));
#else
  args.fail_type("this build has no CUDA support");
#endif
}

DSK_EXPORTS(fp8_gemm_exports) {
  def(env, exports, "fp8Gemm", fp8_gemm);
  def(env, exports, "fp8GroupedGemmContiguous", fp8_grouped_gemm_contiguous);
  def(env, exports, "fp8GroupedGemmMasked", fp8_grouped_gemm_masked);
  def(env, exports, "fp8GemmConfigs", fp8_gemm_configs);
  def(env, exports, "fp8GemmForceConfig", fp8_gemm_force_config);
  def(env, exports, "fp8GemmChoice", fp8_gemm_choice);
}

}  // namespace dsk::addon
