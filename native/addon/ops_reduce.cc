// Reductions over the last dim (softmax, logSoftmax, argmax, topk): argument checks, then
// native/cpu/reduce.h or native/cuda/reduce.h.
#include "../cpu/reduce.h"
#include "../cuda/reduce.h"
#include "addon.h"
#include "rows.h"

namespace dsk::addon {

static void check_input(const OpArgs& a, const TensorArg& x) { a.dtype_in(x, {DType::F32, DType::BF16, DType::F16}); }

// softmax(x [..., n], log bool, out [..., n] contiguous bf16|f32|f16)
static Napi::Value softmax(const Napi::CallbackInfo& info) {
  OpArgs a(info, "softmax", 3);
  TensorArg x = a.tensor(0, "x"), out = a.tensor(2, "out");
  bool log = a.boolean(1, "log");
  check_input(a, x);
  a.dtype_in(out, {DType::F32, DType::BF16, DType::F16});
  RowsArg xr = rows_of(a, x);
  if (out.shape != x.shape) a.fail_range("out must have the shape of x");
  a.contiguous(out);
  Device dev = a.same_device({&x, &out});
  DType dt = x.dtype;
  enqueue(log ? "logSoftmax" : "softmax", dev,
          [=] { cpu::softmax(xr.data, xr.stride, dt, xr.rows, xr.cols, log, out.data(), out.dtype); (void)x; },
          [=](auto& d) { cuda::softmax(xr.data, xr.stride, dt, xr.rows, xr.cols, log, out.data(), out.dtype, d.stream()); });
  return info.Env().Undefined();
}

// argmax(x [..., n], out i32 [...] contiguous)
static Napi::Value argmax(const Napi::CallbackInfo& info) {
  OpArgs a(info, "argmax", 2);
  TensorArg x = a.tensor(0, "x"), out = a.tensor(1, "out");
  check_input(a, x);
  a.dtype_in(out, {DType::I32});
  RowsArg xr = rows_of(a, x);
  if (xr.cols < 1) a.fail_range("x.shape[-1] must be at least 1");
  if (xr.cols > INT32_MAX) a.fail_range("x.shape[-1] must fit in i32");
  a.contiguous(out);
  if (out.numel() != xr.rows) a.fail_range("out must have one element per row of x");
  Device dev = a.same_device({&x, &out});
  DType dt = x.dtype;
  enqueue(a.op(), dev, [=] { cpu::argmax(xr.data, xr.stride, dt, xr.rows, xr.cols, out.ptr<int32_t>()); (void)x; },
          [=](auto& d) { cuda::argmax(xr.data, xr.stride, dt, xr.rows, xr.cols, out.ptr<int32_t>(), d.stream()); });
  return info.Env().Undefined();
}

// topk(x [..., n], k, values [..., k] dtype of x, indices i32 [..., k]), 1 <= k <= min(n, 4096)
static Napi::Value topk(const Napi::CallbackInfo& info) {
  OpArgs a(info, "topk", 4);
  TensorArg x = a.tensor(0, "x"), values = a.tensor(2, "values"), indices = a.tensor(3, "indices");
  check_input(a, x);
  RowsArg xr = rows_of(a, x);
  if (xr.cols > INT32_MAX) a.fail_range("x.shape[-1] must fit in i32");
  int64_t k = a.integer(1, "k", 1, xr.cols < cuda::kTopkMax ? xr.cols : cuda::kTopkMax);
  if (values.dtype != x.dtype) a.fail_type("values must have the dtype of x");
  a.dtype_in(indices, {DType::I32});
  a.contiguous(values);
  a.contiguous(indices);
  if (values.numel() != xr.rows * k || indices.numel() != xr.rows * k) a.fail_range("values and indices must hold k elements per row of x");
  Device dev = a.same_device({&x, &values, &indices});
  DType dt = x.dtype;
  enqueue(a.op(), dev, [=] { cpu::topk(xr.data, xr.stride, dt, xr.rows, xr.cols, k, values.data(), indices.ptr<int32_t>()); (void)x; },
          [=](auto& d) { cuda::topk(xr.data, xr.stride, dt, xr.rows, xr.cols, k, values.data(), indices.ptr<int32_t>(), row_launch(d), d.stream()); });
  return info.Env().Undefined();
}

DSK_EXPORTS(reduce_exports) {
  def(env, exports, "softmax", softmax);
  def(env, exports, "argmax", argmax);
  def(env, exports, "topk", topk);
}

}  // namespace dsk::addon
