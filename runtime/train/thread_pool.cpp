// The worker threads of ThreadPool: each waits for a new generation of work, runs its index.
#include "train/thread_pool.hpp"

#include <algorithm>

namespace cnnc::rt {

ThreadPool::ThreadPool(int threads) : errors_(static_cast<size_t>(std::max(threads, 1))) {
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
  call(f, 0);
  auto all_done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(all_done, spin_for)) {
    std::unique_lock lock(mutex_);
    done_.wait(lock, all_done);
  }
  job_ = nullptr;
  std::exception_ptr first;
  for (std::exception_ptr& e : errors_) {
    if (!first) first = e;
    e = nullptr;
  }
  if (first) std::rethrow_exception(first);
}

void ThreadPool::call(const std::function<void(int)>& f, int index) {
  try {
    f(index);
  } catch (...) {
    errors_[static_cast<size_t>(index)] = std::current_exception();
  }
}

void ThreadPool::barrier() {
  // Read before arriving: the count cannot complete, and the word cannot move on, without us.
  const uint32_t passed = barriers_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == size()) {
    arrived_.store(0, std::memory_order_relaxed);
    barriers_.fetch_add(1, std::memory_order_release);
    barriers_.notify_all();
    return;
  }
  auto open = [&] { return barriers_.load(std::memory_order_acquire) != passed; };
  if (!spin_until(open, spin_for))
    while (!open()) barriers_.wait(passed, std::memory_order_acquire);
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
    call(*job_, index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(mutex_);  // so that run() is either before its check or waiting
      done_.notify_one();
    }
  }
}

}  // namespace cnnc::rt
