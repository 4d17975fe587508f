// Layer ops: argument checks (memory safety first: every pointer the kernel touches is inside its
// tensor), then dispatch to native/cpu/layers.h or native/cuda/layers.h.
#include "../cpu/layers.h"
#include "../cuda/layers.h"
#include "addon.h"

namespace dsk::addon {

// embedding(ids i32 [T], table [V, D], out [T, D])
static Napi::Value embedding(const Napi::CallbackInfo& info) {
  OpArgs a(info, "embedding", 3);
  TensorArg ids = a.tensor(0, "ids"), table = a.tensor(1, "table"), out = a.tensor(2, "out");
  a.dtype_in(ids, {DType::I32});
  a.ndim_is(ids, 1);
  a.ndim_is(table, 2);
  a.ndim_is(out, 2);
  a.contiguous(ids);
  a.contiguous(table);
  a.contiguous(out);
  if (out.dtype != table.dtype) a.fail_type("out must have the dtype of table");
  a.dim_is(out, 0, ids.size(0), "ids length");
  a.dim_is(out, 1, table.size(1), "table width");
  Device dev = a.same_device({&ids, &table, &out});
  int64_t T = ids.size(0), V = table.size(0), D = table.size(1);
  enqueue(a.op(), dev,
          [=] { cpu::embedding(ids.ptr<int32_t>(), T, table.data(), V, D, table.dtype, out.data(), cpu_diag()); },
          [=](auto& d) { cuda::embedding(ids.ptr<int32_t>(), T, table.data(), V, D, table.dtype, out.data(), d.diag_device(), d.stream()); });
  return info.Env().Undefined();
}

DSK_EXPORTS(layer_exports) { def(env, exports, "embedding", embedding); }

}  // namespace dsk::addon
