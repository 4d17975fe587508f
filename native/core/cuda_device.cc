#include "cuda_device.h"

#if DSK_WITH_CUDA
#include <algorithm>
#include <cstdlib>
#include <vector>

namespace dsk {

static bool sticky(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress: case cudaErrorLaunchFailure: case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction: case cudaErrorMisalignedAddress: case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc: case cudaErrorAssert: case cudaErrorLaunchTimeout: case cudaErrorECCUncorrectable:
    case cudaErrorUnknown:
      return true;
    default:
      return false;
  }
}

static bool sync_debug() {
  static const bool on = [] { const char* v = std::getenv("DSK_SYNC_DEBUG"); return v && v[0] == '1'; }();
  return on;
}

namespace {
struct Registry {
  std::mutex mu;
  int count = -1;
  std::string reason;
  std::vector<CudaDevice*> devices;
};
Registry& registry() { static Registry* r = new Registry(); return *r; }

void probe(Registry& r) {
  if (r.count >= 0) return;
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    r.count = 0;
    int drv = 0;
    cudaDriverGetVersion(&drv);
    if (drv == 0) r.reason = "no NVIDIA driver found (libcuda.so.1 is not loadable)";
    else r.reason = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e) + " (driver " + std::to_string(drv / 1000) + "." + std::to_string(drv % 1000 / 10) + ")";
    cudaGetLastError();
  } else {
    r.count = n;
    if (n == 0) r.reason = "the CUDA driver reports no GPU";
  }
  r.devices.assign(r.count, nullptr);
}
}  // namespace

int CudaDevice::count() {
  Registry& r = registry();
  std::lock_guard<std::mutex> l(r.mu);
  probe(r);
  return r.count;
}

const std::string& CudaDevice::unavailable_reason() {
  Registry& r = registry();
  std::lock_guard<std::mutex> l(r.mu);
  probe(r);
  return r.reason;
}

CudaDevice& CudaDevice::get(int index, const char* op) {
  Registry& r = registry();
  std::lock_guard<std::mutex> l(r.mu);
  probe(r);
  if (index < 0 || index >= r.count)
    throw_range(op, "device cuda:" + std::to_string(index) + " does not exist (" +
                        (r.count ? std::to_string(r.count) + " GPU(s) present" : "no GPU: " + r.reason) + ")");
  if (!r.devices[index]) r.devices[index] = new CudaDevice(index);  // lives until exit
  return *r.devices[index];
}

CudaDevice::CudaDevice(int index) : index_(index) {
  CudaDeviceGuard g(index);
  auto ck = [&](cudaError_t e, const char* what) {
    if (e != cudaSuccess)
      throw Error(ErrorKind::Cuda, "init", std::string("cuda:") + std::to_string(index) + " " + what + " failed: " +
                                               cudaGetErrorString(e), cudaGetErrorName(e));
  };
  cudaDeviceProp p{};
  ck(cudaGetDeviceProperties(&p, index), "cudaGetDeviceProperties");
  info_.name = p.name;
  info_.sm_count = p.multiProcessorCount;
  info_.cc_major = p.major;
  info_.cc_minor = p.minor;
  info_.total_memory = p.totalGlobalMem;
  info_.l2_bytes = p.l2CacheSize;
  info_.smem_per_block_optin = p.sharedMemPerBlockOptin;
  cudaDeviceGetAttribute(&info_.clock_khz, cudaDevAttrClockRate, index);
  cudaDeviceGetAttribute(&info_.mem_clock_khz, cudaDevAttrMemoryClockRate, index);
  cudaDeviceGetAttribute(&info_.bus_width, cudaDevAttrGlobalMemoryBusWidth, index);
  cudaStream_t s;
  ck(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  stream_ = s;
  ck(cudaDeviceGetDefaultMemPool(&pool_, index), "cudaDeviceGetDefaultMemPool");
  uint64_t keep = UINT64_MAX;  // keep freed memory in the pool instead of returning it at each sync
  cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep);
  void* h = nullptr;
  ck(cudaHostAlloc(&h, sizeof(DiagRecord), cudaHostAllocMapped), "cudaHostAlloc");
  diag_host_ = static_cast<DiagRecord*>(h);
  *diag_host_ = DiagRecord{};
  void* dptr = nullptr;
  ck(cudaHostGetDevicePointer(&dptr, h, 0), "cudaHostGetDevicePointer");
  diag_dev_ = static_cast<DiagRecord*>(dptr);
}

