// Devices, data movement between JS and devices, and synchronization.
#include <cstring>

#include "../cuda/tensor_ops.h"
#include "addon.h"

#if DSK_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace dsk::addon {

static Napi::Value build_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cuda", Napi::Boolean::New(env, DSK_WITH_CUDA != 0));
#if DSK_WITH_CUDA
  o.Set("cudaRuntimeVersion", Napi::Number::New(env, CUDART_VERSION));
#endif
  o.Set("cpuThreads", Napi::Number::New(env, cpu_threads()));
  return o;
}

static Napi::Value cuda_status(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
#if DSK_WITH_CUDA
  int n = CudaDevice::count();
  o.Set("count", Napi::Number::New(env, n));
  o.Set("reason", Napi::String::New(env, n ? "" : CudaDevice::unavailable_reason()));
  int drv = 0;
  cudaDriverGetVersion(&drv);
  o.Set("driverVersion", Napi::Number::New(env, drv));
#else
  o.Set("count", Napi::Number::New(env, 0));
  o.Set("reason", Napi::String::New(env, "this build of deepseek-kernels has no CUDA support"));
  o.Set("driverVersion", Napi::Number::New(env, 0));
#endif
  return o;
}

static Napi::Value cuda_device_info(const Napi::CallbackInfo& info) {
  OpArgs a(info, "deviceInfo", 1);
  int idx = a.device(0, "device");
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
#if DSK_WITH_CUDA
  if (idx >= 0) {
    const CudaDeviceInfo& p = CudaDevice::get(idx, "deviceInfo").info();
    o.Set("name", p.name);
    o.Set("smCount", p.sm_count);
    o.Set("computeCapability", std::to_string(p.cc_major) + "." + std::to_string(p.cc_minor));
    o.Set("totalMemory", static_cast<double>(p.total_memory));
    o.Set("l2Bytes", static_cast<double>(p.l2_bytes));
    o.Set("sharedMemoryPerBlock", static_cast<double>(p.smem_per_block_optin));
    o.Set("clockKHz", p.clock_khz);
    o.Set("memoryClockKHz", p.mem_clock_khz);
    o.Set("memoryBusWidth", p.bus_width);
  }
#endif
  (void)idx;
  return o;
}

static Napi::Value memory_stats(const Napi::CallbackInfo& info) {
  OpArgs a(info, "memoryStats", 1);
  int idx = a.device(0, "device");
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  Buffer::Census c = Buffer::census(Device{idx});
  o.Set("liveBuffers", static_cast<double>(c.count));
  o.Set("liveBytes", static_cast<double>(c.bytes));
  if (idx < 0) return o;
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(idx, "memoryStats");
  o.Set("used", static_cast<double>(d.pool_used()));
  o.Set("reserved", static_cast<double>(d.pool_reserved()));
  size_t free_b = 0, total_b = 0;
  CudaDeviceGuard g(idx);
  cudaMemGetInfo(&free_b, &total_b);
  o.Set("free", static_cast<double>(free_b));
  o.Set("total", static_cast<double>(total_b));
#endif
  return o;
}

static void check_range(const OpArgs& a, StorageWrap* s, int64_t off, int64_t n) {
  if (off + n > static_cast<int64_t>(s->buffer()->nbytes()))
    a.fail_range("bytes [" + std::to_string(off) + ", " + std::to_string(off + n) + ") reach outside the storage of " +
                 std::to_string(s->buffer()->nbytes()) + " bytes");
}

// write(storage, byteOffset, data: ArrayBufferView): the bytes are copied before this returns.
static Napi::Value write(const Napi::CallbackInfo& info) {
  OpArgs a(info, "write", 3);
  StorageWrap* s = a.storage(0, "storage");
  int64_t off = a.integer(1, "byteOffset", 0, int64_t(1) << 50);
  if (!info[2].IsTypedArray() && !info[2].IsDataView() && !info[2].IsArrayBuffer())
    a.fail_type("data must be a TypedArray, DataView or ArrayBuffer");
  const uint8_t* src;
  size_t n;
  if (info[2].IsArrayBuffer()) {
    auto ab = info[2].As<Napi::ArrayBuffer>();
    src = static_cast<const uint8_t*>(ab.Data());
    n = ab.ByteLength();
  } else if (info[2].IsTypedArray()) {
    auto ta = info[2].As<Napi::TypedArray>();
    src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    n = ta.ByteLength();
  } else {
    auto dv = info[2].As<Napi::DataView>();
    src = static_cast<const uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
    n = dv.ByteLength();
  }
  check_range(a, s, off, static_cast<int64_t>(n));
  if (n == 0) return info.Env().Undefined();
  BufferPtr buf = s->buffer();
  if (buf->device().is_cpu()) {
    auto copy = std::make_shared<std::vector<uint8_t>>(src, src + n);
    CpuQueue::get().push([buf, copy, off] { std::memcpy(static_cast<char*>(buf->data()) + off, copy->data(), copy->size()); });
    return info.Env().Undefined();
  }
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(buf->device().index, "write");
  d.ensure_usable("write");
  d.ensure_not_capturing("write");
  CudaDeviceGuard g(d.index());
  void* pinned = d.pinned_acquire(n);
  std::memcpy(pinned, src, n);
  auto st = reinterpret_cast<cudaStream_t>(d.stream());
  d.check(cudaMemcpyAsync(static_cast<char*>(buf->data()) + off, pinned, n, cudaMemcpyHostToDevice, st), "write");
  struct Ret { CudaDevice* d; void* p; size_t n; };
  d.check(cudaLaunchHostFunc(st, [](void* u) { auto* r = static_cast<Ret*>(u); r->d->pinned_release(r->p, r->n); delete r; },
                             new Ret{&d, pinned, n}), "write");
#endif
  return info.Env().Undefined();
}

