// Elementwise ops: argument checks, then native/cpu/elementwise.h or native/cuda/elementwise.h. The TS layer
// broadcasts (stride-0 views), so a, b and out arrive with one shape.
#include "../cpu/elementwise.h"
#include "../cuda/elementwise.h"
#include "addon.h"

namespace dsk::addon {

static void check_float(const OpArgs& a, const TensorArg& t) { a.dtype_in(t, {DType::F32, DType::BF16, DType::F16}); }

// binary(op 0 = add | 1 = mul, a, b, out): same shapes, out contiguous.
static Napi::Value binary(const Napi::CallbackInfo& info) {
  OpArgs args(info, "binary", 4);
  int64_t op = args.integer(0, "op", 0, 1);
  TensorArg a = args.tensor(1, "a"), b = args.tensor(2, "b"), out = args.tensor(3, "out");
  check_float(args, a);
  check_float(args, b);
  check_float(args, out);
  if (a.shape != out.shape || b.shape != out.shape)
    args.fail_range("a " + shape_str(a.shape) + " and b " + shape_str(b.shape) + " must have the shape of out " + shape_str(out.shape));
  args.contiguous(out);
  Device dev = args.same_device({&a, &b, &out});
  StridedView av = a.view(), bv = b.view(), ov = out.view();
  BinaryOp bop = static_cast<BinaryOp>(op);
  enqueue(op ? "mul" : "add", dev, [=] { cpu::binary(bop, av, bv, ov); (void)a; (void)b; (void)out; },
          [=](auto& d) { cuda::binary(bop, av, bv, ov, d.stream()); });
  return info.Env().Undefined();
}

// scale(x, s, out)
static Napi::Value scale(const Napi::CallbackInfo& info) {
  OpArgs args(info, "scale", 3);
  TensorArg x = args.tensor(0, "x"), out = args.tensor(2, "out");
  float s = static_cast<float>(args.number(1, "s"));
  check_float(args, x);
  check_float(args, out);
  if (x.shape != out.shape) args.fail_range("out must have the shape of x");
  args.contiguous(out);
  Device dev = args.same_device({&x, &out});
  StridedView xv = x.view(), ov = out.view();
  enqueue(args.op(), dev, [=] { cpu::scale(xv, s, ov); (void)x; (void)out; }, [=](auto& d) { cuda::scale(xv, s, ov, d.stream()); });
  return info.Env().Undefined();
}

DSK_EXPORTS(elementwise_exports) {
  def(env, exports, "binary", binary);
  def(env, exports, "scale", scale);
}

}  // namespace dsk::addon
