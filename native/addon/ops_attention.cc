// Rotary and attention ops: argument checks (memory safety first: every pointer a kernel touches is inside
// its tensor, every alignment the CUDA kernels rely on holds), then dispatch to native/cpu/{rope,attention}.h
// or native/cuda/{rope,attention}.h. Indices that live in device memory (cuSeqlens, slots, block ids,
// sequence lengths) are checked by the kernels themselves (diag).
#include <memory>
#include <vector>

#include "../math/attention_common.h"
#include "../math/rope_freqs.h"
#include "../cpu/attention.h"
#include "../cpu/rope.h"
#include "../cuda/attention.h"
#include "../cuda/rope.h"
#include "addon.h"

namespace dsk::addon {

namespace {

// cp.async and vector loads need 16-byte aligned starts (the allocator aligns storage; the offset may not).
void aligned16(const OpArgs& a, const TensorArg& t) {
  if (t.device.is_cpu()) return;
  if (reinterpret_cast<uintptr_t>(t.data()) % 16)
    a.fail_range(std::string(t.name) + " must start at a 16-byte boundary (its offset " + std::to_string(t.offset) +
                 " is not a multiple of " + std::to_string(16 / dtype_size(t.dtype)) + " elements); pass a copy (.clone())");
}

void require(const OpArgs& a, bool ok, const std::string& msg) {
  if (!ok) a.fail_range(msg);
}

}  // namespace

// rope(x [T, H, D], positions i32 [T], out [T, H, D], theta, ropeDim, yarnFactor (0 = none),
//      originalMaxPosition, betaFast, betaSlow, mscale, mscaleAllDim)
static Napi::Value rope(const Napi::CallbackInfo& info) {
  OpArgs a(info, "rope", 11);
  TensorArg x = a.tensor(0, "x"), pos = a.tensor(1, "positions"), out = a.tensor(2, "out");
  a.dtype_in(x, {DType::F32, DType::BF16, DType::F16});
  a.dtype_in(pos, {DType::I32});
  a.ndim_is(x, 3);
  a.ndim_is(pos, 1);
  a.ndim_is(out, 3);
  a.contiguous(x);
  a.contiguous(pos);
  a.contiguous(out);
  if (out.dtype != x.dtype) a.fail_type("out must have the dtype of x");
  for (int d = 0; d < 3; ++d) a.dim_is(out, d, x.size(d), "the shape of x");
  a.dim_is(pos, 0, x.size(0), "one position per token of x");
  const int64_t T = x.size(0), H = x.size(1), D = x.size(2);
  const double theta = a.number(3, "theta");
  require(a, theta > 1, "theta must be > 1, got " + std::to_string(theta));
  const int rope_dim = static_cast<int>(a.integer(4, "ropeDim", 2, kMaxRopeDim));
  require(a, rope_dim % 2 == 0, "ropeDim must be even, got " + std::to_string(rope_dim));
  require(a, rope_dim <= D, "ropeDim (" + std::to_string(rope_dim) + ") must not exceed the last dim of x (" + std::to_string(D) + ")");
  require(a, D % 2 == 0, "the last dim of x must be even, got " + std::to_string(D));
  YarnParams y;
  y.factor = a.number(5, "yarn.factor");
  if (y.factor != 0) {
    require(a, y.factor > 0, "yarn.factor must be > 0");
    y.original_max_position = a.number(6, "yarn.originalMaxPosition");
    y.beta_fast = a.number(7, "yarn.betaFast");
    y.beta_slow = a.number(8, "yarn.betaSlow");
    y.mscale = a.number(9, "yarn.mscale");
    y.mscale_all_dim = a.number(10, "yarn.mscaleAllDim");
    require(a, y.original_max_position >= 1, "yarn.originalMaxPosition must be >= 1");
    require(a, y.beta_fast > 0 && y.beta_slow > 0, "yarn.betaFast and yarn.betaSlow must be > 0");
  }
  Device dev = a.same_device({&x, &pos, &out});
  auto freqs = std::make_shared<std::vector<double>>(static_cast<size_t>(rope_dim / 2));
  const double mscale = rope_inv_freqs(theta, rope_dim, y, freqs->data());
  if (T == 0 || H == 0) return info.Env().Undefined();
  enqueue(a.op(), dev,
          [=] { cpu::rope(x.data(), x.dtype, T, H, D, rope_dim, pos.ptr<int32_t>(), freqs->data(), mscale, out.data()); },
          [=](auto& d) { cuda::rope(x.data(), x.dtype, T, H, D, rope_dim, pos.ptr<int32_t>(), freqs->data(), mscale, out.data(), d.stream()); });
  return info.Env().Undefined();
}

// attentionPrefill(q [T, H, Dqk], k [T, H, Dqk], v [T, H, Dv], cuSeqlens i32 [B + 1], out [T, H, Dv],
//                  maxSeqlen, causal, scale)
static Napi::Value attention_prefill(const Napi::CallbackInfo& info) {
  OpArgs a(info, "attentionPrefill", 8);
  TensorArg q = a.tensor(0, "q"), k = a.tensor(1, "k"), v = a.tensor(2, "v"), cu = a.tensor(3, "cuSeqlens"), out = a.tensor(4, "out");
  a.dtype_in(q, {DType::BF16, DType::F32});
  for (const TensorArg* t : {&k, &v, &out})
    if (t->dtype != q.dtype) a.fail_type(std::string(t->name) + " must have the dtype of q (" + dtype_name(q.dtype) + "), got " + dtype_name(t->dtype));
  a.dtype_in(cu, {DType::I32});
  for (const TensorArg* t : {&q, &k, &v, &out}) {
    a.ndim_is(*t, 3);
    a.contiguous(*t);
  }
  a.ndim_is(cu, 1);
  a.contiguous(cu);
  const int64_t T = q.size(0), H = q.size(1), Dqk = q.size(2), Dv = v.size(2);
  for (int d = 0; d < 3; ++d) a.dim_is(k, d, q.size(d), "the shape of q");
  a.dim_is(v, 0, T, "tokens of q");
  a.dim_is(v, 1, H, "heads of q");
  a.dim_is(out, 0, T, "tokens of q");
  a.dim_is(out, 1, H, "heads of q");
  a.dim_is(out, 2, Dv, "the head dim of v");
  require(a, Dqk >= 8 && Dqk <= 256 && Dqk % 8 == 0, "the head dim of q and k must be a multiple of 8 in [8, 256], got " + std::to_string(Dqk));
  require(a, Dv >= 1 && Dv <= 256, "the head dim of v must be in [1, 256], got " + std::to_string(Dv));
  require(a, cu.size(0) >= 1, "cuSeqlens must hold B + 1 >= 1 offsets");
  const int64_t B = cu.size(0) - 1;
  require(a, B > 0 || T == 0, "cuSeqlens holds no sequence (B = 0) but q has " + std::to_string(T) + " tokens");
  require(a, B <= 65535 && H <= 65535, "at most 65535 sequences and 65535 heads are supported");
  const int64_t max_seqlen = a.integer(5, "maxSeqlen", 0, INT32_MAX);
  const bool causal = a.boolean(6, "causal");
  const float scale = static_cast<float>(a.number(7, "scale"));
  Device dev = a.same_device({&q, &k, &v, &cu, &out});
  for (const TensorArg* t : {&q, &k, &v, &out}) aligned16(a, *t);
  if (T == 0 || H == 0) return info.Env().Undefined();
  enqueue(a.op(), dev,
          [=] {
            cpu::attention_prefill(q.data(), k.data(), v.data(), q.dtype, T, H, Dqk, Dv, cu.ptr<int32_t>(), B, max_seqlen, causal,
                                   scale, out.data(), cpu_diag());
          },
          [=](auto& d) {
            cuda::attention_prefill(q.data(), k.data(), v.data(), q.dtype, T, H, Dqk, Dv, cu.ptr<int32_t>(), B, max_seqlen, causal,
                                    scale, out.data(), d.diag_device(), d.stream());
          });
  return info.Env().Undefined();
}

static void check_cache(const OpArgs& a, const TensorArg& cache) {
  a.dtype_in(cache, {DType::BF16});
  a.ndim_is(cache, 3);
  a.dim_is(cache, 1, kMlaBlockTokens, "tokens per cache block");
  a.dim_is(cache, 2, kMlaWidth, "latent + rope dims");
  a.contiguous(cache);
  aligned16(a, cache);
}

// mlaCacheWrite(cache bf16 [N, 64, 576], latent [T, 576], slots i32 [T])
static Napi::Value mla_cache_write(const Napi::CallbackInfo& info) {
  OpArgs a(info, "mlaCacheWrite", 3);
  TensorArg cache = a.tensor(0, "cache"), latent = a.tensor(1, "latent"), slots = a.tensor(2, "slots");
  check_cache(a, cache);
  a.dtype_in(latent, {DType::BF16, DType::F32});
  a.ndim_is(latent, 2);
  a.dim_is(latent, 1, kMlaWidth, "the cache row width");
  a.contiguous(latent);
  aligned16(a, latent);
  a.dtype_in(slots, {DType::I32});
  a.ndim_is(slots, 1);
  a.contiguous(slots);
  a.dim_is(slots, 0, latent.size(0), "one slot per row of latent");
  Device dev = a.same_device({&cache, &latent, &slots});
  const int64_t N = cache.size(0), T = latent.size(0);
  if (T == 0) return info.Env().Undefined();
  enqueue(a.op(), dev,
          [=] { cpu::mla_cache_write(cache.ptr<uint16_t>(), N, latent.data(), latent.dtype, T, slots.ptr<int32_t>(), cpu_diag()); },
          [=](auto& d) {
            cuda::mla_cache_write(cache.ptr<uint16_t>(), N, latent.data(), latent.dtype, T, slots.ptr<int32_t>(), d.diag_device(), d.stream());
          });
  return info.Env().Undefined();
}

// mlaDecode(q [B, Sq, H, 576], cache, blockTable i32 [B, maxBlocks], seqLens i32 [B], out [B, Sq, H, 512],
//           lse f32 [B, H, Sq], workspace f32 | null, nsplit, scale, causal)
static Napi::Value mla_decode(const Napi::CallbackInfo& info) {
  OpArgs a(info, "mlaDecode", 10);
  TensorArg q = a.tensor(0, "q"), cache = a.tensor(1, "cache"), table = a.tensor(2, "blockTable"), lens = a.tensor(3, "seqLens"),
            out = a.tensor(4, "out"), lse = a.tensor(5, "lse");
  std::optional<TensorArg> ws = a.optional_tensor(6, "workspace");
  a.dtype_in(q, {DType::BF16, DType::F32});
  a.ndim_is(q, 4);
  a.dim_is(q, 3, kMlaWidth, "absorbed query width");
  a.contiguous(q);
  aligned16(a, q);
  check_cache(a, cache);
  const int64_t B = q.size(0), Sq = q.size(1), H = q.size(2);
  require(a, Sq >= 1 && Sq <= kMlaMaxSq, "q.shape[1] (Sq) must be in [1, 4], got " + std::to_string(Sq));
  a.dtype_in(table, {DType::I32});
  a.ndim_is(table, 2);
  a.dim_is(table, 0, B, "one row per sequence");
  a.contiguous(table);
  a.dtype_in(lens, {DType::I32});
  a.ndim_is(lens, 1);
  a.dim_is(lens, 0, B, "one length per sequence");
  a.contiguous(lens);
  if (out.dtype != q.dtype) a.fail_type("out must have the dtype of q");
  a.ndim_is(out, 4);
  a.contiguous(out);
  for (int d = 0; d < 3; ++d) a.dim_is(out, d, q.size(d), "the shape of q");
  a.dim_is(out, 3, kMlaLatent, "dv");
  a.dtype_in(lse, {DType::F32});
  a.ndim_is(lse, 3);
  a.contiguous(lse);
  a.dim_is(lse, 0, B, "[B, H, Sq]");
  a.dim_is(lse, 1, H, "[B, H, Sq]");
  a.dim_is(lse, 2, Sq, "[B, H, Sq]");
  require(a, B <= 65535 && Sq * H <= 65535 * 16, "at most 65535 sequences and 2^20 query rows per sequence are supported");
  const int nsplit = static_cast<int>(a.integer(7, "nsplit", 1, kMlaMaxSplits));
  const float scale = static_cast<float>(a.number(8, "scale"));
  const bool causal = a.boolean(9, "causal");
  Device dev = a.same_device({&q, &cache, &table, &lens, &out, &lse, ws ? &*ws : nullptr});
  const int64_t N = cache.size(0), max_blocks = table.size(1);
  float* wsp = nullptr;
  if (!dev.is_cpu() && nsplit > 1) {
    if (!ws) a.fail_type("workspace is required when nsplit > 1");
    a.dtype_in(*ws, {DType::F32});
    a.contiguous(*ws);
    aligned16(a, *ws);
    const int64_t need = cuda::mla_decode_workspace_floats(B, Sq, H, nsplit);
    require(a, ws->numel() >= need, "workspace must hold " + std::to_string(need) + " floats, got " + std::to_string(ws->numel()));
    wsp = ws->ptr<float>();
  }
  if (B == 0 || H == 0) return info.Env().Undefined();
  std::optional<TensorArg> ws_keep = ws;  // keeps the workspace alive until the CPU task has run
  enqueue(a.op(), dev,
          [=] {
            (void)ws_keep;
            cpu::mla_decode(q.data(), q.dtype, B, Sq, H, cache.ptr<uint16_t>(), N, table.ptr<int32_t>(), max_blocks, lens.ptr<int32_t>(),
                            scale, kMlaLatent, causal, out.data(), lse.ptr<float>(), cpu_diag());
          },
          [=](auto& d) {
            cuda::mla_decode(q.data(), q.dtype, B, Sq, H, cache.ptr<uint16_t>(), N, table.ptr<int32_t>(), max_blocks, lens.ptr<int32_t>(),
                             scale, causal, out.data(), lse.ptr<float>(), nsplit, wsp, d.diag_device(), d.stream());
          });
  return info.Env().Undefined();
}

DSK_EXPORTS(attention_exports) {
  def(env, exports, "rope", rope);
  def(env, exports, "attentionPrefill", attention_prefill);
  def(env, exports, "mlaCacheWrite", mla_cache_write);
  def(env, exports, "mlaDecode", mla_decode);
}

}  // namespace dsk::addon
