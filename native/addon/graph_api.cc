// CUDA graphs: capture the ops enqueued on a device's stream, replay them with one launch; plus the
// L2 flush and replay timing the benchmark harness builds on.
#include <vector>

#include "addon.h"

#if DSK_WITH_CUDA
#include <cuda_runtime.h>

namespace dsk::addon {

class GraphWrap : public Napi::ObjectWrap<GraphWrap> {
 public:
  static Napi::FunctionReference* ctor;
  static Napi::Function init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "Graph",
                                   {InstanceMethod<&GraphWrap::replay>("replay"), InstanceMethod<&GraphWrap::dispose>("dispose"),
                                    InstanceMethod<&GraphWrap::time>("time"),
                                    InstanceAccessor<&GraphWrap::arena_bytes>("arenaBytes")});
    ctor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }
  explicit GraphWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GraphWrap>(info) {}
  ~GraphWrap() override { release(); }

  void set(int device, cudaGraph_t g, cudaGraphExec_t e, std::shared_ptr<CaptureArena> arena) {
    device_ = device;
    graph_ = g;
    exec_ = e;
    arena_ = std::move(arena);
  }

 private:
  void release() {
    if (!exec_) return;
    CudaDeviceGuard g(device_);
    cudaGraphExecDestroy(exec_);
    cudaGraphDestroy(graph_);
    exec_ = nullptr;
    graph_ = nullptr;
    arena_.reset();  // memory goes once tensors allocated inside the capture are gone too
  }
  CudaDevice& live(const char* op) {
    if (!exec_) throw_type(op, "graph has been disposed");
    CudaDevice& d = CudaDevice::get(device_, op);
    d.ensure_usable(op);
    d.ensure_not_capturing(op);
    return d;
  }
  Napi::Value replay(const Napi::CallbackInfo& info) {
    try {
      CudaDevice& d = live("graph.replay");
      CudaDeviceGuard g(device_);
      d.check(cudaGraphLaunch(exec_, reinterpret_cast<cudaStream_t>(d.stream())), "graph.replay");
      d.check_launch("graph.replay");
    } catch (const Error& e) {
      throw js_error(info.Env(), e);
    }
    return info.Env().Undefined();
  }
  Napi::Value dispose(const Napi::CallbackInfo& info) { release(); return info.Env().Undefined(); }
  Napi::Value arena_bytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), arena_ ? static_cast<double>(arena_->bytes()) : 0.0);
  }

  // time(replays) -> Promise<Float64Array>: milliseconds of each replay, by events around it.
  Napi::Value time(const Napi::CallbackInfo& info) {
    try {
      OpArgs a(info, "graph.time", 1);
      int n = static_cast<int>(a.integer(0, "replays", 1, 100000));
      CudaDevice& d = live("graph.time");
      CudaDeviceGuard g(device_);
      auto st = reinterpret_cast<cudaStream_t>(d.stream());
      auto events = std::make_shared<std::vector<cudaEvent_t>>(n + 1);
      for (auto& ev : *events) d.check(cudaEventCreate(&ev), "graph.time");
      d.check(cudaEventRecord((*events)[0], st), "graph.time");
      for (int i = 0; i < n; ++i) {
        d.check(cudaGraphLaunch(exec_, st), "graph.time");
        d.check(cudaEventRecord((*events)[i + 1], st), "graph.time");
      }
      int dev = device_;
      return await_fence(info.Env(), Device{dev}, std::make_shared<CudaFence>(d, "graph.time"), [events, dev](Napi::Env env) -> Napi::Value {
        CudaDeviceGuard g2(dev);
        Napi::Float64Array out = Napi::Float64Array::New(env, events->size() - 1);
        for (size_t i = 0; i + 1 < events->size(); ++i) {
          float ms = 0;
          cudaEventElapsedTime(&ms, (*events)[i], (*events)[i + 1]);
          out[i] = ms;
        }
        for (auto ev : *events) cudaEventDestroy(ev);
        return out;
      });
    } catch (const Error& e) {
      throw js_error(info.Env(), e);
    }
  }

  int device_ = 0;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
  std::shared_ptr<CaptureArena> arena_;
};
Napi::FunctionReference* GraphWrap::ctor = nullptr;

