// Benchmark-only helpers (never used by the ops): cuBLASLt, the vendor reference, loaded at run time with
// dlopen when a libcublasLt is present (nothing links to it). Its block-scaled FP8 GEMM (1x128 activation
// scales x 128x128 weight scales, bf16 out) is what bench/gemm.ts compares with; its plain bf16 GEMM gives
// the harness a vendor-grade bf16 matrix rate for the floors.
#include <dlfcn.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>

#include "addon.h"

#if DSK_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace dsk::addon {

#if DSK_WITH_CUDA
namespace {

void check(cudaError_t e, const char* op) {
  if (e != cudaSuccess) throw Error(ErrorKind::Cuda, op, cudaGetErrorString(e), cudaGetErrorName(e));
}

// ---- cuBLASLt through dlopen: the few declarations we need (values from the public cublasLt.h) ----
using LtHandle = void*;
using LtDesc = void*;
using LtLayout = void*;
using LtPref = void*;
struct LtAlgo { uint64_t data[8]; };
struct LtHeuristic {
  LtAlgo algo;
  size_t workspace_size;
  int state;
  float waves;
  int reserved[4];
};
enum : int {
  kCudaR32F = 0, kCudaR16BF = 14, kCudaR8FE4M3 = 28,        // cudaDataType_t
  kCublasCompute32F = 68,                                   // cublasComputeType_t
  kOpN = 0, kOpT = 1,                                       // cublasOperation_t
  kDescTransA = 3, kDescTransB = 4,                         // cublasLtMatmulDescAttributes_t
  kDescAScalePointer = 17, kDescBScalePointer = 18,
  kDescAScaleMode = 31, kDescBScaleMode = 32,
  kScaleVec128 = 4, kScaleBlk128x128 = 5,                   // cublasLtMatmulMatrixScale_t
  kPrefMaxWorkspace = 1,                                    // cublasLtMatmulPreferenceAttributes_t
};

struct Lt {
  void* lib = nullptr;
  std::string why;
  int (*create)(LtHandle*) = nullptr;
  int (*desc_create)(LtDesc*, int, int) = nullptr;
  int (*desc_set)(LtDesc, int, const void*, size_t) = nullptr;
  int (*layout_create)(LtLayout*, int, uint64_t, uint64_t, int64_t) = nullptr;
  int (*pref_create)(LtPref*) = nullptr;
  int (*pref_set)(LtPref, int, const void*, size_t) = nullptr;
  int (*heuristic)(LtHandle, LtDesc, LtLayout, LtLayout, LtLayout, LtLayout, LtPref, int, LtHeuristic*, int*) = nullptr;
  int (*matmul)(LtHandle, LtDesc, const void*, const void*, LtLayout, const void*, LtLayout, const void*, const void*, LtLayout, void*,
                LtLayout, const LtAlgo*, void*, size_t, cudaStream_t) = nullptr;
  LtHandle handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 64u << 20;
  struct Plan { LtDesc desc; LtLayout a, b, d; LtAlgo algo; };
  std::map<std::tuple<int, int64_t, int64_t, int64_t>, Plan> plans;  // (kind: 0 fp8 block-scaled, 1 bf16), M, N, K
  std::mutex mu;
};

Lt& lt() {
  static Lt* l = [] {
    Lt* x = new Lt();
    std::vector<std::string> names;
    if (const char* p = std::getenv("DSK_CUBLASLT")) names.push_back(p);
    for (const char* n : {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"}) names.push_back(n);
    for (auto& n : names)
      if ((x->lib = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL))) break;
    if (!x->lib) {
      x->why = "libcublasLt not found (set DSK_CUBLASLT to its path)";
      return x;
    }
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(x->lib, name));
      if (!fn && x->why.empty()) x->why = std::string("libcublasLt lacks ") + name;
    };
    sym(x->create, "cublasLtCreate");
    sym(x->desc_create, "cublasLtMatmulDescCreate");
    sym(x->desc_set, "cublasLtMatmulDescSetAttribute");
    sym(x->layout_create, "cublasLtMatrixLayoutCreate");
    sym(x->pref_create, "cublasLtMatmulPreferenceCreate");
    sym(x->pref_set, "cublasLtMatmulPreferenceSetAttribute");
    sym(x->heuristic, "cublasLtMatmulAlgoGetHeuristic");
    sym(x->matmul, "cublasLtMatmul");
    if (x->why.empty() && x->create(&x->handle) != 0) x->why = "cublasLtCreate failed";
    return x;
  }();
  return *l;
}

