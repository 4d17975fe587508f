// Expert-parallel ops: the routing layout, the peer buffers of the process group (CUDA IPC), the count
// exchange, dispatch and combine, plus the timers and helpers of the EP benchmark.
//
// The group (one per process) owns a cudaMalloc'ed buffer laid out as native/core/ep_geometry.h says,
// exported with cudaIpcGetMemHandle; lib/dist exchanges the handles over the rendezvous and opens the
// peers' here. Exchange kernels run on the device's comm stream: each op first makes the comm stream
// wait for the compute stream (its inputs), and unless the caller asks for an asynchronous op, makes the
// compute stream wait for the comm stream afterwards (its outputs).
#include <cstdlib>
#include <cstring>
#include <map>

#include "../cpu/ep.h"
#include "../cuda/ep.h"
#include "addon.h"

#if DSK_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace dsk::addon {

namespace {

struct EpGroup {
  bool created = false;
  int device = -1, rank = 0, world = 1;
  EpGeometry g;
  uint64_t timeout_ns = 0;
  std::vector<char*> peers;  // mapped buffers; peers[rank] = local
  bool opened = false;
#if DSK_WITH_CUDA
  char* local = nullptr;
  uint32_t* abort_host = nullptr;
  uint32_t* abort_dev = nullptr;
#endif
  uint32_t cpu_abort = 0;  // the CPU group's abort word
};
EpGroup& group() {
  static EpGroup* g = new EpGroup();
  return *g;
}

uint32_t abort_word() {
  EpGroup& G = group();
#if DSK_WITH_CUDA
  if (G.abort_host) return __atomic_load_n(G.abort_host, __ATOMIC_ACQUIRE);
#endif
  return G.cpu_abort;
}

// The group every exchange op runs in; throws when there is none, it is on another device, or it failed.
EpGroup& live_group(const OpArgs& a, Device dev) {
  EpGroup& G = group();
  if (!G.created) a.fail_type("no expert-parallel group: call `await dsk.dist.init()` first");
  if (dev.index != G.device)
    a.fail_type("tensors are on " + dev.name() + " but this rank's group lives on " + Device{G.device}.name());
  if (G.world > 1 && !G.opened) a.fail_type("the group's peer buffers are not open yet (dist.init did not finish)");
  uint32_t ab = abort_word();
  if (ab) throw Error(ErrorKind::State, a.op(), "the expert-parallel group failed earlier (rank " + std::to_string(ab - 1) +
                                                    " died, stopped answering, or timed out); restart the processes");
  return G;
}

// The routing plan of an op of group G: numExperts spread evenly over the ranks, channels within the
// group's, and `plan` as long as its layout for (E, W, C).
EpPlanLayout check_plan(const OpArgs& a, const EpGroup& G, const TensorArg& plan, int E, int C) {
  if (E % G.world) a.fail_range("numExperts must be a multiple of the world size");
  if (C > G.g.max_channels) a.fail_range("channels exceed the group's maxChannels");
  const EpPlanLayout L = ep_plan_layout(E, G.world, C);
  a.dim_is(plan, 0, L.total, "plan size");
  return L;
}

#if DSK_WITH_CUDA
cuda::EpComm comm_of(const EpGroup& G, CudaDevice& d) {
  cuda::EpComm c;
  c.g = G.g;
  c.rank = G.rank;
  c.world = G.world;
  for (int i = 0; i < G.world; i++) c.peers[i] = G.peers[i];
  c.abort = G.abort_dev;
  c.diag = d.diag_device();
  c.timeout_ns = G.timeout_ns;
  return c;
}

// A fence on the comm stream (an event recorded there now).
class CommFence : public Fence {
 public:
  CommFence(CudaDevice& d, const char* op) : dev_(d), op_(op) {
    CudaDeviceGuard g(d.index());
    d.check(cudaEventCreateWithFlags(&ev_, cudaEventDisableTiming), op);
    d.check(cudaEventRecord(ev_, reinterpret_cast<cudaStream_t>(d.comm_stream(op))), op);
  }
  ~CommFence() override { if (ev_) cudaEventDestroy(ev_); }
  void wait() override {
    CudaDeviceGuard g(dev_.index());
    dev_.check(cudaEventSynchronize(ev_), op_.c_str());
  }

 private:
  CudaDevice& dev_;
  cudaEvent_t ev_ = nullptr;
  std::string op_;
};

// An integer knob from the environment (benchmark experiments), else `fallback`.
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

// Timing events for the benchmark, by id.
struct Timer {
  int device;
  cudaEvent_t ev;
};
std::map<int, Timer>& timers() {
  static auto* m = new std::map<int, Timer>();
  return *m;
}
int next_timer = 1;

class EventFence : public Fence {
 public:
  EventFence(int device, cudaEvent_t ev) : device_(device), ev_(ev) {}
  void wait() override {
    CudaDeviceGuard g(device_);
    cudaError_t e = cudaEventSynchronize(ev_);
    if (e != cudaSuccess) throw Error(ErrorKind::Cuda, "ep.timer", cudaGetErrorString(e), cudaGetErrorName(e));
  }

 private:
  int device_;
  cudaEvent_t ev_;
};
#endif

void check_2d(const OpArgs& a, const TensorArg& t, std::initializer_list<DType> dts) {
  a.dtype_in(t, dts);
  a.ndim_is(t, 2);
  a.contiguous(t);
}
void check_1d(const OpArgs& a, const TensorArg& t, std::initializer_list<DType> dts) {
  a.dtype_in(t, dts);
  a.ndim_is(t, 1);
  a.contiguous(t);
}

}  // namespace