static int cuda_index(const OpArgs& a) {
  int d = a.device(0, "device");
  if (d < 0) a.fail_type("graphs are for cuda devices; on cpu run the ops directly");
  return d;
}

// captureBegin(device): ops enqueued on the device from now on are recorded, not run.
static Napi::Value capture_begin(const Napi::CallbackInfo& info) {
  OpArgs a(info, "graph", 1);
  int idx = cuda_index(a);
  CudaDevice& d = CudaDevice::get(idx, "graph");
  d.ensure_usable("graph");
  if (d.capturing()) a.fail_type("cuda:" + std::to_string(idx) + " is already capturing a graph (graphs do not nest)");
  CudaDeviceGuard g(idx);
  d.begin_capture(std::make_shared<CaptureArena>(idx));
  cudaError_t e = cudaStreamBeginCapture(reinterpret_cast<cudaStream_t>(d.stream()), cudaStreamCaptureModeRelaxed);
  if (e != cudaSuccess) d.end_capture();
  d.check(e, "graph");
  return info.Env().Undefined();
}

// captureEnd(device, keep: boolean) -> Graph (keep) | undefined (discard, e.g. after an exception).
static Napi::Value capture_end(const Napi::CallbackInfo& info) {
  OpArgs a(info, "graph", 2);
  int idx = cuda_index(a);
  bool keep = a.boolean(1, "keep");
  CudaDevice& d = CudaDevice::get(idx, "graph");
  if (!d.capturing()) a.fail_type("cuda:" + std::to_string(idx) + " is not capturing a graph");
  CudaDeviceGuard g(idx);
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(reinterpret_cast<cudaStream_t>(d.stream()), &graph);
  std::shared_ptr<CaptureArena> arena = d.end_capture();
  d.check(e, "graph");
  if (!keep) {
    cudaGraphDestroy(graph);
    return info.Env().Undefined();
  }
  cudaGraphExec_t exec = nullptr;
  e = cudaGraphInstantiate(&exec, graph, 0);
  if (e != cudaSuccess) cudaGraphDestroy(graph);
  d.check(e, "graph");
  Napi::Object o = GraphWrap::ctor->New({});
  GraphWrap::Unwrap(o)->set(idx, graph, exec, std::move(arena));
  return o;
}

// flushL2(device, bytes): overwrite a scratch buffer larger than L2, so the next kernel reads from HBM.
static Napi::Value flush_l2(const Napi::CallbackInfo& info) {
  OpArgs a(info, "flushL2", 2);
  int idx = cuda_index(a);
  size_t bytes = static_cast<size_t>(a.integer(1, "bytes", 1, int64_t(1) << 34));
  static std::vector<std::pair<void*, size_t>> scratch(64, {nullptr, 0});
  CudaDevice& d = CudaDevice::get(idx, "flushL2");
  CudaDeviceGuard g(idx);
  if (idx >= static_cast<int>(scratch.size())) a.fail_range("device index too large");
  auto& s = scratch[idx];
  if (s.second < bytes) {
    if (s.first) cudaFree(s.first);
    d.check(cudaMalloc(&s.first, bytes), "flushL2");
    s.second = bytes;
  }
  static unsigned char value = 0;
  d.check(cudaMemsetAsync(s.first, ++value, bytes, reinterpret_cast<cudaStream_t>(d.stream())), "flushL2");
  return info.Env().Undefined();
}

DSK_EXPORTS(graph_exports) {
  exports.Set("Graph", GraphWrap::init(env));
  def(env, exports, "captureBegin", capture_begin);
  def(env, exports, "captureEnd", capture_end);
  def(env, exports, "flushL2", flush_l2);
}

}  // namespace dsk::addon

#else  // no CUDA in this build: the entry points exist and say so.

namespace dsk::addon {
static Napi::Value no_cuda(const Napi::CallbackInfo& info) {
  throw Napi::TypeError::New(info.Env(), "graphs need a CUDA device; this build of deepseek-kernels has no CUDA support");
}
DSK_EXPORTS(graph_exports) {
  def(env, exports, "captureBegin", no_cuda);
  def(env, exports, "captureEnd", no_cuda);
  def(env, exports, "flushL2", no_cuda);
}
}  // namespace dsk::addon
#endif
