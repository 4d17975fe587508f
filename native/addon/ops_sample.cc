// Sampling: argument checks, then native/cpu/sample.h or native/cuda/sample.h (same token on both).
#include "../cpu/sample.h"
#include "../cuda/sample.h"
#include "addon.h"
#include "rows.h"

namespace dsk::addon {

// sample(logits [B, V] f32|bf16, temperature > 0, topK >= 0, topP in (0, 1], seedHigh, seedLow, out i32 [B])
static Napi::Value sample(const Napi::CallbackInfo& info) {
  OpArgs a(info, "sample", 7);
  TensorArg x = a.tensor(0, "logits"), out = a.tensor(6, "out");
  a.dtype_in(x, {DType::F32, DType::BF16});
  a.ndim_is(x, 2);
  double temperature = a.number(1, "temperature");
  int64_t top_k = a.integer(2, "topK", 0, INT32_MAX);
  double top_p = a.number(3, "topP");
  uint64_t seed = (static_cast<uint64_t>(a.integer(4, "seedHigh", 0, 0xffffffffLL)) << 32) |
                  static_cast<uint64_t>(a.integer(5, "seedLow", 0, 0xffffffffLL));
  if (!(temperature > 0)) a.fail_range("temperature must be > 0 (0 is argmax, handled by the caller)");
  if (!(top_p > 0 && top_p <= 1)) a.fail_range("topP must be in (0, 1]");
  RowsArg xr = rows_of(a, x);
  if (xr.cols < 1) a.fail_range("logits.shape[1] must be at least 1");
  if (xr.cols > INT32_MAX) a.fail_range("logits.shape[1] must fit in i32");
  a.dtype_in(out, {DType::I32});
  a.contiguous(out);
  if (out.numel() != xr.rows) a.fail_range("out must have one element per row of logits");
  Device dev = a.same_device({&x, &out});
  DType dt = x.dtype;
  float t = static_cast<float>(temperature), p = static_cast<float>(top_p);
  if (!(t > 0)) a.fail_range("temperature is too small for f32");
  enqueue(a.op(), dev,
          [=] { cpu::sample(xr.data, xr.stride, dt, xr.rows, xr.cols, t, top_k, p, seed, out.ptr<int32_t>()); (void)x; },
          [=](auto& d) { cuda::sample(xr.data, xr.stride, dt, xr.rows, xr.cols, t, top_k, p, seed, out.ptr<int32_t>(), row_launch(d), d.stream()); });
  return info.Env().Undefined();
}

DSK_EXPORTS(sample_exports) { def(env, exports, "sample", sample); }

}  // namespace dsk::addon
