// RMSNorm (optionally fused with the residual add): argument checks, then native/cpu/norm.h or
// native/cuda/norm.h.
#include "../cpu/norm.h"
#include "../cuda/norm.h"
#include "addon.h"
#include "rows.h"

namespace dsk::addon {

// rmsNorm(x [..., D], weight [D], residual [..., D] | null, eps, out [..., D], residualOut | null)
static Napi::Value rms_norm(const Napi::CallbackInfo& info) {
  OpArgs a(info, "rmsNorm", 6);
  TensorArg x = a.tensor(0, "x"), w = a.tensor(1, "weight"), out = a.tensor(4, "out");
  std::optional<TensorArg> res = a.optional_tensor(2, "residual"), res_out = a.optional_tensor(5, "residualOut");
  double eps = a.number(3, "eps");
  a.dtype_in(x, {DType::BF16, DType::F32});
  a.dtype_in(w, {DType::BF16, DType::F32});
  a.ndim_is(w, 1);
  a.contiguous(w);
  RowsArg xr = rows_of(a, x);
  a.dim_is(w, 0, xr.cols, "the last dim of x");
  if (out.dtype != x.dtype || out.shape != x.shape) a.fail_range("out must match x in dtype and shape");
  a.contiguous(out);
  RowsArg rr{nullptr, 0, 0, 0};
  if (res.has_value() != res_out.has_value()) a.fail_type("residual and residualOut go together");
  if (res) {
    if (res->dtype != x.dtype || res->shape != x.shape) a.fail_range("residual must match x in dtype and shape");
    if (res_out->dtype != x.dtype || res_out->shape != x.shape) a.fail_range("residualOut must match x in dtype and shape");
    a.contiguous(*res_out);
    rr = rows_of(a, *res);
  }
  Device dev = a.same_device({&x, &w, &out, res ? &*res : nullptr, res_out ? &*res_out : nullptr});
  DType dt = x.dtype;
  float e = static_cast<float>(eps);
  TensorArg ro = res_out ? *res_out : out, ri = res ? *res : x;
  void* ro_ptr = res_out ? res_out->data() : nullptr;
  enqueue(a.op(), dev,
          [=] {
            cpu::rms_norm(xr.data, xr.stride, rr.data, rr.stride, dt, w.data(), w.dtype, xr.rows, xr.cols, e, out.data(), ro_ptr);
            (void)x; (void)ro; (void)ri;
          },
          [=](auto& d) {
            cuda::rms_norm(xr.data, xr.stride, rr.data, rr.stride, dt, w.data(), w.dtype, xr.rows, xr.cols, e, out.data(), ro_ptr,
                           d.stream());
          });
  return info.Env().Undefined();
}

DSK_EXPORTS(norm_exports) { def(env, exports, "rmsNorm", rms_norm); }

}  // namespace dsk::addon