// epLayout(indices i32 [T,K], numExperts, worldSize, tokensPerRank i32 [W], tokensPerExpert i32 [E],
//          inRank u8 [T,W], tokenIdxInRank i32 [T,W], posInExpert i32 [T,K], sendList i32 [W,T], scratch i32 [n])
static Napi::Value ep_layout(const Napi::CallbackInfo& info) {
  OpArgs a(info, "ep.layout", 10);
  TensorArg idx = a.tensor(0, "indices");
  check_2d(a, idx, {DType::I32});
  const int64_t T = idx.size(0);
  const int K = static_cast<int>(idx.size(1));
  const int E = static_cast<int>(a.integer(1, "numExperts", 1, 4096));
  const int W = static_cast<int>(a.integer(2, "worldSize", 1, kEpMaxWorld));
  if (K < 1 || K > kEpMaxTopk) a.fail_range("indices must have 1 to " + std::to_string(kEpMaxTopk) + " columns (topk)");
  if (E % W) a.fail_range("numExperts must be a multiple of the world size");
  TensorArg tpr = a.tensor(3, "tokensPerRank"), tpe = a.tensor(4, "tokensPerExpert"), in_rank = a.tensor(5, "inRank"),
            tir = a.tensor(6, "tokenIdxInRank"), pos = a.tensor(7, "posInExpert"), send = a.tensor(8, "sendList"),
            scratch = a.tensor(9, "scratch");
  check_1d(a, tpr, {DType::I32});
  a.dim_is(tpr, 0, W);
  check_1d(a, tpe, {DType::I32});
  a.dim_is(tpe, 0, E);
  check_2d(a, in_rank, {DType::U8});
  check_2d(a, tir, {DType::I32});
  check_2d(a, pos, {DType::I32});
  check_2d(a, send, {DType::I32});
  check_1d(a, scratch, {DType::I32});
  for (auto* t : {&in_rank, &tir}) { a.dim_is(*t, 0, T); a.dim_is(*t, 1, W); }
  a.dim_is(pos, 0, T);
  a.dim_is(pos, 1, K);
  a.dim_is(send, 0, W);
  a.dim_is(send, 1, T);
  Device dev = a.same_device({&idx, &tpr, &tpe, &in_rank, &tir, &pos, &send, &scratch});
#if DSK_WITH_CUDA
  if (!dev.is_cpu() && scratch.numel() < cuda::ep_layout_scratch_ints(T, E, W))
    a.fail_range("scratch must hold " + std::to_string(cuda::ep_layout_scratch_ints(T, E, W)) + " ints");
#endif
  enqueue(a.op(), dev,
          [=] {
            cpu::ep_layout(idx.ptr<int32_t>(), T, K, E, W, tpr.ptr<int32_t>(), tpe.ptr<int32_t>(), in_rank.ptr<uint8_t>(),
                           tir.ptr<int32_t>(), pos.ptr<int32_t>(), send.ptr<int32_t>(), cpu_diag());
          },
          [=](auto& d) {
            cuda::ep_layout(idx.ptr<int32_t>(), T, K, E, W, tpr.ptr<int32_t>(), tpe.ptr<int32_t>(), in_rank.ptr<uint8_t>(),
                            tir.ptr<int32_t>(), pos.ptr<int32_t>(), send.ptr<int32_t>(), scratch.ptr<int32_t>(), d.diag_device(),
                            d.stream());
          });
  return info.Env().Undefined();
}

// epGroupCreate(device, rank, world, maxChannels, slots, slotBytes, maxExperts, timeoutMs)
//   -> { handle: Uint8Array (the CUDA IPC handle of this rank's buffer; empty on cpu), bytes }
static Napi::Value ep_group_create(const Napi::CallbackInfo& info) {
  OpArgs a(info, "dist.init", 8);
  EpGroup& G = group();
  if (G.created) a.fail_type("this process already has an expert-parallel group");
  const int dev = a.device(0, "device");
  const int rank = static_cast<int>(a.integer(1, "rank", 0, kEpMaxWorld - 1));
  const int world = static_cast<int>(a.integer(2, "world", 1, kEpMaxWorld));
  if (rank >= world) a.fail_range("rank must be below the world size");
  const int channels = static_cast<int>(a.integer(3, "maxChannels", 1, 512));
  const int slots = static_cast<int>(a.integer(4, "slots", 4, 1 << 16));
  const int64_t slot_bytes = a.integer(5, "slotBytes", 16, int64_t(1) << 30);
  const int max_experts = static_cast<int>(a.integer(6, "maxExperts", 1, 4096));
  const double timeout_ms = a.number(7, "timeoutMs");
  if (!(timeout_ms > 0)) a.fail_range("timeoutMs must be positive");
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  G.g = ep_geometry(world, channels, slots, slot_bytes, max_experts);
  G.rank = rank;
  G.world = world;
  G.device = dev;
  G.timeout_ns = static_cast<uint64_t>(timeout_ms * 1e6);
  if (dev < 0) {
    if (world != 1) a.fail_type("expert-parallel groups of several ranks need GPUs (cuda devices); on cpu the world size must be 1");
    G.created = true;
    G.opened = true;
    G.peers.assign(1, nullptr);
    out.Set("handle", Napi::Uint8Array::New(env, 0));
    out.Set("bytes", Napi::Number::New(env, 0));
    return out;
  }
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(dev, a.op());
  d.ensure_usable(a.op());
  CudaDeviceGuard guard(dev);
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, static_cast<size_t>(G.g.total));
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    a.fail_range("cannot allocate the " + std::to_string(G.g.total) + "-byte expert-parallel buffer on " + Device{dev}.name() +
                 " (lower slots or maxChannels in dist.init's ep options)");
  }
  d.check(e, a.op());
  G.local = static_cast<char*>(p);
  d.check(cudaMemset(G.local, 0, static_cast<size_t>(G.g.total)), a.op());
  void* h = nullptr;
  d.check(cudaHostAlloc(&h, 64, cudaHostAllocMapped), a.op());
  G.abort_host = static_cast<uint32_t*>(h);
  *G.abort_host = 0;
  void* hd = nullptr;
  d.check(cudaHostGetDevicePointer(&hd, h, 0), a.op());
  G.abort_dev = static_cast<uint32_t*>(hd);
  d.check(cudaDeviceSynchronize(), a.op());
  G.peers.assign(world, nullptr);
  G.peers[rank] = G.local;
  G.created = true;
  G.opened = world == 1;
  cudaIpcMemHandle_t ipc{};
  if (world > 1) d.check(cudaIpcGetMemHandle(&ipc, G.local), a.op());
  Napi::Uint8Array ua = Napi::Uint8Array::New(env, world > 1 ? sizeof(ipc) : 0);
  if (world > 1) std::memcpy(ua.Data(), &ipc, sizeof(ipc));
  out.Set("handle", ua);
  out.Set("bytes", Napi::Number::New(env, static_cast<double>(G.g.total)));
  return out;
#else
  a.fail_type("this build has no CUDA support");
