// Devices, buffers, queues: the execution model every op runs on.
//
// Each device has one in-order queue. On `cuda:N` it is a CUDA stream; on `cpu` it is a worker thread
// that runs closures in order (each kernel inside spreads over all cores with parallel_for). Ops enqueue
// and return; only reads wait, on a Fence, off the JS thread. Buffers are shared_ptr-owned: a CPU closure
// holds the buffers it touches, and device memory is freed stream-ordered (cudaFreeAsync), so disposing
// a tensor while work on it is queued is always safe.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "diag.h"
#include "errors.h"

#ifndef DSK_WITH_CUDA
#define DSK_WITH_CUDA 0
#endif

struct CUstream_st;

namespace dsk {

using Stream = CUstream_st*;

struct Device {
  int index = -1;  // -1 = cpu, N = cuda:N
  bool is_cpu() const { return index < 0; }
  std::string name() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
  bool operator==(const Device& o) const { return index == o.index; }
  bool operator!=(const Device& o) const { return index != o.index; }
};

// Fill value for fresh allocations when poisoning is on (DSK_POISON=1, as the tests run): 0xFF bytes
// read as NaN in every float dtype and -1 in the integer ones, so an unwritten output cannot pass.
bool poison_enabled();

class Buffer {
 public:
  // Allocates nbytes on `device` (never returns null; a zero-byte buffer gets a 1-byte allocation).
  static std::shared_ptr<Buffer> allocate(Device device, size_t nbytes, const char* op);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return ptr_; }
  bool graph_owned() const { return owner_ != nullptr; }

  // Live buffers and their bytes per device (slot 0 = cpu, N+1 = cuda:N): for leak checks.
  struct Census { int64_t count, bytes; };
  static Census census(Device d);
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  Buffer(Device d, void* p, size_t n, std::shared_ptr<void> owner) : device_(d), ptr_(p), nbytes_(n), owner_(std::move(owner)) {}
  Device device_;
  void* ptr_;
  size_t nbytes_;
  std::shared_ptr<void> owner_;  // set when the memory belongs to a captured graph's arena
};
using BufferPtr = std::shared_ptr<Buffer>;

// Completion of everything enqueued on a queue before the fence was made.
class Fence {
 public:
  virtual ~Fence() = default;
  virtual void wait() = 0;  // blocks the calling (non-JS) thread
};

// ---- the CPU device ----

class CpuQueue {
 public:
  static CpuQueue& get();
  void push(std::function<void()> task);
  std::shared_ptr<Fence> fence();
  // First error raised by a task (or recorded by a kernel in diag()) since the last call; clears it.
  std::optional<Error> take_error();
  DiagRecord* diag() { return &diag_; }

 private:
  CpuQueue();
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::optional<Error> error_;
  DiagRecord diag_{};
  std::thread worker_;
};

// Runs fn(begin, end) over [0, n) in chunks of at least `grain` on all cores; returns when all are done.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
int cpu_threads();

// Turns a recorded diag entry into the RangeError a read rejects with, and clears it.
std::optional<Error> take_diag_error(DiagRecord* d);

}  // namespace dsk
