// A fixed pool of worker threads that runs one function on every thread and waits for all.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cnnc::rt {

// run(f) calls f(0) .. f(size()-1), each on its own thread (f(0) on the caller's), and returns
// when all have returned; then it rethrows what the lowest index that threw threw. Which thread
// runs which index never changes, so work split by index is reproducible.
class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  void run(const std::function<void(int)>& f);
  // Inside run's f: returns once every index has called it, so that one job can hold phases
  // that each need all of the one before (meeting here costs less than returning from run and
  // starting another job). Every index must reach every barrier, also one that fails before it.
  void barrier();

 private:
  void work(int index);
  void call(const std::function<void(int)>& f, int index);  // f(index), keeping what it throws

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
  std::vector<std::exception_ptr> errors_;  // per index, of the job under way
  std::atomic<int> arrived_ = 0;            // at the barrier under way
  std::atomic<uint32_t> barriers_ = 0;      // barriers passed, the word sleepers wait on
};

}  // namespace cnnc::rt