#endif
}

// epGroupOpen(handles: Uint8Array[W], devices: number[W]): maps every peer's buffer (after checking
// that this GPU can reach the peer's directly).
static Napi::Value ep_group_open(const Napi::CallbackInfo& info) {
  OpArgs a(info, "dist.init", 2);
  EpGroup& G = group();
  if (!G.created) a.fail_type("no expert-parallel group to open");
  if (G.opened) return info.Env().Undefined();
  if (!info[0].IsArray() || !info[1].IsArray()) a.fail_type("handles and devices must be arrays");
  Napi::Array hs = info[0].As<Napi::Array>(), ds = info[1].As<Napi::Array>();
  if (static_cast<int>(hs.Length()) != G.world || static_cast<int>(ds.Length()) != G.world)
    a.fail_range("expected one handle and one device per rank");
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(G.device, a.op());
  CudaDeviceGuard guard(G.device);
  for (int s = 0; s < G.world; s++) {
    if (s == G.rank) continue;
    Napi::Value hv = hs.Get(s), dv = ds.Get(s);
    if (!hv.IsTypedArray() || hv.As<Napi::TypedArray>().ByteLength() != sizeof(cudaIpcMemHandle_t))
      a.fail_type("handles[" + std::to_string(s) + "] must be a 64-byte CUDA IPC handle");
    const int pdev = dv.As<Napi::Number>().Int32Value();
    if (pdev == G.device)
      a.fail_range("rank " + std::to_string(s) + " uses " + Device{pdev}.name() + " too; every rank needs its own GPU");
    int can = 0;
    cudaError_t e = cudaDeviceCanAccessPeer(&can, G.device, pdev);
    if (e != cudaSuccess || !can) {
      cudaGetLastError();
      a.fail_type(Device{G.device}.name() + " (rank " + std::to_string(G.rank) + ") cannot access " + Device{pdev}.name() +
                  " (rank " + std::to_string(s) + ") directly: no NVLink or PCIe peer-to-peer path between them" +
                  (e != cudaSuccess ? std::string(" (") + cudaGetErrorName(e) + ")" : std::string(" (cudaDeviceCanAccessPeer = 0)")) +
                  "; expert-parallel kernels need every pair of GPUs in the group to reach each other");
    }
    cudaIpcMemHandle_t h;
    auto ta = hv.As<Napi::TypedArray>();
    std::memcpy(&h, static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), sizeof(h));
    void* p = nullptr;
    e = cudaIpcOpenMemHandle(&p, h, cudaIpcMemLazyEnablePeerAccess);
    if (e != cudaSuccess) {
      cudaGetLastError();
      a.fail_type("cannot map rank " + std::to_string(s) + "'s buffer (" + Device{pdev}.name() + ") into " + Device{G.device}.name() +
                  " through CUDA IPC: " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
    }
    G.peers[s] = static_cast<char*>(p);
  }
  (void)d;
  G.opened = true;
#else
  a.fail_type("this build has no CUDA support");
#endif
  return info.Env().Undefined();
}

// epGroupInfo() -> { created, device, rank, world, bytes, aborted (0 or failed rank + 1) }
static Napi::Value ep_group_info(const Napi::CallbackInfo& info) {
  EpGroup& G = group();
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("created", G.created);
  o.Set("device", G.device);
  o.Set("rank", G.rank);
  o.Set("world", G.world);
  o.Set("bytes", static_cast<double>(G.created ? G.g.total : 0));
  o.Set("slots", G.g.slots);
  o.Set("slotBytes", static_cast<double>(G.g.slot_bytes));
  o.Set("maxChannels", G.g.max_channels);
  o.Set("maxExperts", G.g.max_experts);
  o.Set("aborted", static_cast<double>(G.created ? abort_word() : 0));
  return o;
}