// cuBLASLt, loaded and with its workspace on `dev`, or a TypeError saying why not.
Lt& ready(const OpArgs& args, Device dev) {
  if (dev.is_cpu()) args.fail_type("cuBLASLt runs on cuda devices");
  Lt& l = lt();
  if (!l.why.empty()) args.fail_type("cuBLASLt unavailable: " + l.why);
  std::lock_guard<std::mutex> lock(l.mu);
  CudaDeviceGuard g(dev.index);
  if (!l.workspace) check(cudaMalloc(&l.workspace, l.workspace_bytes), args.op());
  return l;
}

// The cached plan of one problem: D^T [N, M] = op(B)=T on our B stored [K, N] col-major, times our A stored
// [K, M] col-major (cuBLASLt is column-major; our row-major NT GEMM is its transpose). `scaled` selects
// DeepSeek's block scaling: 128x128 blocks on our B (its A), 1x128 tiles on our A (its B).
Lt::Plan& plan_for(const OpArgs& args, Lt& l, int kind, int64_t M, int64_t N, int64_t K, int elem_type, bool scaled,
                   const void* b_scale, const void* a_scale) {
  auto key = std::make_tuple(kind, M, N, K);
  auto it = l.plans.find(key);
  if (it != l.plans.end()) {
    if (scaled) {  // a cached plan still points at the previous call's scales
      l.desc_set(it->second.desc, kDescAScalePointer, &b_scale, sizeof b_scale);
      l.desc_set(it->second.desc, kDescBScalePointer, &a_scale, sizeof a_scale);
    }
    return it->second;
  }
  Lt::Plan plan{};
  auto ok = [&](int st, const char* what) {
    if (st != 0) args.fail_type(std::string("cuBLASLt ") + what + " failed with status " + std::to_string(st));
  };
  ok(l.desc_create(&plan.desc, kCublasCompute32F, kCudaR32F), "MatmulDescCreate");
  int32_t ta = kOpT, tb = kOpN;
  ok(l.desc_set(plan.desc, kDescTransA, &ta, sizeof ta), "TRANSA");
  ok(l.desc_set(plan.desc, kDescTransB, &tb, sizeof tb), "TRANSB");
  if (scaled) {
    int32_t ma = kScaleBlk128x128, mb = kScaleVec128;
    ok(l.desc_set(plan.desc, kDescAScaleMode, &ma, sizeof ma), "A_SCALE_MODE");
    ok(l.desc_set(plan.desc, kDescBScaleMode, &mb, sizeof mb), "B_SCALE_MODE");
    // The heuristic only sees the scaling modes once the scale pointers are set.
    ok(l.desc_set(plan.desc, kDescAScalePointer, &b_scale, sizeof b_scale), "A_SCALE_POINTER");
    ok(l.desc_set(plan.desc, kDescBScalePointer, &a_scale, sizeof a_scale), "B_SCALE_POINTER");
  }
  ok(l.layout_create(&plan.a, elem_type, static_cast<uint64_t>(K), static_cast<uint64_t>(N), K), "layout A");
  ok(l.layout_create(&plan.b, elem_type, static_cast<uint64_t>(K), static_cast<uint64_t>(M), K), "layout B");
  ok(l.layout_create(&plan.d, kCudaR16BF, static_cast<uint64_t>(N), static_cast<uint64_t>(M), N), "layout D");
  LtPref pref = nullptr;
  ok(l.pref_create(&pref), "PreferenceCreate");
  uint64_t ws = l.workspace_bytes;
  ok(l.pref_set(pref, kPrefMaxWorkspace, &ws, sizeof ws), "PREF_MAX_WORKSPACE_BYTES");
  LtHeuristic h{};
  int found = 0;
  ok(l.heuristic(l.handle, plan.desc, plan.a, plan.b, plan.d, plan.d, pref, 1, &h, &found), "AlgoGetHeuristic");
  if (found < 1) args.fail_type("cuBLASLt found no algorithm for this GEMM");
  plan.algo = h.algo;
  return l.plans.emplace(key, plan).first->second;
}