// read(storage, byteOffset, nbytes) -> Promise<ArrayBuffer>, ordered after all work queued so far.
static Napi::Value read(const Napi::CallbackInfo& info) {
  OpArgs a(info, "read", 3);
  StorageWrap* s = a.storage(0, "storage");
  int64_t off = a.integer(1, "byteOffset", 0, int64_t(1) << 50);
  int64_t n = a.integer(2, "nbytes", 0, int64_t(1) << 50);
  check_range(a, s, off, n);
  BufferPtr buf = s->buffer();
  Napi::Env env = info.Env();
  if (buf->device().is_cpu()) {
    auto out = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(n));
    CpuQueue::get().push([buf, out, off] { if (!out->empty()) std::memcpy(out->data(), static_cast<char*>(buf->data()) + off, out->size()); });
    return await_fence(env, buf->device(), CpuQueue::get().fence(), [out](Napi::Env e) -> Napi::Value {
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(e, out->size());
      if (!out->empty()) std::memcpy(ab.Data(), out->data(), out->size());
      return ab;
    });
  }
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(buf->device().index, "read");
  d.ensure_usable("read");
  d.ensure_not_capturing("read");
  CudaDeviceGuard g(d.index());
  void* pinned = d.pinned_acquire(static_cast<size_t>(n));
  if (n) d.check(cudaMemcpyAsync(pinned, static_cast<char*>(buf->data()) + off, n, cudaMemcpyDeviceToHost,
                                 reinterpret_cast<cudaStream_t>(d.stream())), "read");
  auto fence = std::make_shared<CudaFence>(d, "read");
  CudaDevice* dp = &d;
  return await_fence(
      env, buf->device(), fence,
      [pinned, n](Napi::Env e) -> Napi::Value {
        Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(e, static_cast<size_t>(n));
        if (n) std::memcpy(ab.Data(), pinned, static_cast<size_t>(n));
        return ab;
      },
      [dp, pinned, n] { dp->pinned_release(pinned, static_cast<size_t>(n)); });
#else
  a.fail_type("no CUDA support");
#endif
}

// synchronize(device) -> Promise<void>: resolves when all work queued on the device so far is done,
// rejecting with the first error a kernel recorded.
static Napi::Value synchronize(const Napi::CallbackInfo& info) {
  OpArgs a(info, "synchronize", 1);
  Device dev{a.device(0, "device")};
  return await_fence(info.Env(), dev, make_fence(dev, "synchronize"), nullptr);
}

#if DSK_WITH_CUDA
namespace {
struct HostCopy {
  std::shared_ptr<Fence> cpu_fence;
  BufferPtr keep;
  void* dst;
  const void* src;
  size_t n;
  CudaDevice* dev = nullptr;
  void* pinned = nullptr;
};
}  // namespace
#endif