// epAbort(rank): the host learned that `rank` failed; spinning kernels stop and later ops throw.
static Napi::Value ep_abort(const Napi::CallbackInfo& info) {
  OpArgs a(info, "dist.abort", 1);
  const uint32_t r = static_cast<uint32_t>(a.integer(0, "rank", 0, kEpMaxWorld - 1));
  EpGroup& G = group();
  if (!G.created) return info.Env().Undefined();
#if DSK_WITH_CUDA
  if (G.abort_host) {
    uint32_t expected = 0;
    __atomic_compare_exchange_n(G.abort_host, &expected, r + 1, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    return info.Env().Undefined();
  }
#endif
  if (!G.cpu_abort) G.cpu_abort = r + 1;
  return info.Env().Undefined();
}

// epGroupDestroy(): unmaps the peers and frees the buffer (after the device's work has finished).
static Napi::Value ep_group_destroy(const Napi::CallbackInfo& info) {
  EpGroup& G = group();
#if DSK_WITH_CUDA
  if (G.created && G.device >= 0) {
    CudaDeviceGuard guard(G.device);
    cudaDeviceSynchronize();
    for (int s = 0; s < G.world; s++)
      if (s != G.rank && G.peers[s]) cudaIpcCloseMemHandle(G.peers[s]);
    if (G.local) cudaFree(G.local);
    if (G.abort_host) cudaFreeHost(G.abort_host);
    cudaGetLastError();
  }
#endif
  group() = EpGroup();
  return info.Env().Undefined();
}

// epNotify(epoch, numExperts, hidden, fp8, channels, indices [T,K] (shape only), tokensPerExpert, tokensPerRank,
//          sendList, plan i32 [n], summary i32 [2 + E/W]) -> Promise<Int32Array summary [M, R, segCount...]>
static Napi::Value ep_notify(const Napi::CallbackInfo& info) {
  OpArgs a(info, "ep.dispatch", 11);
  const uint32_t epoch = static_cast<uint32_t>(a.integer(0, "epoch", 1, 0xffffffffLL));
  const int E = static_cast<int>(a.integer(1, "numExperts", 1, 4096));
  const int64_t H = a.integer(2, "hidden", 1, int64_t(1) << 24);
  const bool fp8 = a.boolean(3, "fp8");
  const int C = static_cast<int>(a.integer(4, "channels", 1, 512));
  TensorArg idx = a.tensor(5, "indices"), tpe = a.tensor(6, "tokensPerExpert"), tpr = a.tensor(7, "tokensPerRank"),
            send = a.tensor(8, "sendList"), plan = a.tensor(9, "plan"), summary = a.tensor(10, "summary");
  check_2d(a, idx, {DType::I32});
  check_1d(a, tpe, {DType::I32});
  check_1d(a, tpr, {DType::I32});
  check_2d(a, send, {DType::I32});
  check_1d(a, plan, {DType::I32});
  check_1d(a, summary, {DType::I32});
  Device dev = a.same_device({&idx, &tpe, &tpr, &send, &plan, &summary});
  EpGroup& G = live_group(a, dev);
  const int W = G.world, K = static_cast<int>(idx.size(1));
  const int64_t T = idx.size(0);
  check_plan(a, G, plan, E, C);
  if (E > G.g.max_experts) a.fail_range("numExperts " + std::to_string(E) + " exceeds the group's maxExperts " + std::to_string(G.g.max_experts));
  a.dim_is(tpe, 0, E);
  a.dim_is(tpr, 0, W);
  a.dim_is(send, 0, W);
  a.dim_is(send, 1, T);
  const int nsum = kEpSummaryHeader + E / W;
  a.dim_is(summary, 0, nsum, "summary size");
  Napi::Env env = info.Env();
  if (dev.is_cpu()) {
    auto host = std::make_shared<std::vector<int32_t>>(nsum);
    CpuQueue::get().push([=] {
      std::vector<int32_t> chan(size_t(W) * C);
      cpu::ep_channel_counts(T, W, C, send.ptr<int32_t>(), tpr.ptr<int32_t>(), chan.data());
      cpu::ep_plan(0, 1, E, C, tpe.ptr<int32_t>(), chan.data(), plan.ptr<int32_t>(), summary.ptr<int32_t>());
      std::memcpy(host->data(), summary.ptr<int32_t>(), nsum * 4);
    });
    return await_fence(env, dev, CpuQueue::get().fence(), [host, nsum](Napi::Env e) -> Napi::Value {
      Napi::Int32Array out = Napi::Int32Array::New(e, nsum);
      std::memcpy(out.Data(), host->data(), nsum * 4);
      return out;
    });
  }
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(dev.index, a.op());
  d.ensure_usable(a.op());
  CudaDeviceGuard guard(dev.index);
  d.comm_after_compute(a.op());
  auto cs = d.comm_stream(a.op());
  cuda::ep_notify(comm_of(G, d), epoch, E, K, H, fp8, C, T, tpe.ptr<int32_t>(), tpr.ptr<int32_t>(), send.ptr<int32_t>(),
                  plan.ptr<int32_t>(), summary.ptr<int32_t>(), cs);
  d.check_launch(a.op());
  void* pinned = d.pinned_acquire(nsum * 4);
  d.check(cudaMemcpyAsync(pinned, summary.data(), nsum * 4, cudaMemcpyDeviceToHost, reinterpret_cast<cudaStream_t>(cs)), a.op());
  d.compute_after_comm(a.op());
  auto fence = std::make_shared<CommFence>(d, a.op());
  CudaDevice* dp = &d;
  BufferPtr keep = summary.buf;
  return await_fence(
      env, dev, fence,
      [pinned, nsum](Napi::Env e) -> Napi::Value {
        Napi::Int32Array out = Napi::Int32Array::New(e, nsum);
        std::memcpy(out.Data(), pinned, nsum * 4);
        return out;
      },
      [dp, pinned, nsum, keep] { dp->pinned_release(pinned, nsum * 4); });
#else
  a.fail_type("this build has no CUDA support");
#endif
}

// epDispatch(x [T,H] bf16|fp8, xScale f32 [T,H/128] | null, weights f32 [T,K], indices i32 [T,K], posInExpert i32 [T,K],
//            sendList i32 [W,T], plan, numExperts, channels, chunk, stagedX [R-Rself,H], stagedScale [R-Rself,H/128] | null,
//            recvWeights f32 [M], recvTokenRows i32 [R,K], join)
// The exchange (comm stream): the peers' tokens land in stagedX once each, with their routing; epExpand
// then does the rest.
static Napi::Value ep_dispatch(const Napi::CallbackInfo& info) {
  OpArgs a(info, "ep.dispatch", 15);
  TensorArg x = a.tensor(0, "x");
  std::optional<TensorArg> xs = a.optional_tensor(1, "xScale");
  TensorArg w = a.tensor(2, "weights"), idx = a.tensor(3, "indices"), pos = a.tensor(4, "posInExpert"), send = a.tensor(5, "sendList"),
            plan = a.tensor(6, "plan");
  const int E = static_cast<int>(a.integer(7, "numExperts", 1, 4096));
  const int C = static_cast<int>(a.integer(8, "channels", 1, 512));
  const int chunk = static_cast<int>(a.integer(9, "chunk", 1, 1 << 16));
  TensorArg sx = a.tensor(10, "stagedX");
  std::optional<TensorArg> ss = a.optional_tensor(11, "stagedScale");
  TensorArg rw = a.tensor(12, "recvWeights"), rtr = a.tensor(13, "recvTokenRows");
  const bool join = a.boolean(14, "join");
  check_2d(a, x, {DType::BF16, DType::FP8E4M3});
  const bool fp8 = x.dtype == DType::FP8E4M3;
  const int64_t T = x.size(0), H = x.size(1);
  check_2d(a, w, {DType::F32});
  check_2d(a, idx, {DType::I32});
  check_2d(a, pos, {DType::I32});
  const int K = static_cast<int>(idx.size(1));
  if (K < 1 || K > kEpMaxTopk) a.fail_range("indices must have 1 to " + std::to_string(kEpMaxTopk) + " columns");
  for (auto* t : {&w, &idx, &pos}) { a.dim_is(*t, 0, T, "tokens"); a.dim_is(*t, 1, K, "topk"); }
  check_2d(a, send, {DType::I32});
  check_1d(a, plan, {DType::I32});
  check_2d(a, sx, {x.dtype});
  a.dim_is(sx, 1, H);
  const int64_t staged_rows = sx.size(0);
  check_1d(a, rw, {DType::F32});
  const int64_t M = rw.size(0);
  if (fp8) {
    if (!xs || !ss) a.fail_type("fp8 x needs xScale and stagedScale");
    if (H % 128) a.fail_range("fp8 x needs hidden to be a multiple of 128");
    check_2d(a, *xs, {DType::F32});
    a.dim_is(*xs, 0, T);
    a.dim_is(*xs, 1, H / 128);
    check_2d(a, *ss, {DType::F32});
    a.dim_is(*ss, 0, staged_rows);
    a.dim_is(*ss, 1, H / 128);
  } else {
    if (xs || ss) a.fail_type("xScale and stagedScale go with fp8 x only");
    if (H % 8) a.fail_range("bf16 x needs hidden to be a multiple of 8");
  }
  check_2d(a, rtr, {DType::I32});
  a.dim_is(rtr, 1, K);
  Device dev = a.same_device({&x, &w, &idx, &pos, &send, &plan, &sx, &rw, &rtr});
  if (xs) a.same_device({&x, &*xs, &*ss});
  EpGroup& G = live_group(a, dev);
  const int W = G.world;
  check_plan(a, G, plan, E, C);
  a.dim_is(send, 0, W);
  a.dim_is(send, 1, T);
  const EpSlotLayout sl = ep_dispatch_slot(H, fp8, K);
  if (sl.bytes > G.g.slot_bytes)
    a.fail_range("a token of hidden " + std::to_string(H) + " needs " + std::to_string(sl.bytes) + "-byte ring slots but the group has " +
                 std::to_string(G.g.slot_bytes) + " (raise ep.maxHidden in dist.init)");
  if (2 * chunk > G.g.slots) a.fail_range("chunk must be at most half the ring's " + std::to_string(G.g.slots) + " slots");
  if (dev.is_cpu()) return info.Env().Undefined();  // a group of one (the CPU device): no peers, epExpand does it all
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(dev.index, a.op());
  d.ensure_usable(a.op());
  CudaDeviceGuard guard(dev.index);
  d.comm_after_compute(a.op());
  auto cs = d.comm_stream(a.op());
  cuda::EpDispatchArgs da;
  da.C = C;
  da.chunk = chunk;
  da.K = K;
  da.E = E;
  da.T = T;
  da.H = H;
  da.M = M;
  da.fp8 = fp8;
  da.probe_skip = env_int("DSK_EP_PROBE_SKIP", 0);
  da.x = x.data();
  da.x_scale = xs ? xs->ptr<float>() : nullptr;
  da.weights = w.ptr<float>();
  da.idx = idx.ptr<int32_t>();
  da.pos = pos.ptr<int32_t>();
  da.send_list = send.ptr<int32_t>();
  da.plan = plan.ptr<int32_t>();
  da.staged_x = sx.data();
  da.staged_scale = ss ? ss->ptr<float>() : nullptr;
  da.staged_rows = staged_rows;
  da.recv_weights = rw.ptr<float>();
  da.recv_token_rows = rtr.ptr<int32_t>();
  cuda::ep_dispatch(comm_of(G, d), da, cs);
  d.check_launch(a.op());
  if (join) d.compute_after_comm(a.op());
#else
  a.fail_type("this build has no CUDA support");
#endif
  return info.Env().Undefined();
}

// epExpand(x [T,H], xScale | null, weights f32 [T,K], indices i32 [T,K], posInExpert i32 [T,K], sendList i32 [W,T],
//          plan, numExperts, channels, stagedX [R-Rself,H], stagedScale | null, recvTokenRows i32 [R,K], recvWeights f32 [M],
//          mIndices i32 [M], recvX [M,H], recvScale [M,H/128] | null, part 0|1|2)
// The rest of a dispatch (compute stream): own tokens' routing, mIndices, and the per-expert layout.
// part 1 (own tokens, mIndices) needs nothing from the exchange; parts 0 (all) and 2 (the peers'
// tokens) need the exchange joined to the compute stream first.
static Napi::Value ep_expand(const Napi::CallbackInfo& info) {
  OpArgs a(info, "ep.dispatch", 17);
  TensorArg x = a.tensor(0, "x");
  std::optional<TensorArg> xs = a.optional_tensor(1, "xScale");
  TensorArg w = a.tensor(2, "weights"), idx = a.tensor(3, "indices"), pos = a.tensor(4, "posInExpert"), send = a.tensor(5, "sendList"),
            plan = a.tensor(6, "plan");
  const int E = static_cast<int>(a.integer(7, "numExperts", 1, 4096));
  const int C = static_cast<int>(a.integer(8, "channels", 1, 512));
  TensorArg sx = a.tensor(9, "stagedX");
  std::optional<TensorArg> ss = a.optional_tensor(10, "stagedScale");
  TensorArg rtr = a.tensor(11, "recvTokenRows"), rw = a.tensor(12, "recvWeights"), mi = a.tensor(13, "mIndices"), rx = a.tensor(14, "recvX");
  std::optional<TensorArg> rs = a.optional_tensor(15, "recvScale");
  const int part = static_cast<int>(a.integer(16, "part", 0, 2));
  check_2d(a, x, {DType::BF16, DType::FP8E4M3});
  const bool fp8 = x.dtype == DType::FP8E4M3;
  const int64_t T = x.size(0), H = x.size(1);
  check_2d(a, w, {DType::F32});
  check_2d(a, idx, {DType::I32});
  check_2d(a, pos, {DType::I32});
  const int K = static_cast<int>(idx.size(1));
  if (K < 1 || K > kEpMaxTopk) a.fail_range("indices must have 1 to " + std::to_string(kEpMaxTopk) + " columns");
  for (auto* t : {&w, &idx, &pos}) { a.dim_is(*t, 0, T, "tokens"); a.dim_is(*t, 1, K, "topk"); }
  check_2d(a, send, {DType::I32});
  check_1d(a, plan, {DType::I32});
  check_2d(a, sx, {x.dtype});
  a.dim_is(sx, 1, H);
  check_2d(a, rx, {x.dtype});
  a.dim_is(rx, 1, H);
  check_2d(a, rtr, {DType::I32});
  a.dim_is(rtr, 1, K);
  const int64_t R = rtr.size(0), M = rx.size(0), staged_rows = sx.size(0);
  check_1d(a, rw, {DType::F32});
  a.dim_is(rw, 0, M);
  check_1d(a, mi, {DType::I32});
  a.dim_is(mi, 0, M);
  if (fp8 != (xs && ss && rs) || (!fp8 && (xs || ss || rs))) a.fail_type("xScale, stagedScale and recvScale go with fp8 x, and only with it");
  if (fp8) {
    auto scales = [&](TensorArg& t, int64_t rows) {
      check_2d(a, t, {DType::F32});
      a.dim_is(t, 0, rows);
      a.dim_is(t, 1, H / 128);
    };
    scales(*xs, T);
    scales(*ss, staged_rows);
    scales(*rs, M);
  }
  Device dev = a.same_device({&x, &w, &idx, &pos, &send, &plan, &sx, &rtr, &rw, &mi, &rx});
  if (fp8) a.same_device({&x, &*xs, &*ss, &*rs});
  EpGroup& G = live_group(a, dev);
  const int W = G.world, me = G.rank;
  check_plan(a, G, plan, E, C);
  a.dim_is(send, 0, W);
  a.dim_is(send, 1, T);
  if (dev.is_cpu()) {
    const TensorArg xsv = fp8 ? *xs : x, ssv = fp8 ? *ss : x, rsv = fp8 ? *rs : x;  // kept alive by the closure
    CpuQueue::get().push([=] {
      cpu::ep_expand(part, me, W, E, C, T, H, fp8 ? 1 : 2, K, M, x.data(), fp8 ? xsv.ptr<float>() : nullptr, w.ptr<float>(),
                     idx.ptr<int32_t>(), pos.ptr<int32_t>(), send.ptr<int32_t>(), plan.ptr<int32_t>(), sx.data(),
                     fp8 ? ssv.ptr<float>() : nullptr, rtr.ptr<int32_t>(), rw.ptr<float>(), mi.ptr<int32_t>(), rx.data(),
                     fp8 ? rsv.ptr<float>() : nullptr);
    });
    return info.Env().Undefined();
  }
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(dev.index, a.op());
  d.ensure_usable(a.op());
  CudaDeviceGuard guard(dev.index);
  cuda::EpExpandArgs ea;
  ea.part = static_cast<cuda::EpPart>(part);
  ea.launch.sm_count = d.info().sm_count;
  ea.launch.exchange_sms = 2 * C;
  ea.C = C;
  ea.E = E;
  ea.W = W;
  ea.me = me;
  ea.K = K;
  ea.T = T;
  ea.H = H;
  ea.M = M;
  ea.R = R;
  ea.fp8 = fp8;
  ea.x = x.data();
  ea.x_scale = fp8 ? xs->ptr<float>() : nullptr;
  ea.weights = w.ptr<float>();
  ea.idx = idx.ptr<int32_t>();
  ea.pos = pos.ptr<int32_t>();
  ea.send_list = send.ptr<int32_t>();
  ea.plan = plan.ptr<int32_t>();
  ea.staged_x = sx.data();
  ea.staged_scale = fp8 ? ss->ptr<float>() : nullptr;
  ea.recv_token_rows = rtr.ptr<int32_t>();
  ea.recv_weights = rw.ptr<float>();
  ea.m_indices = mi.ptr<int32_t>();
  ea.recv_x = rx.data();
  ea.recv_scale = fp8 ? rs->ptr<float>() : nullptr;
  cuda::ep_expand(ea, d.stream());
  d.check_launch(a.op());
#else
  a.fail_type("this build has no CUDA support");
#endif
  return info.Env().Undefined();
}

// epReduce(y bf16 [M,H], recvWeights f32 [M], recvTokenRows i32 [R,K], plan, numExperts, channels, partial bf16 [R,H],
//          part 0|1|2): the per-(token, rank) weighted sums a combine sends (compute stream); part 2 (the peers'
// tokens) is what its exchange needs, part 1 (own tokens) what only the final sum reads.
static Napi::Value ep_reduce(const Napi::CallbackInfo& info) {
  OpArgs a(info, "ep.combine", 8);
  TensorArg y = a.tensor(0, "y"), rw = a.tensor(1, "recvWeights"), rtr = a.tensor(2, "recvTokenRows"), plan = a.tensor(3, "plan");
  const int E = static_cast<int>(a.integer(4, "numExperts", 1, 4096));
  const int C = static_cast<int>(a.integer(5, "channels", 1, 512));
  TensorArg part = a.tensor(6, "partial");
  const int which = static_cast<int>(a.integer(7, "part", 0, 2));
  check_2d(a, y, {DType::BF16});
  const int64_t M = y.size(0), H = y.size(1);
  if (H % 8) a.fail_range("y needs hidden to be a multiple of 8");
  check_1d(a, rw, {DType::F32});
  a.dim_is(rw, 0, M, "rows of y");
  check_2d(a, rtr, {DType::I32});
  const int64_t R = rtr.size(0);
  const int K = static_cast<int>(rtr.size(1));
  if (K < 1 || K > kEpMaxTopk) a.fail_range("recvTokenRows must have 1 to " + std::to_string(kEpMaxTopk) + " columns");
  check_1d(a, plan, {DType::I32});
  check_2d(a, part, {DType::BF16});
  a.dim_is(part, 0, R, "received tokens");
  a.dim_is(part, 1, H);
  Device dev = a.same_device({&y, &rw, &rtr, &plan, &part});
  EpGroup& G = live_group(a, dev);
  const int W = G.world, me = G.rank;
  check_plan(a, G, plan, E, C);
  if (dev.is_cpu()) {
    CpuQueue::get().push([=] {
      cpu::ep_reduce(which, y.ptr<uint16_t>(), M, H, rw.ptr<float>(), rtr.ptr<int32_t>(), R, K, plan.ptr<int32_t>(), E, W, me, C,
                     part.ptr<uint16_t>());
    });
    return info.Env().Undefined();
  }
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(dev.index, a.op());
  d.ensure_usable(a.op());
  CudaDeviceGuard guard(dev.index);
  cuda::EpLocalLaunch launch;
  launch.sm_count = d.info().sm_count;
  launch.exchange_sms = 2 * C;
  cuda::ep_reduce(static_cast<cuda::EpPart>(which), launch, y.ptr<uint16_t>(), M, H, rw.ptr<float>(), rtr.ptr<int32_t>(), R, K,
                  plan.ptr<int32_t>(), E, W, me, C, part.ptr<uint16_t>(), d.stream());
  d.check_launch(a.op());
#else
  a.fail_type("this build has no CUDA support");
#endif
  return info.Env().Undefined();
}

// epCombine(partial bf16 [R,H], staged bf16 [S,H], plan, numExperts, channels, chunk, join): the exchange of a
// combine (comm stream), after epReduce: the sums return to their tokens' ranks, into staged.
static Napi::Value ep_combine(const Napi::CallbackInfo& info) {
  OpArgs a(info, "ep.combine", 7);
  TensorArg part = a.tensor(0, "partial"), staged = a.tensor(1, "staged"), plan = a.tensor(2, "plan");
  const int E = static_cast<int>(a.integer(3, "numExperts", 1, 4096));
  const int C = static_cast<int>(a.integer(4, "channels", 1, 512));
  const int chunk = static_cast<int>(a.integer(5, "chunk", 1, 1 << 16));
  const bool join = a.boolean(6, "join");
  check_2d(a, part, {DType::BF16});
  const int64_t H = part.size(1);
  if (H % 8) a.fail_range("partial needs hidden to be a multiple of 8");
  check_2d(a, staged, {DType::BF16});
  a.dim_is(staged, 1, H);
  check_1d(a, plan, {DType::I32});
  Device dev = a.same_device({&part, &staged, &plan});
  EpGroup& G = live_group(a, dev);
  check_plan(a, G, plan, E, C);
  if (H * 2 > G.g.slot_bytes) a.fail_range("hidden " + std::to_string(H) + " does not fit the group's ring slots (raise ep.maxHidden)");
  if (2 * chunk > G.g.slots) a.fail_range("chunk must be at most half the ring's " + std::to_string(G.g.slots) + " slots");
  if (dev.is_cpu()) return info.Env().Undefined();  // a group of one (the CPU device): nothing returns from peers
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(dev.index, a.op());
  d.ensure_usable(a.op());
  CudaDeviceGuard guard(dev.index);
  d.comm_after_compute(a.op());
  cuda::EpCombineArgs ca;
  ca.C = C;
  ca.chunk = chunk;
  ca.E = E;
  ca.H = H;
  ca.plan = plan.ptr<int32_t>();
  ca.partial = part.ptr<uint16_t>();
  ca.staged = staged.ptr<uint16_t>();
  ca.staged_rows = staged.size(0);
  ca.probe_skip = env_int("DSK_EP_PROBE_SKIP", 0);
  cuda::ep_combine(comm_of(G, d), ca, d.comm_stream(a.op()));
  d.check_launch(a.op());
  if (join) d.compute_after_comm(a.op());
#else
  a.fail_type("this build has no CUDA support");
#endif
  return info.Env().Undefined();
}

// epSum(partial bf16 [R,H], staged bf16 [S,H], tokenIdxInRank i32 [T,W], plan, numExperts, channels, out bf16 [T,H]):
// the end of a combine whose exchange has reached the compute stream (compute stream).
static Napi::Value ep_sum(const Napi::CallbackInfo& info) {
  OpArgs a(info, "ep.combine", 7);
  TensorArg part = a.tensor(0, "partial"), staged = a.tensor(1, "staged"), tir = a.tensor(2, "tokenIdxInRank"), plan = a.tensor(3, "plan");
  const int E = static_cast<int>(a.integer(4, "numExperts", 1, 4096));
  const int C = static_cast<int>(a.integer(5, "channels", 1, 512));
  TensorArg out = a.tensor(6, "out");
  check_2d(a, part, {DType::BF16});
  const int64_t H = part.size(1);
  if (H % 8) a.fail_range("partial needs hidden to be a multiple of 8");
  check_2d(a, staged, {DType::BF16});
  a.dim_is(staged, 1, H);
  check_2d(a, tir, {DType::I32});
  check_1d(a, plan, {DType::I32});
  check_2d(a, out, {DType::BF16});
  const int64_t T = tir.size(0);
  a.dim_is(out, 0, T);
  a.dim_is(out, 1, H);
  Device dev = a.same_device({&part, &staged, &tir, &plan, &out});
  EpGroup& G = live_group(a, dev);
  const int W = G.world, me = G.rank;
  check_plan(a, G, plan, E, C);
  a.dim_is(tir, 1, W);
  if (dev.is_cpu()) {
    CpuQueue::get().push([=] {
      cpu::ep_sum(part.ptr<uint16_t>(), staged.ptr<uint16_t>(), tir.ptr<int32_t>(), plan.ptr<int32_t>(), E, W, me, C, T, H,
                  out.ptr<uint16_t>());
    });
    return info.Env().Undefined();
  }
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(dev.index, a.op());
  d.ensure_usable(a.op());
  CudaDeviceGuard guard(dev.index);
  cuda::ep_sum(part.ptr<uint16_t>(), staged.ptr<uint16_t>(), tir.ptr<int32_t>(), plan.ptr<int32_t>(), E, W, me, C, T, H,
               out.ptr<uint16_t>(), d.stream());
  d.check_launch(a.op());
#else
  a.fail_type("this build has no CUDA support");
#endif
  return info.Env().Undefined();
}

// epJoin(device): the compute stream waits for the comm stream (ends an asynchronous op).
static Napi::Value ep_join(const Napi::CallbackInfo& info) {
  OpArgs a(info, "ep.wait", 1);
  const int dev = a.device(0, "device");
#if DSK_WITH_CUDA
  if (dev >= 0) {
    CudaDevice& d = CudaDevice::get(dev, a.op());
    d.compute_after_comm(a.op());
  }
#endif
  (void)dev;
  return info.Env().Undefined();
}

// ---- benchmark helpers ----

// epTimerCreate(device) -> id; epTimerRecord(id, onComm); epTimerElapsed(start, end) -> Promise<ms>; epTimerDestroy(id)
static Napi::Value ep_timer_create(const Napi::CallbackInfo& info) {
  OpArgs a(info, "ep.timer", 1);
  const int dev = a.device(0, "device");
  if (dev < 0) a.fail_type("timers are for cuda devices");
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(dev, a.op());
  CudaDeviceGuard guard(dev);
  cudaEvent_t ev;
  d.check(cudaEventCreate(&ev), a.op());
  int id = next_timer++;
  timers()[id] = Timer{dev, ev};
  return Napi::Number::New(info.Env(), id);
#else
  a.fail_type("this build has no CUDA support");
#endif
}

static Napi::Value ep_timer_record(const Napi::CallbackInfo& info) {
  OpArgs a(info, "ep.timer", 2);
#if DSK_WITH_CUDA
  const int id = static_cast<int>(a.integer(0, "id", 1, 1 << 30));
  const bool on_comm = a.boolean(1, "onComm");
  auto it = timers().find(id);
  if (it == timers().end()) a.fail_range("no timer " + std::to_string(id));
  CudaDevice& d = CudaDevice::get(it->second.device, a.op());
  CudaDeviceGuard guard(it->second.device);
  d.check(cudaEventRecord(it->second.ev, reinterpret_cast<cudaStream_t>(on_comm ? d.comm_stream(a.op()) : d.stream())), a.op());
#endif
  return info.Env().Undefined();
}

static Napi::Value ep_timer_elapsed(const Napi::CallbackInfo& info) {
  OpArgs a(info, "ep.timer", 2);
#if DSK_WITH_CUDA
  const int i0 = static_cast<int>(a.integer(0, "start", 1, 1 << 30)), i1 = static_cast<int>(a.integer(1, "end", 1, 1 << 30));
  auto s = timers().find(i0), e = timers().find(i1);
  if (s == timers().end() || e == timers().end()) a.fail_range("unknown timer");
  cudaEvent_t ev0 = s->second.ev, ev1 = e->second.ev;
  const int dev = e->second.device;
  return await_fence(info.Env(), Device{dev}, std::make_shared<EventFence>(dev, ev1), [ev0, ev1, dev](Napi::Env env) -> Napi::Value {
    CudaDeviceGuard guard(dev);
    float ms = -1;
    if (cudaEventElapsedTime(&ms, ev0, ev1) != cudaSuccess) { cudaGetLastError(); ms = -1; }
    return Napi::Number::New(env, ms);
  });
#else
  a.fail_type("this build has no CUDA support");
#endif
}

static Napi::Value ep_timer_destroy(const Napi::CallbackInfo& info) {
  OpArgs a(info, "ep.timer", 1);
#if DSK_WITH_CUDA
  const int id = static_cast<int>(a.integer(0, "id", 1, 1 << 30));
  auto it = timers().find(id);
  if (it != timers().end()) {
    cudaEventDestroy(it->second.ev);
    timers().erase(it);
  }
#endif
  return info.Env().Undefined();
}

// epPeerCopy(peerRank, bytes, iters): `iters` copies (copy engine) of `bytes` from this rank's ring area
// into the same area of the peer's buffer, on the comm stream. Only between ops: the rings carry no data then.
static Napi::Value ep_peer_copy(const Napi::CallbackInfo& info) {
  OpArgs a(info, "ep.peerCopy", 3);
  EpGroup& G = group();
  if (!G.created || G.device < 0 || !G.opened) a.fail_type("needs an opened GPU group");
  const int peer = static_cast<int>(a.integer(0, "peerRank", 0, G.world - 1));
  const int64_t area = G.g.total - G.g.off_rings;
  const int64_t bytes = a.integer(1, "bytes", 1, area);
  const int iters = static_cast<int>(a.integer(2, "iters", 1, 1 << 20));
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(G.device, a.op());
  CudaDeviceGuard guard(G.device);
  auto cs = reinterpret_cast<cudaStream_t>(d.comm_stream(a.op()));
  for (int i = 0; i < iters; i++)
    d.check(cudaMemcpyAsync(G.peers[peer] + G.g.off_rings, G.local + G.g.off_rings, static_cast<size_t>(bytes), cudaMemcpyDefault, cs), a.op());
#endif
  (void)iters;
  return info.Env().Undefined();
}

// epGate(device, us, onComm): holds the comm (or compute) stream for `us` microseconds.
static Napi::Value ep_gate(const Napi::CallbackInfo& info) {
  OpArgs a(info, "ep.gate", 3);
  const int dev = a.device(0, "device");
  const double us = a.number(1, "us");
  const bool on_comm = a.boolean(2, "onComm");
  if (dev < 0 || !(us >= 0) || us > 1e7) a.fail_range("needs a cuda device and 0 <= us <= 1e7");
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(dev, a.op());
  CudaDeviceGuard guard(dev);
  cuda::ep_gate(static_cast<uint64_t>(us * 1000), on_comm ? d.comm_stream(a.op()) : d.stream());
  d.check_launch(a.op());
#endif
  (void)on_comm;
  return info.Env().Undefined();
}

// epBusy(out f32 [blocks], iters): a compute-bound kernel on the compute stream, one block per element.
static Napi::Value ep_busy(const Napi::CallbackInfo& info) {
  OpArgs a(info, "ep.busy", 2);
  TensorArg out = a.tensor(0, "out");
  check_1d(a, out, {DType::F32});
  const int iters = static_cast<int>(a.integer(1, "iters", 1, 1 << 24));
  if (out.device.is_cpu()) a.fail_type("busy is for cuda devices");
  const int blocks = static_cast<int>(out.numel());
  enqueue(a.op(), out.device, [] {}, [=](auto& d) { cuda::ep_busy(blocks, iters, out.ptr<float>(), d.stream()); });
  return info.Env().Undefined();
}

DSK_EXPORTS(ep_exports) {
  def(env, exports, "epLayout", ep_layout);
  def(env, exports, "epGroupCreate", ep_group_create);
  def(env, exports, "epGroupOpen", ep_group_open);
  def(env, exports, "epGroupInfo", ep_group_info);
  def(env, exports, "epAbort", ep_abort);
  def(env, exports, "epGroupDestroy", ep_group_destroy);
  def(env, exports, "epNotify", ep_notify);
  def(env, exports, "epDispatch", ep_dispatch);
  def(env, exports, "epCombine", ep_combine);
  def(env, exports, "epExpand", ep_expand);
  def(env, exports, "epReduce", ep_reduce);
  def(env, exports, "epSum", ep_sum);
  def(env, exports, "epJoin", ep_join);
  def(env, exports, "epTimerCreate", ep_timer_create);
  def(env, exports, "epTimerRecord", ep_timer_record);
  def(env, exports, "epTimerElapsed", ep_timer_elapsed);
  def(env, exports, "epTimerDestroy", ep_timer_destroy);
  def(env, exports, "epPeerCopy", ep_peer_copy);
  def(env, exports, "epBusy", ep_busy);
  def(env, exports, "epGate", ep_gate);
}

}  // namespace dsk::addon
