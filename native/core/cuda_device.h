// Per-GPU state: the device's stream (its in-order queue), its memory pool, pinned staging buffers, the
// kernel diagnostics record, and whether a sticky error has made it unusable. Host code only.
#pragma once
#include "runtime.h"

#if DSK_WITH_CUDA
#include <cuda_runtime_api.h>

#include <map>
#include <vector>

namespace dsk {

// Device memory owned by one captured CUDA graph. Allocations during capture are carved from chunks
// of plain cudaMalloc memory; a block released during the capture is reused by later allocations of
// the same capture (safe: a captured graph replays on one stream, in capture order). After the
// capture nothing is reused, since replays still use every block. Freed when the graph and every
// tensor allocated inside it are gone.
class CaptureArena {
 public:
  explicit CaptureArena(int device) : device_(device) {}
  ~CaptureArena();
  void* allocate(size_t nbytes, const char* op);
  void release(void* p, size_t nbytes);
  void seal() { std::lock_guard<std::mutex> l(mu_); sealed_ = true; free_.clear(); }
  void keep(const BufferPtr& b) { std::lock_guard<std::mutex> l(mu_); kept_.push_back(b); }
  size_t bytes() const { return total_; }

 private:
  int device_;
  std::mutex mu_;
  bool sealed_ = false;
  std::vector<void*> chunks_;
  char* cursor_ = nullptr;
  size_t left_ = 0, total_ = 0;
  std::multimap<size_t, void*> free_;
  std::vector<BufferPtr> kept_;
};

struct CudaDeviceInfo {
  std::string name;
  int sm_count = 0, cc_major = 0, cc_minor = 0;
  size_t total_memory = 0, l2_bytes = 0, smem_per_block_optin = 0;
  int clock_khz = 0, mem_clock_khz = 0, bus_width = 0;
};

class CudaDevice {
 public:
  // Lazily created on first use; throws Error(Cuda) if the device cannot be initialized.
  static CudaDevice& get(int index, const char* op);
  static int count();                      // 0 when there is no driver or no GPU
  static const std::string& unavailable_reason();

  int index() const { return index_; }
  Stream stream() const { return stream_; }
  const CudaDeviceInfo& info() const { return info_; }
  DiagRecord* diag_device() const { return diag_dev_; }
  DiagRecord* diag_host() const { return diag_host_; }

  void* allocate(size_t nbytes, const char* op);
  void free(void* p);

  // Pinned host memory for staging transfers, recycled by size class.
  void* pinned_acquire(size_t nbytes);
  void pinned_release(void* p, size_t nbytes);

  // Throws if a sticky error has made the device unusable.
  void ensure_usable(const char* op) const;
  // Throws for host<->device transfers and waits, which cannot be part of a captured graph.
  void ensure_not_capturing(const char* op) const;
  // Checks a CUDA return code; a sticky error marks the device unusable. Throws Error(Cuda).
  void check(cudaError_t e, const char* op);
  // After a launch: checks cudaGetLastError (and synchronizes when DSK_SYNC_DEBUG=1).
  void check_launch(const char* op);

  // Graph capture (cuda_graph.cc): while capturing, allocations come from the graph's arena, buffers
  // touched by captured ops are kept alive by the graph, and frees of other memory wait for the end.
  bool capturing() const { return capture_ != nullptr; }
  std::shared_ptr<CaptureArena> capture_arena() const { return capture_; }
  void begin_capture(std::shared_ptr<CaptureArena> arena);
  std::shared_ptr<CaptureArena> end_capture();
  // Called for every buffer an op is about to use: while capturing, the graph keeps it alive.
  void note_use(const BufferPtr& b);

  size_t pool_used() const;
  size_t pool_reserved() const;

  // A second stream for communication kernels (expert-parallel dispatch/combine), created on first use,
  // so they overlap compute-stream work. The two are ordered with events, never implicitly.
  Stream comm_stream(const char* op);
  // The comm stream waits for everything enqueued on the compute stream so far (inputs are ready).
  void comm_after_compute(const char* op);
  // The compute stream waits for everything enqueued on the comm stream so far (outputs are ready).
  void compute_after_comm(const char* op);

 private:
  explicit CudaDevice(int index);
  int index_;
  Stream stream_ = nullptr;
  cudaMemPool_t pool_ = nullptr;
  DiagRecord* diag_host_ = nullptr;
  DiagRecord* diag_dev_ = nullptr;
  CudaDeviceInfo info_;
  std::atomic<bool> broken_{false};
  std::string broken_reason_;
  std::mutex pinned_mu_;
  std::multimap<size_t, void*> pinned_free_;
  Stream comm_stream_ = nullptr;
  void stream_after(Stream waiter, Stream done, const char* op);
  std::shared_ptr<CaptureArena> capture_;
  std::vector<void*> deferred_frees_;  // pool frees requested during a capture
};

// Sets the current device for the calling thread for the guard's lifetime.
struct CudaDeviceGuard {
  int prev = 0;
  explicit CudaDeviceGuard(int index) { cudaGetDevice(&prev); if (prev != index) cudaSetDevice(index); }
  ~CudaDeviceGuard() { int cur; cudaGetDevice(&cur); if (cur != prev) cudaSetDevice(prev); }
};

// A fence on a CUDA stream: an event recorded now, waited on by a worker thread.
class CudaFence : public Fence {
 public:
  CudaFence(CudaDevice& d, const char* op);
  ~CudaFence() override;
  void wait() override;

 private:
  CudaDevice& dev_;
  cudaEvent_t ev_ = nullptr;
  std::string op_;
};

}  // namespace dsk
#endif
