// The worker threads of ThreadPool: each waits for a new generation of work, runs its index.
#include "train/thread_pool.hpp"

namespace cnnc::rt {

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  start_.notify_all();
  for (std::thread& t : workers_) t.join();
}

namespace {

// Spins until done() or the time is up; true when done() came first.
template <class Done>
bool spin_until(Done done, std::chrono::microseconds limit) {
  auto start = std::chrono::steady_clock::now();
  while (!done()) {
    if (std::chrono::steady_clock::now() - start > limit) return false;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  return true;
}

}  // namespace

void ThreadPool::run(const std::function<void(int)>& f) {
  {
    std::lock_guard lock(mutex_);
    job_ = &f;
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_.notify_all();
  f(0);
  auto all_done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(all_done, spin_for)) {
    std::unique_lock lock(mutex_);
    done_.wait(lock, all_done);
  }
  job_ = nullptr;
}

void ThreadPool::work(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto started = [&] {
      return stop_.load(std::memory_order_acquire) ||
             generation_.load(std::memory_order_acquire) != seen;
    };
    if (!spin_until(started, spin_for)) {
      std::unique_lock lock(mutex_);
      start_.wait(lock, started);
    }
    if (stop_) return;
    seen = generation_.load(std::memory_order_acquire);
    (*job_)(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(mutex_);  // so that run() is either before its check or waiting
      done_.notify_one();
    }
  }
}

}  // namespace cnnc::rt