// transfer(dst, dstByteOffset, src, srcByteOffset, nbytes): raw copy between storages on different
// devices, ordered after the work queued on both.
static Napi::Value transfer(const Napi::CallbackInfo& info) {
  OpArgs a(info, "transfer", 5);
  StorageWrap* ds = a.storage(0, "dst");
  int64_t doff = a.integer(1, "dstByteOffset", 0, int64_t(1) << 50);
  StorageWrap* ss = a.storage(2, "src");
  int64_t soff = a.integer(3, "srcByteOffset", 0, int64_t(1) << 50);
  int64_t n = a.integer(4, "nbytes", 0, int64_t(1) << 50);
  check_range(a, ds, doff, n);
  check_range(a, ss, soff, n);
  BufferPtr dst = ds->buffer(), src = ss->buffer();
  if (n == 0) return info.Env().Undefined();
  Device dd = dst->device(), sd = src->device();
#if DSK_WITH_CUDA
  if (dd != sd)  // a device-to-device copy on one GPU is a graph node like any kernel; the others are not
    for (Device x : {dd, sd})
      if (!x.is_cpu()) CudaDevice::get(x.index, "transfer").ensure_not_capturing("transfer");
#endif
  char* dptr = static_cast<char*>(dst->data()) + doff;
  char* sptr = static_cast<char*>(src->data()) + soff;
  if (dd.is_cpu() && sd.is_cpu()) {
    CpuQueue::get().push([dst, src, dptr, sptr, n] { std::memmove(dptr, sptr, n); });
    return info.Env().Undefined();
  }
#if DSK_WITH_CUDA
  if (!sd.is_cpu() && !dd.is_cpu()) {
    CudaDevice& s = CudaDevice::get(sd.index, "transfer");
    CudaDevice& d = CudaDevice::get(dd.index, "transfer");
    s.ensure_usable("transfer");
    d.ensure_usable("transfer");
    auto ss_ = reinterpret_cast<cudaStream_t>(s.stream());
    auto dst_ = reinterpret_cast<cudaStream_t>(d.stream());
    if (sd == dd) {
      CudaDeviceGuard g(sd.index);
      cuda::copy_bytes(dptr, sptr, static_cast<size_t>(n), s.stream());
      s.check_launch("transfer");
      return info.Env().Undefined();
    }
    cudaEvent_t before, after;
    {
      CudaDeviceGuard g(dd.index);
      d.check(cudaEventCreateWithFlags(&before, cudaEventDisableTiming), "transfer");
      d.check(cudaEventRecord(before, dst_), "transfer");
    }
    {
      CudaDeviceGuard g(sd.index);
      s.check(cudaStreamWaitEvent(ss_, before, 0), "transfer");
      s.check(cudaMemcpyPeerAsync(dptr, dd.index, sptr, sd.index, n, ss_), "transfer");
      s.check(cudaEventCreateWithFlags(&after, cudaEventDisableTiming), "transfer");
      s.check(cudaEventRecord(after, ss_), "transfer");
    }
    {
      CudaDeviceGuard g(dd.index);
      d.check(cudaStreamWaitEvent(dst_, after, 0), "transfer");
    }
    cudaEventDestroy(before);
    cudaEventDestroy(after);
    return info.Env().Undefined();
  }
  if (sd.is_cpu()) {
    // cpu -> cuda: a host function on the stream waits for the CPU queue, stages into pinned memory,
    // then the copy engine moves it. Waits only point at earlier work, so no cycle can form.
    CudaDevice& d = CudaDevice::get(dd.index, "transfer");
    d.ensure_usable("transfer");
    CudaDeviceGuard g(dd.index);
    auto st = reinterpret_cast<cudaStream_t>(d.stream());
    auto* hc = new HostCopy{CpuQueue::get().fence(), src, nullptr, sptr, static_cast<size_t>(n), &d, d.pinned_acquire(n)};
    d.check(cudaLaunchHostFunc(st, [](void* u) {
      auto* h = static_cast<HostCopy*>(u);
      h->cpu_fence->wait();
      std::memcpy(h->pinned, h->src, h->n);
    }, hc), "transfer");
    d.check(cudaMemcpyAsync(dptr, hc->pinned, n, cudaMemcpyHostToDevice, st), "transfer");
    d.check(cudaLaunchHostFunc(st, [](void* u) {
      auto* h = static_cast<HostCopy*>(u);
      h->dev->pinned_release(h->pinned, h->n);
      delete h;
    }, hc), "transfer");
    return info.Env().Undefined();
  }
  // cuda -> cpu: copy into pinned memory on the stream; the CPU queue waits for it, then copies out.
  CudaDevice& s = CudaDevice::get(sd.index, "transfer");
  s.ensure_usable("transfer");
  CudaDeviceGuard g(sd.index);
  void* pinned = s.pinned_acquire(n);
  s.check(cudaMemcpyAsync(pinned, sptr, n, cudaMemcpyDeviceToHost, reinterpret_cast<cudaStream_t>(s.stream())), "transfer");
  auto fence = std::make_shared<CudaFence>(s, "transfer");
  CudaDevice* sp = &s;
  CpuQueue::get().push([fence, dst, dptr, pinned, n, sp] {
    fence->wait();
    std::memcpy(dptr, pinned, n);
    sp->pinned_release(pinned, n);
  });
  return info.Env().Undefined();
#else
  a.fail_type("no CUDA support");
#endif
}

// V8's count of externally allocated bytes (what our storages report through AdjustExternalMemory).
static Napi::Value external_memory(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(Napi::MemoryManagement::AdjustExternalMemory(info.Env(), 0)));
}

DSK_EXPORTS(runtime_exports) {
  def(env, exports, "externalMemory", external_memory);
  def(env, exports, "buildInfo", build_info);
  def(env, exports, "cudaStatus", cuda_status);
  def(env, exports, "deviceInfo", cuda_device_info);
  def(env, exports, "memoryStats", memory_stats);
  def(env, exports, "write", write);
  def(env, exports, "read", read);
  def(env, exports, "transfer", transfer);
  def(env, exports, "synchronize", synchronize);
}

}  // namespace dsk::addon
