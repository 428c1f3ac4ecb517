// A fixed pool of worker threads that runs one function on every thread and waits for all.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cnnc::rt {

// run(f) calls f(0) .. f(size()-1), each on its own thread (f(0) on the caller's), and returns
// when all have returned. Which thread runs which index never changes, so work split by index
// is reproducible.
class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  void run(const std::function<void(int)>& f);

 private:
  void work(int index);

  // Waiting spins for a short while before it sleeps: a training step of a small model takes
  // about a millisecond and meets the workers twice, and waking a sleeping thread costs tens of
  // microseconds (more in a virtual machine), so a sleep at every meeting costs a fifth of the
  // step.
  static constexpr std::chrono::microseconds spin_for{200};

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_, done_;
  const std::function<void(int)>* job_ = nullptr;  // published by generation_'s release
  std::atomic<uint64_t> generation_ = 0;
  std::atomic<int> pending_ = 0;
  std::atomic<bool> stop_ = false;
};

}  // namespace cnnc::rt
