#include "runtime.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "cuda_device.h"

namespace dsk {

bool poison_enabled() {
  static const bool on = [] { const char* v = std::getenv("DSK_POISON"); return v && v[0] == '1'; }();
  return on;
}

static size_t physical_memory_bytes() {
  static const size_t bytes = [] {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : SIZE_MAX;
  }();
  return bytes;
}

namespace {
constexpr int kCensusSlots = 65;
std::atomic<int64_t> g_census_count[kCensusSlots];
std::atomic<int64_t> g_census_bytes[kCensusSlots];
int census_slot(Device d) { return d.index < 0 ? 0 : (d.index + 1 < kCensusSlots ? d.index + 1 : kCensusSlots - 1); }
void census_add(Device d, int64_t n, int sign) {
  g_census_count[census_slot(d)] += sign;
  g_census_bytes[census_slot(d)] += sign * n;
}
}  // namespace

Buffer::Census Buffer::census(Device d) { return {g_census_count[census_slot(d)].load(), g_census_bytes[census_slot(d)].load()}; }

BufferPtr Buffer::allocate(Device device, size_t nbytes, const char* op) {
  size_t n = nbytes ? nbytes : 1;
  if (device.is_cpu()) {
    if (n > physical_memory_bytes())
      throw_range(op, "cannot allocate " + std::to_string(nbytes) + " bytes on cpu: more than the machine's " +
                          std::to_string(physical_memory_bytes()) + " bytes of memory");
    void* p = std::aligned_alloc(64, (n + 63) / 64 * 64);
    if (!p) throw_range(op, "cannot allocate " + std::to_string(nbytes) + " bytes on cpu: out of memory");
    BufferPtr b(new Buffer(device, p, nbytes, nullptr));
    census_add(device, static_cast<int64_t>(nbytes), 1);
    if (poison_enabled()) CpuQueue::get().push([b] { std::memset(b->data(), 0xff, b->nbytes()); });
    return b;
  }
#if DSK_WITH_CUDA
  CudaDevice& d = CudaDevice::get(device.index, op);
  d.ensure_usable(op);
  BufferPtr b;
  if (d.capturing()) {
    // Inside a graph capture: memory from the graph's arena, alive as long as the graph or the tensor.
    std::shared_ptr<CaptureArena> arena = d.capture_arena();
    b.reset(new Buffer(device, arena->allocate(n, op), nbytes, arena));
  } else {
    b.reset(new Buffer(device, d.allocate(n, op), nbytes, nullptr));
  }
  void* p = b->data();
  census_add(device, static_cast<int64_t>(nbytes), 1);
  if (poison_enabled()) {
    CudaDeviceGuard g(device.index);
    d.check(cudaMemsetAsync(p, 0xff, n, reinterpret_cast<cudaStream_t>(d.stream())), op);
  }
  return b;
#else
  throw_type(op, "this build of deepseek-kernels has no CUDA support");
#endif
}

Buffer::~Buffer() {
  census_add(device_, static_cast<int64_t>(nbytes_), -1);
  if (device_.is_cpu()) { std::free(ptr_); return; }
#if DSK_WITH_CUDA
  if (owner_) {  // arena memory: reusable by later allocations of the same capture, else kept for the graph
    static_cast<CaptureArena*>(owner_.get())->release(ptr_, nbytes_ ? nbytes_ : 1);
    return;
  }
  try { CudaDevice::get(device_.index, "free").free(ptr_); } catch (...) {}
#endif
}

// ---- CPU queue ----

namespace {
class CpuFence : public Fence {
 public:
  void signal() { std::lock_guard<std::mutex> l(mu_); done_ = true; cv_.notify_all(); }
  void wait() override { std::unique_lock<std::mutex> l(mu_); cv_.wait(l, [&] { return done_; }); }
 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};
}  // namespace

CpuQueue& CpuQueue::get() {
  static CpuQueue* q = new CpuQueue();  // never destroyed: its thread may outlive static destruction
  return *q;
}

CpuQueue::CpuQueue() : worker_([this] { loop(); }) { worker_.detach(); }

void CpuQueue::push(std::function<void()> task) {
  std::lock_guard<std::mutex> l(mu_);
  tasks_.push_back(std::move(task));
  cv_.notify_one();
}

std::shared_ptr<Fence> CpuQueue::fence() {
  auto f = std::make_shared<CpuFence>();
  push([f] { f->signal(); });
  return f;
}

std::optional<Error> CpuQueue::take_error() {
  std::optional<Error> e;
  {
    std::lock_guard<std::mutex> l(mu_);
    e.swap(error_);
  }
  if (e) return e;
  return take_diag_error(&diag_);
}

void CpuQueue::loop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return !tasks_.empty(); });
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    try {
      task();
    } catch (const Error& e) {
      std::lock_guard<std::mutex> l(mu_);
      if (!error_) error_ = e;
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> l(mu_);
      if (!error_) error_ = Error(ErrorKind::State, "cpu", e.what());
    }
  }
}

