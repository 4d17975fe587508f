#include "addon.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <sstream>

namespace dsk::addon {

std::vector<ExportFn>& export_fns() { static std::vector<ExportFn> v; return v; }
ExportRegistrar::ExportRegistrar(ExportFn f) { export_fns().push_back(f); }

// Constructors of the JS error classes, handed over by lib/errors.ts at load time.
static Napi::FunctionReference* g_cuda_error = nullptr;
static Napi::FunctionReference* g_dsk_error = nullptr;

static Napi::Value set_error_classes(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsFunction())
    throw Napi::TypeError::New(info.Env(), "setErrorClasses(DskError, DskCudaError) expects two constructors");
  delete g_dsk_error;
  delete g_cuda_error;
  g_dsk_error = new Napi::FunctionReference(Napi::Persistent(info[0].As<Napi::Function>()));
  g_cuda_error = new Napi::FunctionReference(Napi::Persistent(info[1].As<Napi::Function>()));
  return info.Env().Undefined();
}

Napi::Error js_error(Napi::Env env, const Error& e) {
  switch (e.kind) {
    case ErrorKind::Type: return Napi::TypeError::New(env, e.what());
    case ErrorKind::Range: return Napi::RangeError::New(env, e.what());
    case ErrorKind::Cuda:
      if (g_cuda_error) {
        Napi::Object o = g_cuda_error->New({Napi::String::New(env, e.what()), Napi::String::New(env, e.op),
                                            Napi::String::New(env, e.cuda_name)});
        return Napi::Error(env, o);
      }
      return Napi::Error::New(env, e.what());
    default:
      if (g_dsk_error) return Napi::Error(env, g_dsk_error->New({Napi::String::New(env, e.what())}));
      return Napi::Error::New(env, e.what());
  }
}

void def(Napi::Env env, Napi::Object target, const char* name, NativeFn fn) {
  target.Set(name, Napi::Function::New(
                       env,
                       [fn](const Napi::CallbackInfo& info) -> Napi::Value {
                         try {
                           return fn(info);
                         } catch (const Error& e) {
                           throw js_error(info.Env(), e);
                         } catch (const std::bad_alloc&) {
                           throw Napi::RangeError::New(info.Env(), "out of host memory");
                         }
                       },
                       name));
}

DSK_EXPORTS(core_exports) { def(env, exports, "setErrorClasses", set_error_classes); }

// ---- StorageWrap ----

// What V8 is told about our bytes. Storages report them (AdjustExternalMemory) so that GC pressure
// reflects device memory and forgotten tensors get collected. But V8 starts GC work (a marking step or a
// full collection) whenever its external count rises 64 MB above the count at its last GC, so telling it
// every device allocation made an eager prefill, whose activations are hundreds of MB allocated and
// disposed op by op, run the GC between almost every two ops (bench/NOTES.md, "Model runner": ~70% of a
// 4096-token prefill on the H100). Device bytes therefore reach V8 with a slack: the count V8 sees moves
// to the live device bytes once they differ from it by max(256 MiB, 1/8 of it) or more. Host bytes are
// reported exactly. DSK_V8_DEVICE_BYTES=exact restores per-allocation reporting (for comparisons).
namespace {
struct DeviceBytes {
  int64_t live = 0;  // device bytes of this JS thread's live storages
  int64_t told = 0;  // what V8 was told of them
};
thread_local DeviceBytes t_device_bytes;  // one JS thread per environment (workers have their own)

bool exact_device_bytes() {
  static const bool on = [] { const char* v = std::getenv("DSK_V8_DEVICE_BYTES"); return v && std::string(v) == "exact"; }();
  return on;
}

void report_bytes(Napi::Env env, bool device, int64_t delta) {
  if (!device || exact_device_bytes()) {
    Napi::MemoryManagement::AdjustExternalMemory(env, delta);
    return;
  }
  DeviceBytes& d = t_device_bytes;
  d.live += delta;
  const int64_t slack = std::max<int64_t>(int64_t(256) << 20, d.told / 8);
  if (d.live - d.told >= slack || d.told - d.live >= slack) {
    Napi::MemoryManagement::AdjustExternalMemory(env, d.live - d.told);
    d.told = d.live;
  }
}
}  // namespace

Napi::FunctionReference* StorageWrap::ctor = nullptr;