// Enqueues D = A·Bᵀ with a plan on the device's stream.
void run_plan(const OpArgs& args, Lt& l, Lt::Plan& plan, const TensorArg& a, const TensorArg& b, const TensorArg& out, CudaDevice& d) {
  const float alpha = 1.0f, beta = 0.0f;
  int st = l.matmul(l.handle, plan.desc, &alpha, b.data(), plan.a, a.data(), plan.b, &beta, out.data(), plan.d, out.data(), plan.d,
                    &plan.algo, l.workspace, l.workspace_bytes, reinterpret_cast<cudaStream_t>(d.stream()));
  if (st != 0) args.fail_type("cublasLtMatmul failed with status " + std::to_string(st));
}

}  // namespace

// benchCublasLtStatus() -> '' when cuBLASLt is usable, else why not.
static Napi::Value bench_cublaslt_status(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), lt().why);
}

// benchCublasLtFp8Gemm(a fp8 [M,K], aScaleT f32 [K/128, M] (M contiguous, as cuBLASLt's 1x128 mode wants),
// b fp8 [N,K], bScale f32 [ceil(N/128), K/128], out bf16 [M,N]): D = A·Bᵀ with the same block scaling.
static Napi::Value bench_cublaslt_fp8_gemm(const Napi::CallbackInfo& info) {
  OpArgs args(info, "benchCublasLtFp8Gemm", 5);
  TensorArg a = args.tensor(0, "a"), sat = args.tensor(1, "aScaleT"), b = args.tensor(2, "b"), sb = args.tensor(3, "bScale"),
            out = args.tensor(4, "out");
  for (const TensorArg* t : {&a, &b}) args.dtype_in(*t, {DType::FP8E4M3});
  for (const TensorArg* t : {&sat, &sb}) args.dtype_in(*t, {DType::F32});
  args.dtype_in(out, {DType::BF16});
  for (const TensorArg* t : {&a, &sat, &b, &sb, &out}) {
    args.ndim_is(*t, 2);
    args.contiguous(*t);
  }
  const int64_t M = a.size(0), K = a.size(1), N = b.size(0);
  if (K % 128) args.fail_range("K must be a multiple of 128");
  args.dim_is(b, 1, K);
  args.dim_is(sat, 0, K / 128);
  args.dim_is(sat, 1, M);
  args.dim_is(sb, 0, (N + 127) / 128);
  args.dim_is(sb, 1, K / 128);
  args.dim_is(out, 0, M);
  args.dim_is(out, 1, N);
  Device dev = args.same_device({&a, &sat, &b, &sb, &out});
  Lt& l = ready(args, dev);
  CudaDevice& d = CudaDevice::get(dev.index, args.op());
  CudaDeviceGuard g(dev.index);
  std::lock_guard<std::mutex> lock(l.mu);
  // cuBLASLt's A is our B (weights, 128x128 blocks), its B is our A (activations, 1x128 tiles).
  run_plan(args, l, plan_for(args, l, 0, M, N, K, kCudaR8FE4M3, true, sb.data(), sat.data()), a, b, out, d);
  return info.Env().Undefined();
}

// benchCublasLtGemm(a bf16 [M,K], b bf16 [N,K], out bf16 [M,N]): D = A·Bᵀ, fp32 accumulation.
static Napi::Value bench_cublaslt_gemm(const Napi::CallbackInfo& info) {
  OpArgs args(info, "benchCublasLtGemm", 3);
  TensorArg a = args.tensor(0, "a"), b = args.tensor(1, "b"), out = args.tensor(2, "out");
  for (const TensorArg* t : {&a, &b, &out}) {
    args.dtype_in(*t, {DType::BF16});
    args.ndim_is(*t, 2);
    args.contiguous(*t);
  }
  const int64_t M = a.size(0), K = a.size(1), N = b.size(0);
  args.dim_is(b, 1, K);
  args.dim_is(out, 0, M);
  args.dim_is(out, 1, N);
  Device dev = args.same_device({&a, &b, &out});
  Lt& l = ready(args, dev);
  CudaDevice& d = CudaDevice::get(dev.index, args.op());
  CudaDeviceGuard g(dev.index);
  std::lock_guard<std::mutex> lock(l.mu);
  run_plan(args, l, plan_for(args, l, 1, M, N, K, kCudaR16BF, false, nullptr, nullptr), a, b, out, d);
  return info.Env().Undefined();
}

DSK_EXPORTS(bench_cublaslt_exports) {
  def(env, exports, "benchCublasLtStatus", bench_cublaslt_status);
  def(env, exports, "benchCublasLtFp8Gemm", bench_cublaslt_fp8_gemm);
  def(env, exports, "benchCublasLtGemm", bench_cublaslt_gemm);
}
#endif

}  // namespace dsk::addon
