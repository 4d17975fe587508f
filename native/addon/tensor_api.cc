// Tensor runtime ops: strided copy/cast, fill, random.
#include "../cpu/tensor_ops.h"
#include "../cuda/tensor_ops.h"
#include "addon.h"

namespace dsk::addon {

// copy(dst, src): dst = src converted to dst's dtype; same shape, same device, any strides.
static Napi::Value copy(const Napi::CallbackInfo& info) {
  OpArgs a(info, "copy", 2);
  TensorArg dst = a.tensor(0, "dst"), src = a.tensor(1, "src");
  if (dst.shape != src.shape) a.fail_range("dst shape " + shape_str(dst.shape) + " differs from src shape " + shape_str(src.shape));
  Device dev = a.same_device({&dst, &src});
  if (dst.numel() == 0) return info.Env().Undefined();
  StridedView dv = dst.view(), sv = src.view();
  enqueue("copy", dev, [dst, src, dv, sv] { cpu::copy_strided(dv, sv); },
          [=](auto& d) { cuda::copy_strided(dv, sv, d.stream()); });
  return info.Env().Undefined();
}

// fill(dst, value): dst contiguous.
static Napi::Value fill(const Napi::CallbackInfo& info) {
  OpArgs a(info, "fill", 2);
  TensorArg dst = a.tensor(0, "dst");
  a.contiguous(dst);
  double v = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : a.number(1, "value");
  int64_t n = dst.numel();
  void* p = dst.data();
  DType t = dst.dtype;
  enqueue("fill", dst.device, [dst, p, t, n, v] { cpu::fill(p, t, n, v); }, [=](auto& d) { cuda::fill(p, t, n, v, d.stream()); });
  return info.Env().Undefined();
}

// random(dst, kind: 0 uniform | 1 normal | 2 int, seed (two u32 halves), a, b): dst contiguous.
static Napi::Value random(const Napi::CallbackInfo& info) {
  OpArgs a(info, "random", 6);
  TensorArg dst = a.tensor(0, "dst");
  a.contiguous(dst);
  auto kind = static_cast<RandomKind>(a.integer(1, "kind", 0, 2));
  uint64_t seed = (static_cast<uint64_t>(a.integer(2, "seedHigh", 0, 0xffffffffLL)) << 32) |
                  static_cast<uint64_t>(a.integer(3, "seedLow", 0, 0xffffffffLL));
  double lo = a.number(4, "a"), hi = a.number(5, "b");
  if (kind == RandomKind::Int && !(hi > lo)) a.fail_range("high must be greater than low");
  int64_t n = dst.numel();
  void* p = dst.data();
  DType t = dst.dtype;
  enqueue("random", dst.device, [dst, p, t, n, kind, seed, lo, hi] { cpu::random_fill(p, t, n, kind, seed, lo, hi); },
          [=](auto& d) { cuda::random_fill(p, t, n, kind, seed, lo, hi, d.stream()); });
  return info.Env().Undefined();
}

DSK_EXPORTS(tensor_exports) {
  def(env, exports, "copy", copy);
  def(env, exports, "fill", fill);
  def(env, exports, "random", random);
}

}  // namespace dsk::addon