Napi::Function StorageWrap::init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "Storage",
                                 {InstanceMethod<&StorageWrap::release>("release"),
                                  InstanceAccessor<&StorageWrap::nbytes>("nbytes"),
                                  InstanceAccessor<&StorageWrap::device_id>("device"),
                                  InstanceAccessor<&StorageWrap::released>("released")});
  ctor = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

StorageWrap::StorageWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StorageWrap>(info) {
  try {
    OpArgs a(info, "Storage", 2, 2);
    device_.index = a.device(0, "device");
    int64_t n = a.integer(1, "nbytes", 0, int64_t(1) << 50);
    buf_ = Buffer::allocate(device_, static_cast<size_t>(n), "allocate");
    reported_ = n;
    report_bytes(info.Env(), !device_.is_cpu(), reported_);
  } catch (const Error& e) {
    throw js_error(info.Env(), e);
  }
}

void StorageWrap::drop() {
  if (!buf_) return;
  buf_.reset();
  if (reported_) report_bytes(Env(), !device_.is_cpu(), -reported_);
  reported_ = 0;
}

StorageWrap::~StorageWrap() { drop(); }
Napi::Value StorageWrap::release(const Napi::CallbackInfo& info) { drop(); return info.Env().Undefined(); }
Napi::Value StorageWrap::nbytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), buf_ ? static_cast<double>(buf_->nbytes()) : 0.0);
}
Napi::Value StorageWrap::device_id(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), device_.index); }
Napi::Value StorageWrap::released(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !buf_); }

DSK_EXPORTS(storage_exports) { exports.Set("Storage", StorageWrap::init(env)); }

// ---- TensorArg / OpArgs ----

bool TensorArg::contiguous() const {
  int64_t expect = 1;
  for (int d = ndim() - 1; d >= 0; --d) {
    if (shape[d] != 1 && strides[d] != expect) return false;
    expect *= shape[d];
  }
  return true;
}

StridedView TensorArg::view() const {
  StridedView v;
  v.data = data();
  v.dtype = dtype;
  v.ndim = ndim();
  for (int d = 0; d < ndim(); ++d) { v.shape[d] = shape[d]; v.strides[d] = strides[d]; }
  return v;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}

OpArgs::OpArgs(const Napi::CallbackInfo& info, const char* op, size_t min_args, size_t max_args)
    : info_(info), op_(op) {
  if (max_args == 0) max_args = min_args;
  if (info.Length() < min_args || info.Length() > max_args)
    throw_type(op, "expected " + (min_args == max_args ? std::to_string(min_args) : std::to_string(min_args) + " to " + std::to_string(max_args)) +
                       " arguments, got " + std::to_string(info.Length()));
}

static DType parse_dtype(const char* op, const char* name, const std::string& s) {
  static const char* names[] = {"f32", "bf16", "f16", "fp8e4m3", "i32", "i64", "u8"};
  for (int i = 0; i < kNumDTypes; ++i) if (s == names[i]) return static_cast<DType>(i);
  throw_type(op, std::string(name) + " has unknown dtype '" + s + "'");
}

static std::vector<int64_t> int_array(const char* op, const std::string& what, Napi::Value v) {
  if (!v.IsArray()) throw_type(op, what + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > kMaxDims) throw_range(op, what + " has " + std::to_string(a.Length()) + " dims; at most 8 are supported");
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value x = a.Get(i);
    double d = x.IsNumber() ? x.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740991.0)
      throw_type(op, what + "[" + std::to_string(i) + "] must be an integer");
    out[i] = static_cast<int64_t>(d);
  }
  return out;
}