void* CudaDevice::allocate(size_t nbytes, const char* op) {
  CudaDeviceGuard g(index_);
  void* p = nullptr;
  cudaError_t e = cudaMallocAsync(&p, nbytes, reinterpret_cast<cudaStream_t>(stream_));
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    throw Error(ErrorKind::Range, op, "cannot allocate " + std::to_string(nbytes) + " bytes on cuda:" +
                                          std::to_string(index_) + " (out of device memory)", cudaGetErrorName(e));
  }
  check(e, op);
  return p;
}

void CudaDevice::free(void* p) {
  if (capturing()) { deferred_frees_.push_back(p); return; }  // a free node would be captured otherwise
  CudaDeviceGuard g(index_);
  cudaFreeAsync(p, reinterpret_cast<cudaStream_t>(stream_));
}

void CudaDevice::begin_capture(std::shared_ptr<CaptureArena> arena) { capture_ = std::move(arena); }

std::shared_ptr<CaptureArena> CudaDevice::end_capture() {
  std::shared_ptr<CaptureArena> a = std::move(capture_);
  capture_.reset();
  if (a) a->seal();
  std::vector<void*> frees;
  frees.swap(deferred_frees_);
  for (void* p : frees) free(p);
  return a;
}

void CudaDevice::note_use(const BufferPtr& b) {
  if (capture_ && !b->graph_owned()) capture_->keep(b);
}

// ---- CaptureArena ----

CaptureArena::~CaptureArena() {
  CudaDeviceGuard g(device_);
  for (void* c : chunks_) cudaFree(c);
}

void* CaptureArena::allocate(size_t nbytes, const char* op) {
  size_t n = (nbytes + 255) / 256 * 256;
  std::lock_guard<std::mutex> l(mu_);
  if (!sealed_) {
    auto it = free_.lower_bound(n);
    if (it != free_.end() && it->first <= 2 * n) { void* p = it->second; free_.erase(it); return p; }
  }
  if (n > left_) {
    size_t chunk = std::max<size_t>(n, size_t(64) << 20);
    void* c = nullptr;
    CudaDeviceGuard g(device_);
    cudaError_t e = cudaMalloc(&c, chunk);  // allowed in relaxed capture mode; not a stream operation
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw Error(ErrorKind::Range, op, "cannot allocate " + std::to_string(chunk) + " bytes for a graph capture on cuda:" +
                                            std::to_string(device_) + " (" + cudaGetErrorName(e) + ")", cudaGetErrorName(e));
    }
    chunks_.push_back(c);
    cursor_ = static_cast<char*>(c);
    left_ = chunk;
    total_ += chunk;
  }
  void* p = cursor_;
  cursor_ += n;
  left_ -= n;
  return p;
}

void CaptureArena::release(void* p, size_t nbytes) {
  std::lock_guard<std::mutex> l(mu_);
  if (!sealed_) free_.emplace((nbytes + 255) / 256 * 256, p);
}

void* CudaDevice::pinned_acquire(size_t nbytes) {
  size_t cls = 4096;
  while (cls < nbytes) cls <<= 1;
  {
    std::lock_guard<std::mutex> l(pinned_mu_);
    auto it = pinned_free_.find(cls);
    if (it != pinned_free_.end()) { void* p = it->second; pinned_free_.erase(it); return p; }
  }
  CudaDeviceGuard g(index_);
  void* p = nullptr;
  check(cudaHostAlloc(&p, cls, cudaHostAllocPortable), "pinned staging");
  return p;
}

