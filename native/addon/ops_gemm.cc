// Dense GEMM (bf16/f32, NT): argument checks, then dispatch to native/cpu/dense_gemm.h or
// native/cuda/dense_gemm.h. The FP8 GEMMs live in their own files.
#include "../cpu/dense_gemm.h"
#include "../cuda/dense_gemm.h"
#include "addon.h"
#include "rows.h"

namespace dsk::addon {

// gemm(a [M, K], b [N, K], out [M, N] contiguous): a and b bf16|f32 of one dtype, row-major views.
static Napi::Value gemm(const Napi::CallbackInfo& info) {
  OpArgs a(info, "gemm", 3);
  TensorArg A = a.tensor(0, "a"), B = a.tensor(1, "b"), out = a.tensor(2, "out");
  a.dtype_in(A, {DType::BF16, DType::F32});
  if (B.dtype != A.dtype) a.fail_type(std::string("b must have the dtype of a (") + dtype_name(A.dtype) + "), got " + dtype_name(B.dtype));
  a.dtype_in(out, {DType::BF16, DType::F32});
  a.ndim_is(A, 2);
  a.ndim_is(B, 2);
  a.ndim_is(out, 2);
  a.contiguous(out);
  a.dim_is(B, 1, A.size(1), "K of a");
  a.dim_is(out, 0, A.size(0), "M of a");
  a.dim_is(out, 1, B.size(0), "N of b");
  RowsArg ar = rows_of(a, A), br = rows_of(a, B);
  Device dev = a.same_device({&A, &B, &out});
  int64_t M = A.size(0), N = B.size(0), K = A.size(1);
  DType dt = A.dtype;
  enqueue(a.op(), dev,
          [=] {
            cpu::gemm_nt(ar.data, ar.stride, br.data, br.stride, dt, M, N, K, out.data(), out.dtype);
            (void)A; (void)B;
          },
          [=](auto& d) { cuda::gemm_nt(ar.data, ar.stride, br.data, br.stride, dt, M, N, K, out.data(), out.dtype, d.stream()); });
  return info.Env().Undefined();
}

DSK_EXPORTS(gemm_exports) { def(env, exports, "gemm", gemm); }

}  // namespace dsk::addon
