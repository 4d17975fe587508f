// The N-API surface: argument parsing, dispatch to the device queues, errors as JS errors.
//
// Every exported function parses its arguments with OpArgs (which throws a TypeError/RangeError naming
// the argument), then enqueues work with enqueue(): a closure on the CPU queue, or a launch on the
// device's stream. Nothing here waits for device work except the promise-returning reads.
#pragma once
#include <napi.h>

#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "../core/cuda_device.h"
#include "../core/runtime.h"
#include "../core/strided.h"

namespace dsk::addon {

// ---- exports registry: each source file adds its functions at load time ----
using ExportFn = void (*)(Napi::Env, Napi::Object);
struct ExportRegistrar { explicit ExportRegistrar(ExportFn f); };
std::vector<ExportFn>& export_fns();
#define DSK_EXPORTS(fn)                      \
  static void fn(Napi::Env, Napi::Object);   \
  static ::dsk::addon::ExportRegistrar fn##_registrar(fn); \
  static void fn(Napi::Env env, Napi::Object exports)

using NativeFn = Napi::Value (*)(const Napi::CallbackInfo&);
// Exports `fn` under `name`, turning dsk::Error into the matching JS error.
void def(Napi::Env env, Napi::Object target, const char* name, NativeFn fn);

// The JS error for a native error (TypeError, RangeError, DskCudaError, DskError).
Napi::Error js_error(Napi::Env env, const Error& e);

// ---- storage ----
class StorageWrap : public Napi::ObjectWrap<StorageWrap> {
 public:
  static Napi::Function init(Napi::Env env);
  static Napi::FunctionReference* ctor;
  explicit StorageWrap(const Napi::CallbackInfo& info);
  ~StorageWrap() override;
  const BufferPtr& buffer() const { return buf_; }
  Device device() const { return device_; }

 private:
  Napi::Value release(const Napi::CallbackInfo& info);
  Napi::Value nbytes(const Napi::CallbackInfo& info);
  Napi::Value device_id(const Napi::CallbackInfo& info);
  Napi::Value released(const Napi::CallbackInfo& info);
  void drop();
  BufferPtr buf_;
  Device device_;
  int64_t reported_ = 0;
};

// A tensor argument: the JS Tensor's storage, element offset, shape, strides and dtype.
struct TensorArg {
  BufferPtr buf;
  Device device;
  DType dtype = DType::F32;
  int64_t offset = 0;  // elements
  std::vector<int64_t> shape, strides;
  const char* name = "";

  int ndim() const { return static_cast<int>(shape.size()); }
  int64_t numel() const { int64_t n = 1; for (auto s : shape) n *= s; return n; }
  int64_t size(int d) const { return shape[d < 0 ? d + ndim() : d]; }
  bool contiguous() const;
  void* data() const { return static_cast<char*>(buf->data()) + offset * dtype_size(dtype); }
  template <class T> T* ptr() const { return reinterpret_cast<T*>(data()); }
  StridedView view() const;
};

class OpArgs {
 public:
  // Checks the argument count (min..max) and remembers the op name for messages.
  OpArgs(const Napi::CallbackInfo& info, const char* op, size_t min_args, size_t max_args = 0);
  const char* op() const { return op_; }
  Napi::Env env() const { return info_.Env(); }
  const Napi::CallbackInfo& info() const { return info_; }

  TensorArg tensor(size_t i, const char* name) const;
  std::optional<TensorArg> optional_tensor(size_t i, const char* name) const;  // null/undefined -> none
  double number(size_t i, const char* name) const;                              // finite
  int64_t integer(size_t i, const char* name, int64_t lo, int64_t hi) const;    // in [lo, hi]
  bool boolean(size_t i, const char* name) const;
  std::string string(size_t i, const char* name) const;
  StorageWrap* storage(size_t i, const char* name) const;
  int device(size_t i, const char* name) const;  // -1 = cpu, N = cuda:N

  // ---- checks that throw, naming the argument ----
  void dtype_in(const TensorArg& t, std::initializer_list<DType> allowed) const;
  void ndim_is(const TensorArg& t, int n) const;
  void dim_is(const TensorArg& t, int d, int64_t expect, const char* what = nullptr) const;
  void contiguous(const TensorArg& t) const;
  Device same_device(std::initializer_list<const TensorArg*> ts) const;
  [[noreturn]] void fail_range(const std::string& msg) const { throw_range(op_, msg); }
  [[noreturn]] void fail_type(const std::string& msg) const { throw_type(op_, msg); }

 private:
  const Napi::CallbackInfo& info_;
  const char* op_;
};

std::string shape_str(const std::vector<int64_t>& s);

// ---- dispatch ----
DiagRecord* cpu_diag();

// Enqueue on the device's queue: cpu_fn() runs on the CPU worker; cuda_fn(CudaDevice&) is called now
// on this thread to launch on the device's stream. cuda_fn must be a generic lambda ([=](auto& dev)),
// so a CPU-only build never instantiates it.
template <class CpuFn, class CudaFn>
void enqueue(const char* op, Device device, CpuFn&& cpu_fn, CudaFn&& cuda_fn) {
  if (device.is_cpu()) {
    CpuQueue::get().push(std::function<void()>(std::forward<CpuFn>(cpu_fn)));
    return;
  }
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(device.index, op);
  d.ensure_usable(op);
  CudaDeviceGuard g(device.index);
  cuda_fn(d);
  d.check_launch(op);
#else
  (void)cuda_fn;
  throw_type(op, "this build has no CUDA support");
#endif
}

// A promise resolved off the JS thread once `fence` has passed; `finish` then builds the value on the
// JS thread. Errors recorded by kernels before the fence reject it.
Napi::Promise await_fence(Napi::Env env, Device device, std::shared_ptr<Fence> fence,
                          std::function<Napi::Value(Napi::Env)> finish, std::function<void()> cleanup = nullptr);
std::shared_ptr<Fence> make_fence(Device device, const char* op);

}  // namespace dsk::addon
