// Specifications of shared work: each thread takes its own share from the front, then others'
// from the back, and every item goes to exactly one claim however the threads race.
#include <catch2/catch.hpp>

#include <atomic>
#include <optional>
#include <thread>
#include <vector>

#include "train/shared_work.hpp"

using namespace cnnc;

namespace {

std::vector<size_t> claims_of(rt::SharedWork& work, int t) {
  std::vector<size_t> out;
  while (std::optional<size_t> item = work.claim(t)) out.push_back(*item);
  return out;
}

}  // namespace

TEST_CASE("a thread takes its own share in order, then the next shares' from their ends") {
  // Thread 0 owns 0..2, thread 1 nothing, thread 2 owns 3..5.
  rt::SharedWork work({0, 3, 3, 6});
  CHECK(work.claim(1) == std::optional<size_t>(5));  // its own is empty: thread 2's last
  CHECK(work.claim(0) == std::optional<size_t>(0));
  CHECK(work.claim(2) == std::optional<size_t>(3));
  CHECK(claims_of(work, 1) == std::vector<size_t>{4, 2, 1});  // thread 2's, then thread 0's
  CHECK(work.claim(0) == std::nullopt);
  CHECK(work.claim(2) == std::nullopt);
  work.reset();
  CHECK(claims_of(work, 2) == std::vector<size_t>{3, 4, 5, 2, 1, 0});
}

TEST_CASE("every item goes to exactly one claim while the threads race for them") {
  for (int threads : {2, 3, 4}) {
    INFO(threads << " threads");
    std::vector<size_t> starts;
    for (int t = 0; t <= threads; ++t) starts.push_back(static_cast<size_t>(t * t * 50));
    rt::SharedWork work(starts);
    const size_t items = starts.back();
    for (int round = 0; round < 20; ++round) {
      work.reset();
      std::vector<std::vector<size_t>> by_thread(static_cast<size_t>(threads));
      std::atomic<int> ready = 0;  // the threads start claiming together
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
          ++ready;
          while (ready < threads) std::this_thread::yield();
          by_thread[static_cast<size_t>(t)] = claims_of(work, t);
        });
      for (std::thread& th : pool) th.join();
      int twice = 0, never = 0;
      for (size_t i = 0; i < items; ++i) {
        int n = 0;
        for (const auto& claims : by_thread)
          for (size_t c : claims) n += c == i;
        twice += n > 1;
        never += n == 0;
      }
      CHECK(twice == 0);
      CHECK(never == 0);
      // Each thread's own items come to it in order, whatever others take of them.
      for (int t = 0; t < threads; ++t) {
        size_t last_own = 0;
        bool first = true, ordered = true;
        for (size_t c : by_thread[static_cast<size_t>(t)])
          if (c >= starts[static_cast<size_t>(t)] && c < starts[static_cast<size_t>(t) + 1]) {
            ordered = ordered && (first || c > last_own);
            last_own = c;
            first = false;
          }
        CHECK(ordered);
      }
    }
  }
}

TEST_CASE("shares that are not a thread's each, or that fall, are refused") {
  CHECK_THROWS(rt::SharedWork({0}));
  CHECK_THROWS(rt::SharedWork({0, 4, 2}));
}
