// MoE ops: argument checks (memory safety first: every pointer the kernels touch is inside its tensor,
// and the routing limits of native/math/moe_routing.h hold), then dispatch to native/cpu/moe.h or
// native/cuda/moe.h.
#include <climits>

#include "../cpu/moe.h"
#include "../cuda/moe.h"
#include "addon.h"

namespace dsk::addon {

static void check_experts(const OpArgs& a, int64_t E, const char* what) {
  if (E < 1 || E > kMoeMaxExperts)
    a.fail_range(std::string(what) + " must be in [1, " + std::to_string(kMoeMaxExperts) + "], got " + std::to_string(E));
}

// moeGate(logits f32 [T, E], bias f32 [E] | null, indices i32 [T, topk], weights f32 [T, topk],
//         scoring 0|1, nGroup, topkGroup, groupScore 0|1, normTopk, routedScale)
static Napi::Value moe_gate(const Napi::CallbackInfo& info) {
  OpArgs a(info, "moeGate", 10);
  TensorArg logits = a.tensor(0, "logits"), indices = a.tensor(2, "indices"), weights = a.tensor(3, "weights");
  std::optional<TensorArg> bias = a.optional_tensor(1, "bias");
  a.dtype_in(logits, {DType::F32});
  a.dtype_in(indices, {DType::I32});
  a.dtype_in(weights, {DType::F32});
  a.ndim_is(logits, 2);
  a.ndim_is(indices, 2);
  a.ndim_is(weights, 2);
  a.contiguous(logits);
  a.contiguous(indices);
  a.contiguous(weights);
  const int64_t T = logits.size(0), E = logits.size(1), topk = indices.size(1);
  check_experts(a, E, "logits.shape[1] (experts)");
  if (topk < 1 || topk > kMoeMaxTopk || topk > E)
    a.fail_range("topk must be in [1, min(" + std::to_string(kMoeMaxTopk) + ", experts)], got " + std::to_string(topk));
  a.dim_is(indices, 0, T, "tokens");
  a.dim_is(weights, 0, T, "tokens");
  a.dim_is(weights, 1, topk, "topk");
  if (bias) {
    a.dtype_in(*bias, {DType::F32});
    a.ndim_is(*bias, 1);
    a.contiguous(*bias);
    a.dim_is(*bias, 0, E, "experts");
  }
  MoeGateParams p{};
  p.num_experts = static_cast<int32_t>(E);
  p.topk = static_cast<int32_t>(topk);
  p.scoring = static_cast<int32_t>(a.integer(4, "scoring", 0, 1));
  p.n_group = static_cast<int32_t>(a.integer(5, "nGroup", 1, kMoeMaxGroups));
  p.topk_group = static_cast<int32_t>(a.integer(6, "topkGroup", 1, p.n_group));
  p.group_score = static_cast<int32_t>(a.integer(7, "groupScore", 0, 1));
  p.norm_topk = a.boolean(8, "normTopk") ? 1 : 0;
  p.routed_scale = static_cast<float>(a.number(9, "routedScale"));
  if (E % p.n_group != 0) a.fail_range("nGroup (" + std::to_string(p.n_group) + ") must divide the number of experts (" + std::to_string(E) + ")");
  const int64_t per_group = E / p.n_group;
  if (p.n_group > 1 && p.group_score == kMoeTop2Sum && per_group < 2)
    a.fail_range("groupScore 'top2sum' needs at least 2 experts per group");
  if (topk > p.topk_group * per_group)
    a.fail_range("topk (" + std::to_string(topk) + ") must be at most topkGroup * experts per group (" + std::to_string(p.topk_group * per_group) + ")");
  Device dev = a.same_device({&logits, bias ? &*bias : nullptr, &indices, &weights});
  std::optional<TensorArg> b = bias;
  enqueue(a.op(), dev,
          [=] { cpu::moe_gate(logits.ptr<float>(), b ? b->ptr<float>() : nullptr, T, p, indices.ptr<int32_t>(), weights.ptr<float>()); },
          [=](auto& d) {
            cuda::moe_gate(logits.ptr<float>(), b ? b->ptr<float>() : nullptr, T, p, indices.ptr<int32_t>(), weights.ptr<float>(), d.stream());
          });
  return info.Env().Undefined();
}

// moeCount(indices i32 (any shape), counts i32 [E])
static Napi::Value moe_count(const Napi::CallbackInfo& info) {
  OpArgs a(info, "moeCount", 2);
  TensorArg indices = a.tensor(0, "indices"), counts = a.tensor(1, "counts");
  a.dtype_in(indices, {DType::I32});
  a.dtype_in(counts, {DType::I32});
  a.ndim_is(counts, 1);
  a.contiguous(indices);
  a.contiguous(counts);
  const int64_t n = indices.numel(), E = counts.size(0);
  check_experts(a, E, "numExperts");
  Device dev = a.same_device({&indices, &counts});
  enqueue(a.op(), dev, [=] { cpu::moe_count(indices.ptr<int32_t>(), n, E, counts.ptr<int32_t>(), cpu_diag()); },
          [=](auto& d) { cuda::moe_count(indices.ptr<int32_t>(), n, E, counts.ptr<int32_t>(), d.diag_device(), d.stream()); });
  return info.Env().Undefined();
}

// moeBiasUpdate(bias f32 [E], tokensPerExpert i32 [E], out f32 [E] (may be bias), gamma)
static Napi::Value moe_bias_update(const Napi::CallbackInfo& info) {
  OpArgs a(info, "moeBiasUpdate", 4);
  TensorArg bias = a.tensor(0, "bias"), load = a.tensor(1, "tokensPerExpert"), out = a.tensor(2, "out");
  a.dtype_in(bias, {DType::F32});
  a.dtype_in(load, {DType::I32});
  a.dtype_in(out, {DType::F32});
  a.ndim_is(bias, 1);
  a.ndim_is(load, 1);
  a.ndim_is(out, 1);
  a.contiguous(bias);
  a.contiguous(load);
  a.contiguous(out);
  const int64_t E = bias.size(0);
  check_experts(a, E, "bias.shape[0] (experts)");
  a.dim_is(load, 0, E, "experts");
  a.dim_is(out, 0, E, "experts");
  const float gamma = static_cast<float>(a.number(3, "gamma"));
  Device dev = a.same_device({&bias, &load, &out});
  enqueue(a.op(), dev, [=] { cpu::moe_bias_update(bias.ptr<float>(), load.ptr<int32_t>(), E, gamma, out.ptr<float>()); },
          [=](auto& d) { cuda::moe_bias_update(bias.ptr<float>(), load.ptr<int32_t>(), E, gamma, out.ptr<float>(), d.stream()); });
  return info.Env().Undefined();
}

// moePermute(x [T, D], indices i32 [T, k], scale f32 [T, S] | null, out [rows, D], scaleOut f32 [rows, S] | null,
//            mIndices i32 [rows], map i32 [T, k], counts i32 [E], offsets i32 [E + 1], workspace i32 [>= ws], align)
static Napi::Value moe_permute(const Napi::CallbackInfo& info) {
  OpArgs a(info, "moePermute", 11);
  TensorArg x = a.tensor(0, "x"), indices = a.tensor(1, "indices"), out = a.tensor(3, "out"), mind = a.tensor(5, "mIndices"),
            map = a.tensor(6, "map"), counts = a.tensor(7, "counts"), offsets = a.tensor(8, "offsets"), ws = a.tensor(9, "workspace");
  std::optional<TensorArg> scale = a.optional_tensor(2, "scale"), scale_out = a.optional_tensor(4, "scaleOut");
  const int64_t align = a.integer(10, "align", 1, 4096);
  for (const TensorArg* t : {&indices, &mind, &map, &counts, &offsets, &ws}) a.dtype_in(*t, {DType::I32});
  a.ndim_is(x, 2);
  a.ndim_is(indices, 2);
  a.ndim_is(out, 2);
  a.ndim_is(mind, 1);
  a.ndim_is(map, 2);
  a.ndim_is(counts, 1);
  a.ndim_is(offsets, 1);
  for (const TensorArg* t : {&x, &indices, &out, &mind, &map, &counts, &offsets, &ws}) a.contiguous(*t);
  const int64_t T = x.size(0), D = x.size(1), k = indices.size(1), E = counts.size(0);
  check_experts(a, E, "numExperts");
  a.dim_is(indices, 0, T, "tokens of x");
  if (k < 1) a.fail_range("indices.shape[1] (topk) must be at least 1");
  if (T * k > INT32_MAX) a.fail_range("tokens * topk must fit in i32");
  const int64_t rows = moe_permute_rows(T * k, E, align);
  if (rows > INT32_MAX) a.fail_range("the grouped layout needs " + std::to_string(rows) + " rows, more than i32 indexes");
  if (out.dtype != x.dtype) a.fail_type("out must have the dtype of x");
  a.dim_is(out, 0, rows, "grouped rows");
  a.dim_is(out, 1, D, "width of x");
  a.dim_is(mind, 0, rows, "grouped rows");
  a.dim_is(map, 0, T, "tokens");
  a.dim_is(map, 1, k, "topk");
  a.dim_is(offsets, 0, E + 1, "experts + 1");
  if (ws.numel() < moe_permute_workspace(T * k, E, rows)) a.fail_range("workspace is too small");
  if (scale.has_value() != scale_out.has_value()) a.fail_type("scale and scaleOut go together");
  int64_t S = 0;
  if (scale) {
    a.dtype_in(*scale, {DType::F32});
    a.dtype_in(*scale_out, {DType::F32});
    a.ndim_is(*scale, 2);
    a.ndim_is(*scale_out, 2);
    a.contiguous(*scale);
    a.contiguous(*scale_out);
    S = scale->size(1);
    a.dim_is(*scale, 0, T, "tokens of x");
    a.dim_is(*scale_out, 0, rows, "grouped rows");
    a.dim_is(*scale_out, 1, S, "width of scale");
  }
  Device dev = a.same_device({&x, &indices, scale ? &*scale : nullptr, &out, scale_out ? &*scale_out : nullptr, &mind, &map, &counts,
                              &offsets, &ws});
  const int64_t row_bytes = D * dtype_size(x.dtype);
  std::optional<TensorArg> sc = scale, so = scale_out;
  enqueue(a.op(), dev,
          [=] {
            cpu::moe_permute(x.data(), row_bytes, sc ? sc->ptr<float>() : nullptr, S, indices.ptr<int32_t>(), T, k, E, align, rows,
                             out.data(), so ? so->ptr<float>() : nullptr, mind.ptr<int32_t>(), map.ptr<int32_t>(), counts.ptr<int32_t>(),
                             offsets.ptr<int32_t>(), cpu_diag());
          },
          [=](auto& d) {
            cuda::moe_permute(x.data(), row_bytes, sc ? sc->ptr<float>() : nullptr, S, indices.ptr<int32_t>(), T, k, E, align, rows,
                              out.data(), so ? so->ptr<float>() : nullptr, mind.ptr<int32_t>(), map.ptr<int32_t>(), counts.ptr<int32_t>(),
                              offsets.ptr<int32_t>(), ws.ptr<int32_t>(), d.diag_device(), d.stream());
          });
  return info.Env().Undefined();
}

// moeUnpermute(y bf16|f32 [M, N], map i32 [T, k], weights f32 [T, k], out bf16|f32 [T, N])
static Napi::Value moe_unpermute(const Napi::CallbackInfo& info) {
  OpArgs a(info, "moeUnpermute", 4);
  TensorArg y = a.tensor(0, "y"), map = a.tensor(1, "map"), weights = a.tensor(2, "weights"), out = a.tensor(3, "out");
  a.dtype_in(y, {DType::BF16, DType::F32});
  a.dtype_in(map, {DType::I32});
  a.dtype_in(weights, {DType::F32});
  a.dtype_in(out, {DType::BF16, DType::F32});
  a.ndim_is(y, 2);
  a.ndim_is(map, 2);
  a.ndim_is(weights, 2);
  a.ndim_is(out, 2);
  for (const TensorArg* t : {&y, &map, &weights, &out}) a.contiguous(*t);
  const int64_t M = y.size(0), N = y.size(1), T = map.size(0), k = map.size(1);
  a.dim_is(weights, 0, T, "tokens of map");
  a.dim_is(weights, 1, k, "topk of map");
  a.dim_is(out, 0, T, "tokens of map");
  a.dim_is(out, 1, N, "width of y");
  Device dev = a.same_device({&y, &map, &weights, &out});
  enqueue(a.op(), dev,
          [=] {
            cpu::moe_unpermute(y.data(), y.dtype, M, N, map.ptr<int32_t>(), weights.ptr<float>(), T, k, out.data(), out.dtype, cpu_diag());
          },
          [=](auto& d) {
            cuda::moe_unpermute(y.data(), y.dtype, M, N, map.ptr<int32_t>(), weights.ptr<float>(), T, k, out.data(), out.dtype,
                                d.diag_device(), d.stream());
          });
  return info.Env().Undefined();
}

DSK_EXPORTS(moe_exports) {
  def(env, exports, "moeGate", moe_gate);
  def(env, exports, "moeCount", moe_count);
  def(env, exports, "moeBiasUpdate", moe_bias_update);
  def(env, exports, "moePermute", moe_permute);
  def(env, exports, "moeUnpermute", moe_unpermute);
}

}  // namespace dsk::addon