std::optional<Error> take_diag_error(DiagRecord* d) {
  int32_t code = __atomic_load_n(&d->code, __ATOMIC_ACQUIRE);
  if (!code) return std::nullopt;
  std::string ep = diag_ep_message(code, d->value, d->bound);
  Error e(ep.empty() ? ErrorKind::Range : ErrorKind::State, "",
          !ep.empty() ? ep
                      : std::string(diag_site_name(code)) + " contains " + std::to_string(d->value) +
                            ", outside the valid range [0, " + std::to_string(d->bound) +
                            "); the op skipped it and its output is incomplete");
  __atomic_store_n(&d->code, 0, __ATOMIC_RELEASE);
  return e;
}

// ---- parallel_for: a fixed pool; the caller works too ----

namespace {
class Pool {
 public:
  static Pool& get() { static Pool* p = new Pool(); return *p; }
  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, threads() * 4);
    if (chunks <= 1 || workers_.empty() || in_region_) { fn(0, n); return; }  // nested regions run inline
    std::lock_guard<std::mutex> one(run_mu_);  // one parallel region at a time
    Job job{&fn, n, chunks};
    in_region_ = true;
    {
      std::lock_guard<std::mutex> l(mu_);
      job_ = &job;
      ++generation_;
      cv_.notify_all();
    }
    work(job);
    in_region_ = false;
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [&] { return job.finished.load() == job.chunks && job.active == 0; });
    job_ = nullptr;
  }

 private:
  struct Job {
    const std::function<void(int64_t, int64_t)>* fn;
    int64_t n, chunks;
    std::atomic<int64_t> next{0}, finished{0};
    int active = 0;  // workers inside work(); guarded by mu_
    Job(const std::function<void(int64_t, int64_t)>* f, int64_t n_, int64_t c) : fn(f), n(n_), chunks(c) {}
  };

  Pool() {
    unsigned hw = std::thread::hardware_concurrency();
    int extra = hw > 1 ? static_cast<int>(hw) - 1 : 0;
    for (int i = 0; i < extra; ++i) workers_.emplace_back([this] { loop(); }), workers_.back().detach();
  }

  void work(Job& job) {
    for (;;) {
      int64_t c = job.next.fetch_add(1);
      if (c >= job.chunks) return;
      int64_t b = job.n * c / job.chunks, e = job.n * (c + 1) / job.chunks;
      (*job.fn)(b, e);
      if (job.finished.fetch_add(1) + 1 == job.chunks) {
        std::lock_guard<std::mutex> l(mu_);
        done_cv_.notify_all();
      }
    }
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      Job* job;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return generation_ != seen && job_ != nullptr; });
        seen = generation_;
        job = job_;
        ++job->active;
      }
      in_region_ = true;
      work(*job);
      in_region_ = false;
      std::lock_guard<std::mutex> l(mu_);
      if (--job->active == 0) done_cv_.notify_all();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex run_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  Job* job_ = nullptr;
  uint64_t generation_ = 0;
  static thread_local bool in_region_;
};
thread_local bool Pool::in_region_ = false;
}  // namespace

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  Pool::get().run(n, grain < 1 ? 1 : grain, fn);
}
int cpu_threads() { return Pool::get().threads(); }

}  // namespace dsk
