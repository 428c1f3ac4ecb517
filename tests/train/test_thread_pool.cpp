// Specifications of the thread pool: every index once, each on its own thread; barriers that
// order a job's phases; exceptions carried back to run's caller.
#include <catch2/catch.hpp>

#include <atomic>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "train/thread_pool.hpp"

using namespace cnnc;

TEST_CASE("run calls every index once, f(0) on the caller's thread, the others on their own") {
  rt::ThreadPool pool(3);
  REQUIRE(pool.size() == 3);
  for (int round = 0; round < 100; ++round) {
    std::vector<std::thread::id> ran(3);
    pool.run([&](int t) { ran[static_cast<size_t>(t)] = std::this_thread::get_id(); });
    CHECK(ran[0] == std::this_thread::get_id());
    CHECK(std::set<std::thread::id>(ran.begin(), ran.end()).size() == 3);
  }
}

TEST_CASE("after a barrier every index sees what every index wrote before it") {
  // Each phase reads all of the previous phase's values and writes new ones in their place: a
  // thread that passed a barrier early would read a stale value or overwrite one still unread.
  for (int threads : {1, 2, 3}) {
    rt::ThreadPool pool(threads);
    std::vector<std::atomic<int64_t>> values(static_cast<size_t>(threads));
    std::atomic<int> stale = 0;
    pool.run([&](int t) {
      values[static_cast<size_t>(t)] = t;
      for (int64_t phase = 1; phase <= 2000; ++phase) {
        pool.barrier();
        int64_t sum = 0;
        for (const std::atomic<int64_t>& v : values) sum += v.load(std::memory_order_relaxed);
        int64_t expected = threads * (phase - 1) * 1000 + threads * (threads - 1) / 2;
        if (sum != expected) ++stale;
        pool.barrier();
        values[static_cast<size_t>(t)] = phase * 1000 + t;
      }
    });
    INFO(threads << " threads");
    CHECK(stale == 0);
  }
}

TEST_CASE("run rethrows the lowest index's exception after every index returned") {
  rt::ThreadPool pool(3);
  std::atomic<int> finished = 0;
  auto job = [&](int t) {
    if (t > 0) throw std::runtime_error("index " + std::to_string(t));
    ++finished;
  };
  CHECK_THROWS_WITH(pool.run(job), "index 1");
  CHECK(finished == 1);
  // Nothing of the failed job is left behind: the next one runs and throws nothing.
  pool.run([&](int) { ++finished; });
  CHECK(finished == 4);
}
