// Wall-clock seconds since a moment: how the trainer and the benchmarks time what they report.
#pragma once

#include <chrono>

namespace cnnc::rt {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace cnnc::rt