TensorArg OpArgs::tensor(size_t i, const char* name) const {
  Napi::Value v = info_[i];
  if (!v.IsObject()) throw_type(op_, std::string(name) + " must be a Tensor");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value sv = o.Get("storage");
  if (sv.IsNull()) throw_type(op_, std::string(name) + " has been disposed");
  if (!sv.IsObject() || !sv.As<Napi::Object>().InstanceOf(StorageWrap::ctor->Value()))
    throw_type(op_, std::string(name) + " must be a Tensor");
  StorageWrap* s = StorageWrap::Unwrap(sv.As<Napi::Object>());
  if (!s->buffer()) throw_type(op_, std::string(name) + " has been disposed");
  TensorArg t;
  t.name = name;
  t.buf = s->buffer();
  t.device = s->device();
#if DSK_WITH_CUDA
  if (!t.device.is_cpu()) CudaDevice::get(t.device.index, op_).note_use(t.buf);
#endif
  Napi::Value dt = o.Get("dtype");
  if (!dt.IsString()) throw_type(op_, std::string(name) + " must be a Tensor");
  t.dtype = parse_dtype(op_, name, dt.As<Napi::String>().Utf8Value());
  t.shape = int_array(op_, std::string(name) + ".shape", o.Get("shape"));
  t.strides = int_array(op_, std::string(name) + ".strides", o.Get("strides"));
  Napi::Value off = o.Get("offset");
  double od = off.IsNumber() ? off.As<Napi::Number>().DoubleValue() : -1;
  if (od < 0 || od != std::floor(od)) throw_type(op_, std::string(name) + ".offset must be a non-negative integer");
  t.offset = static_cast<int64_t>(od);
  if (t.strides.size() != t.shape.size()) throw_range(op_, std::string(name) + ": shape and strides differ in length");
  // Memory safety: every element the view can address lies inside the buffer.
  int64_t lo = t.offset, hi = t.offset;
  for (size_t d = 0; d < t.shape.size(); ++d) {
    if (t.shape[d] < 0) throw_range(op_, std::string(name) + ".shape has a negative size");
    if (t.shape[d] == 0) { lo = hi = t.offset; break; }
    int64_t span = (t.shape[d] - 1) * t.strides[d];
    (span < 0 ? lo : hi) += span;
  }
  int64_t cap = static_cast<int64_t>(t.buf->nbytes()) / dtype_size(t.dtype);
  if (t.numel() > 0 && (lo < 0 || hi >= cap))
    throw_range(op_, std::string(name) + ": view " + shape_str(t.shape) + " at offset " + std::to_string(t.offset) +
                         " reaches outside its storage of " + std::to_string(cap) + " elements");
  return t;
}

std::optional<TensorArg> OpArgs::optional_tensor(size_t i, const char* name) const {
  if (i >= info_.Length() || info_[i].IsNull() || info_[i].IsUndefined()) return std::nullopt;
  return tensor(i, name);
}

