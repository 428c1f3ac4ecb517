// How the benchmarks time and summarise: calls per second over a window, and the median with
// its range over repetitions (the machine is shared, so a single figure means little).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "train/stopwatch.hpp"

namespace cnnc::bench {

struct Stats {
  double median = 0, min = 0, max = 0;
};

// The median, min and max of a non-empty sample.
inline Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v.front(), v.back()};
}

// Runs f until `seconds` have passed (at least `min_calls` times); returns calls per second.
template <class F>
double rate(double seconds, int min_calls, F&& f) {
  rt::Clock::time_point t0 = rt::Clock::now();
  int64_t calls = 0;
  double elapsed = 0;
  do {
    f();
    ++calls;
    elapsed = rt::seconds_since(t0);
  } while (calls < min_calls || elapsed < seconds);
  return static_cast<double>(calls) / elapsed;
}

}  // namespace cnnc::bench
