// FP8 quantization and SwiGLU: argument checks, then dispatch to native/cpu/quant.h or native/cuda/quant.h.
#include "../math/fp8_quant.h"
#include "../cpu/quant.h"
#include "../cuda/quant.h"
#include "addon.h"
#include "rows.h"

namespace dsk::addon {

static void check_rows_out(const OpArgs& a, const TensorArg& out, int64_t rows, int64_t cols) {
  a.contiguous(out);
  if (out.numel() != rows * cols || (out.ndim() > 0 && out.size(-1) != cols))
    a.fail_range(std::string(out.name) + " must hold [" + std::to_string(rows) + ", " + std::to_string(cols) + "] elements, got shape " +
                 shape_str(out.shape));
}

// quantizeActivation(x [..., K] bf16|f32, q fp8 [..., K], scale f32 [..., K/128])
static Napi::Value quantize_activation(const Napi::CallbackInfo& info) {
  OpArgs a(info, "quantizeActivation", 3);
  TensorArg x = a.tensor(0, "x"), q = a.tensor(1, "q"), scale = a.tensor(2, "scale");
  a.dtype_in(x, {DType::BF16, DType::F32});
  a.dtype_in(q, {DType::FP8E4M3});
  a.dtype_in(scale, {DType::F32});
  RowsArg xr = rows_of(a, x);
  if (xr.cols % kQuantBlock) a.fail_range("x.shape[-1] must be a multiple of 128, got " + std::to_string(xr.cols));
  check_rows_out(a, q, xr.rows, xr.cols);
  check_rows_out(a, scale, xr.rows, xr.cols / kQuantBlock);
  Device dev = a.same_device({&x, &q, &scale});
  DType dt = x.dtype;
  enqueue(a.op(), dev,
          [=] { cpu::quantize_activation(xr.data, dt, xr.rows, xr.cols, xr.stride, q.ptr<uint8_t>(), scale.ptr<float>()); (void)x; },
          [=](auto& d) { cuda::quantize_activation(xr.data, dt, xr.rows, xr.cols, xr.stride, q.ptr<uint8_t>(), scale.ptr<float>(), d.stream()); });
  return info.Env().Undefined();
}

// quantizeWeight(w [N, K] bf16|f32 contiguous, q fp8 [N, K], scale f32 [ceil(N/128), ceil(K/128)])
static Napi::Value quantize_weight(const Napi::CallbackInfo& info) {
  OpArgs a(info, "quantizeWeight", 3);
  TensorArg w = a.tensor(0, "w"), q = a.tensor(1, "q"), scale = a.tensor(2, "scale");
  a.dtype_in(w, {DType::BF16, DType::F32});
  a.dtype_in(q, {DType::FP8E4M3});
  a.dtype_in(scale, {DType::F32});
  a.ndim_is(w, 2);
  a.ndim_is(q, 2);
  a.ndim_is(scale, 2);
  a.contiguous(w);
  a.contiguous(q);
  a.contiguous(scale);
  int64_t N = w.size(0), K = w.size(1);
  a.dim_is(q, 0, N, "rows of w");
  a.dim_is(q, 1, K, "columns of w");
  a.dim_is(scale, 0, (N + kQuantBlock - 1) / kQuantBlock, "ceil(N/128)");
  a.dim_is(scale, 1, (K + kQuantBlock - 1) / kQuantBlock, "ceil(K/128)");
  Device dev = a.same_device({&w, &q, &scale});
  enqueue(a.op(), dev, [=] { cpu::quantize_weight(w.data(), w.dtype, N, K, q.ptr<uint8_t>(), scale.ptr<float>()); },
          [=](auto& d) { cuda::quantize_weight(w.data(), w.dtype, N, K, q.ptr<uint8_t>(), scale.ptr<float>(), d.stream()); });
  return info.Env().Undefined();
}

// dequantize(q fp8 contiguous, scale f32 contiguous, weightLayout bool, out bf16|f32 contiguous)
static Napi::Value dequantize(const Napi::CallbackInfo& info) {
  OpArgs a(info, "dequantize", 4);
  TensorArg q = a.tensor(0, "q"), scale = a.tensor(1, "scale"), out = a.tensor(3, "out");
  bool weight = a.boolean(2, "weightLayout");
  a.dtype_in(q, {DType::FP8E4M3});
  a.dtype_in(scale, {DType::F32});
  a.dtype_in(out, {DType::BF16, DType::F32});
  a.contiguous(q);
  a.contiguous(scale);
  a.contiguous(out);
  if (q.ndim() < 1) a.fail_range("q must have at least 1 dim");
  int64_t K = q.size(-1), rows = q.numel() / (K ? K : 1);
  if (K == 0) rows = 0;
  if (out.shape != q.shape) a.fail_range("out must have the shape of q " + shape_str(q.shape) + ", got " + shape_str(out.shape));
  if (weight) {
    a.ndim_is(q, 2);
    a.ndim_is(scale, 2);
    rows = q.size(0);
    a.dim_is(scale, 0, (rows + kQuantBlock - 1) / kQuantBlock, "ceil(N/128)");
    a.dim_is(scale, 1, (K + kQuantBlock - 1) / kQuantBlock, "ceil(K/128)");
  } else {
    if (K % kQuantBlock) a.fail_range("q.shape[-1] must be a multiple of 128, got " + std::to_string(K));
    if (scale.ndim() != q.ndim()) a.fail_range("scale must have " + std::to_string(q.ndim()) + " dims, got shape " + shape_str(scale.shape));
    for (int d = 0; d + 1 < q.ndim(); ++d) a.dim_is(scale, d, q.size(d), "leading dims of q");
    a.dim_is(scale, -1, K / kQuantBlock, "K/128");
  }
  Device dev = a.same_device({&q, &scale, &out});
  enqueue(a.op(), dev,
          [=] {
            if (weight) cpu::dequantize_weight(q.ptr<uint8_t>(), scale.ptr<float>(), rows, K, out.data(), out.dtype);
            else cpu::dequantize_activation(q.ptr<uint8_t>(), scale.ptr<float>(), rows, K, out.data(), out.dtype);
          },
          [=](auto& d) {
            if (weight) cuda::dequantize_weight(q.ptr<uint8_t>(), scale.ptr<float>(), rows, K, out.data(), out.dtype, d.stream());
            else cuda::dequantize_activation(q.ptr<uint8_t>(), scale.ptr<float>(), rows, K, out.data(), out.dtype, d.stream());
          });
  return info.Env().Undefined();
}

// gate and up: same dtype (bf16|f32) and shape, row-major views.
static void check_gate_up(const OpArgs& a, const TensorArg& gate, const TensorArg& up, RowsArg& g, RowsArg& u) {
  a.dtype_in(gate, {DType::BF16, DType::F32});
  if (up.dtype != gate.dtype) a.fail_type(std::string("up must have the dtype of gate (") + dtype_name(gate.dtype) + "), got " + dtype_name(up.dtype));
  if (up.shape != gate.shape) a.fail_range("up must have the shape of gate " + shape_str(gate.shape) + ", got " + shape_str(up.shape));
  g = rows_of(a, gate);
  u = rows_of(a, up);
}

// swiglu(gate, up, out same dtype/shape contiguous)
static Napi::Value swiglu(const Napi::CallbackInfo& info) {
  OpArgs a(info, "swiglu", 3);
  TensorArg gate = a.tensor(0, "gate"), up = a.tensor(1, "up"), out = a.tensor(2, "out");
  RowsArg g, u;
  check_gate_up(a, gate, up, g, u);
  if (out.dtype != gate.dtype) a.fail_type("out must have the dtype of gate");
  check_rows_out(a, out, g.rows, g.cols);
  Device dev = a.same_device({&gate, &up, &out});
  DType dt = gate.dtype;
  enqueue(a.op(), dev,
          [=] { cpu::swiglu(g.data, g.stride, u.data, u.stride, dt, g.rows, g.cols, out.data()); (void)gate; (void)up; },
          [=](auto& d) { cuda::swiglu(g.data, g.stride, u.data, u.stride, dt, g.rows, g.cols, out.data(), d.stream()); });
  return info.Env().Undefined();
}

// swigluQuant(gate, up, q fp8, scale f32 [..., D/128], mIndices i32 [rows] | null)
static Napi::Value swiglu_quant(const Napi::CallbackInfo& info) {
  OpArgs a(info, "swigluQuant", 4, 5);
  TensorArg gate = a.tensor(0, "gate"), up = a.tensor(1, "up"), q = a.tensor(2, "q"), scale = a.tensor(3, "scale");
  RowsArg g, u;
  check_gate_up(a, gate, up, g, u);
  if (g.cols % kQuantBlock) a.fail_range("gate.shape[-1] must be a multiple of 128, got " + std::to_string(g.cols));
  a.dtype_in(q, {DType::FP8E4M3});
  a.dtype_in(scale, {DType::F32});
  check_rows_out(a, q, g.rows, g.cols);
  check_rows_out(a, scale, g.rows, g.cols / kQuantBlock);
  std::optional<TensorArg> m = a.optional_tensor(4, "mIndices");
  if (m) {
    a.dtype_in(*m, {DType::I32});
    if (!m->contiguous() || m->numel() != g.rows)
      a.fail_range("mIndices must be a contiguous i32 tensor of " + std::to_string(g.rows) + " entries (one per row)");
  }
  Device dev = m ? a.same_device({&gate, &up, &q, &scale, &*m}) : a.same_device({&gate, &up, &q, &scale});
  DType dt = gate.dtype;
  const int32_t* mi = m ? m->ptr<int32_t>() : nullptr;
  BufferPtr keep = m ? m->buf : nullptr;  // alive until the op has run
  enqueue(a.op(), dev,
          [=] { cpu::swiglu_quant(g.data, g.stride, u.data, u.stride, dt, g.rows, g.cols, mi, q.ptr<uint8_t>(), scale.ptr<float>()); (void)gate; (void)up; (void)keep; },
          [=](auto& d) { cuda::swiglu_quant(g.data, g.stride, u.data, u.stride, dt, g.rows, g.cols, mi, q.ptr<uint8_t>(), scale.ptr<float>(), d.stream()); });
  return info.Env().Undefined();
}

DSK_EXPORTS(quant_exports) {
  def(env, exports, "quantizeActivation", quantize_activation);
  def(env, exports, "quantizeWeight", quantize_weight);
  def(env, exports, "dequantize", dequantize);
  def(env, exports, "swiglu", swiglu);
  def(env, exports, "swigluQuant", swiglu_quant);
}

}  // namespace dsk::addon