double OpArgs::number(size_t i, const char* name) const {
  Napi::Value v = info_[i];
  if (!v.IsNumber()) throw_type(op_, std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw_range(op_, std::string(name) + " must be finite, got " + std::to_string(d));
  return d;
}

int64_t OpArgs::integer(size_t i, const char* name, int64_t lo, int64_t hi) const {
  Napi::Value v = info_[i];
  if (!v.IsNumber()) throw_type(op_, std::string(name) + " must be an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d)) throw_type(op_, std::string(name) + " must be an integer");
  if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
    throw_range(op_, std::string(name) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                         std::to_string(static_cast<long long>(d)));
  return static_cast<int64_t>(d);
}

bool OpArgs::boolean(size_t i, const char* name) const {
  if (!info_[i].IsBoolean()) throw_type(op_, std::string(name) + " must be a boolean");
  return info_[i].As<Napi::Boolean>().Value();
}

std::string OpArgs::string(size_t i, const char* name) const {
  if (!info_[i].IsString()) throw_type(op_, std::string(name) + " must be a string");
  return info_[i].As<Napi::String>().Utf8Value();
}

StorageWrap* OpArgs::storage(size_t i, const char* name) const {
  Napi::Value v = info_[i];
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(StorageWrap::ctor->Value()))
    throw_type(op_, std::string(name) + " must be a Storage");
  StorageWrap* s = StorageWrap::Unwrap(v.As<Napi::Object>());
  if (!s->buffer()) throw_type(op_, std::string(name) + " has been disposed");
  return s;
}

int OpArgs::device(size_t i, const char* name) const {
  int d = static_cast<int>(integer(i, name, -1, 1 << 20));
  if (d >= 0) {
#if DSK_WITH_CUDA
    int n = CudaDevice::count();
    if (d >= n)
      throw_range(op_, std::string(name) + ": cuda:" + std::to_string(d) + " does not exist (" +
                           (n ? std::to_string(n) + " GPU(s) present" : "no GPU: " + CudaDevice::unavailable_reason()) + ")");
#else
    throw_range(op_, std::string(name) + ": cuda:" + std::to_string(d) + " is not available: this build has no CUDA support");
#endif
  }
  return d;
}

void OpArgs::dtype_in(const TensorArg& t, std::initializer_list<DType> allowed) const {
  for (DType d : allowed) if (d == t.dtype) return;
  std::string list;
  for (DType d : allowed) list += (list.empty() ? "" : ", ") + std::string(dtype_name(d));
  throw_type(op_, std::string(t.name) + " must have dtype " + list + ", got " + dtype_name(t.dtype));
}

void OpArgs::ndim_is(const TensorArg& t, int n) const {
  if (t.ndim() != n)
    throw_range(op_, std::string(t.name) + " must have " + std::to_string(n) + " dims, got shape " + shape_str(t.shape));
}

void OpArgs::dim_is(const TensorArg& t, int d, int64_t expect, const char* what) const {
  if (t.size(d) != expect)
    throw_range(op_, std::string(t.name) + ".shape[" + std::to_string(d < 0 ? d + t.ndim() : d) + "] must be " +
                         std::to_string(expect) + (what ? std::string(" (") + what + ")" : "") + ", got shape " + shape_str(t.shape));
}

void OpArgs::contiguous(const TensorArg& t) const {
  if (!t.contiguous()) throw_range(op_, std::string(t.name) + " must be contiguous (call .contiguous())");
}

Device OpArgs::same_device(std::initializer_list<const TensorArg*> ts) const {
  const TensorArg* first = nullptr;
  for (const TensorArg* t : ts) {
    if (!t) continue;
    if (!first) first = t;
    else if (t->device != first->device)
      throw_type(op_, std::string(t->name) + " is on " + t->device.name() + " but " + first->name + " is on " +
                          first->device.name() + "; move them to one device with .to()");
  }
  return first ? first->device : Device{};
}

DiagRecord* cpu_diag() { return CpuQueue::get().diag(); }

std::shared_ptr<Fence> make_fence(Device device, const char* op) {
  if (device.is_cpu()) return CpuQueue::get().fence();
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(device.index, op);
  d.ensure_usable(op);
  d.ensure_not_capturing(op);
  return std::make_shared<CudaFence>(d, op);
#else
  throw_type(op, "this build has no CUDA support");
#endif
}

namespace {
class FenceWorker : public Napi::AsyncWorker {
 public:
  FenceWorker(Napi::Env env, Device dev, std::shared_ptr<Fence> fence, std::function<Napi::Value(Napi::Env)> finish,
              std::function<void()> cleanup)
      : Napi::AsyncWorker(env, "dsk.read"), deferred_(Napi::Promise::Deferred::New(env)), dev_(dev),
        fence_(std::move(fence)), finish_(std::move(finish)), cleanup_(std::move(cleanup)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      fence_->wait();
      if (dev_.is_cpu()) {
        err_ = CpuQueue::get().take_error();
      } else {
#if DSK_WITH_CUDA
        err_ = take_diag_error(CudaDevice::get(dev_.index, "read").diag_host());
#endif
      }
    } catch (const Error& e) {
      err_ = e;
    }
    if (err_) SetError(err_->what());
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      Napi::Value v = finish_ ? finish_(env) : env.Undefined();
      if (cleanup_) cleanup_();
      deferred_.Resolve(v);
    } catch (const Error& e) {
      deferred_.Reject(js_error(env, e).Value());
    }
  }
  void OnError(const Napi::Error&) override {
    if (cleanup_ && err_ && err_->kind != ErrorKind::Cuda) cleanup_();
    deferred_.Reject(js_error(Env(), *err_).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Device dev_;
  std::shared_ptr<Fence> fence_;
  std::function<Napi::Value(Napi::Env)> finish_;
  std::function<void()> cleanup_;
  std::optional<Error> err_;
};
}  // namespace

Napi::Promise await_fence(Napi::Env env, Device device, std::shared_ptr<Fence> fence,
                          std::function<Napi::Value(Napi::Env)> finish, std::function<void()> cleanup) {
  auto* w = new FenceWorker(env, device, std::move(fence), std::move(finish), std::move(cleanup));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace dsk::addon

static Napi::Object init_module(Napi::Env env, Napi::Object exports) {
  for (auto fn : dsk::addon::export_fns()) fn(env, exports);
  return exports;
}
NODE_API_MODULE(deepseek_kernels, init_module)