void CudaDevice::pinned_release(void* p, size_t nbytes) {
  size_t cls = 4096;
  while (cls < nbytes) cls <<= 1;
  std::lock_guard<std::mutex> l(pinned_mu_);
  pinned_free_.emplace(cls, p);
}

void CudaDevice::ensure_usable(const char* op) const {
  if (broken_.load())
    throw Error(ErrorKind::Cuda, op, "device cuda:" + std::to_string(index_) + " is unusable after an earlier error (" +
                                         broken_reason_ + "); restart the process to use it again", "cudaErrorStickyError");
}

void CudaDevice::ensure_not_capturing(const char* op) const {
  if (capturing())
    throw Error(ErrorKind::State, op, "not allowed while cuda:" + std::to_string(index_) +
                                          " is capturing a graph (reads, host writes and transfers cannot be captured; "
                                          "use copyFrom from a device tensor for graph inputs)");
}

void CudaDevice::check(cudaError_t e, const char* op) {
  if (e == cudaSuccess) return;
  cudaGetLastError();
  std::string msg = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
  if (sticky(e) && !broken_.exchange(true)) broken_reason_ = msg;
  if (sticky(e)) msg += "; device cuda:" + std::to_string(index_) + " is now unusable (sticky error)";
  throw Error(ErrorKind::Cuda, op, msg, cudaGetErrorName(e));
}

void CudaDevice::check_launch(const char* op) {
  check(cudaGetLastError(), op);
  if (sync_debug() && !capturing()) check(cudaStreamSynchronize(reinterpret_cast<cudaStream_t>(stream_)), op);
}

size_t CudaDevice::pool_used() const {
  uint64_t v = 0;
  cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrUsedMemCurrent, &v);
  return v;
}
size_t CudaDevice::pool_reserved() const {
  uint64_t v = 0;
  cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemCurrent, &v);
  return v;
}

Stream CudaDevice::comm_stream(const char* op) {
  if (!comm_stream_) {
    CudaDeviceGuard g(index_);
    // The highest priority: when both streams have blocks waiting for SMs (an exchange launched next to
    // a compute kernel it should overlap), the exchange's blocks are placed first.
    int least = 0, greatest = 0;
    check(cudaDeviceGetStreamPriorityRange(&least, &greatest), op);
    cudaStream_t s;
    check(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, greatest), op);
    comm_stream_ = s;
  }
  return comm_stream_;
}

void CudaDevice::stream_after(Stream waiter, Stream done, const char* op) {
  CudaDeviceGuard g(index_);
  cudaEvent_t ev;
  check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), op);
  cudaError_t e = cudaEventRecord(ev, reinterpret_cast<cudaStream_t>(done));
  if (e == cudaSuccess) e = cudaStreamWaitEvent(reinterpret_cast<cudaStream_t>(waiter), ev, 0);
  cudaEventDestroy(ev);  // released once the wait has been satisfied
  check(e, op);
}

void CudaDevice::comm_after_compute(const char* op) { stream_after(comm_stream(op), stream_, op); }
void CudaDevice::compute_after_comm(const char* op) { stream_after(stream_, comm_stream(op), op); }

CudaFence::CudaFence(CudaDevice& d, const char* op) : dev_(d), op_(op) {
  CudaDeviceGuard g(d.index());
  d.check(cudaEventCreateWithFlags(&ev_, cudaEventDisableTiming), op);
  d.check(cudaEventRecord(ev_, reinterpret_cast<cudaStream_t>(d.stream())), op);
}
CudaFence::~CudaFence() { if (ev_) cudaEventDestroy(ev_); }
void CudaFence::wait() {
  CudaDeviceGuard g(dev_.index());
  dev_.check(cudaEventSynchronize(ev_), op_.c_str());
}

}  // namespace dsk
#endif
