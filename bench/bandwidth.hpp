// bandwidth.hpp: the machine's measured data bandwidth, the slope of the roofline that
// docs/benchmarks.md draws every layer's phases under.
//
// STREAM's triad, a[i] = b[i] + s * c[i], on `threads` threads each with arrays of its own, counted
// as STREAM counts it: 12 bytes per element (two floats read, one written; the write-allocate read
// of a is not counted). Arrays far larger than the last-level cache give the memory bandwidth;
// arrays that fit a core's L2 give the cache bandwidth that the small layers of these models
// mostly see. Header-only, like peak_fma.hpp.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <thread>
#include <vector>

namespace cnnc::bench {

// One triad pass over n floats (a multiple of 16, 64-byte aligned), in the widest vectors the CPU
// has: a plain loop is not vectorised at -O2 by GCC 12, and would measure the core, not the
// memory.
__attribute__((target("avx512f"))) inline void triad_avx512(float* a, const float* b,
                                                            const float* c, size_t n) {
  const __m512 s = _mm512_set1_ps(0.5f);
  for (size_t i = 0; i < n; i += 16)
    _mm512_store_ps(a + i, _mm512_fmadd_ps(s, _mm512_load_ps(c + i), _mm512_load_ps(b + i)));
}

__attribute__((target("avx2,fma"))) inline void triad_avx2(float* a, const float* b, const float* c,
                                                           size_t n) {
  const __m256 s = _mm256_set1_ps(0.5f);
  for (size_t i = 0; i < n; i += 8)
    _mm256_store_ps(a + i, _mm256_fmadd_ps(s, _mm256_load_ps(c + i), _mm256_load_ps(b + i)));
}

inline void triad(float* a, const float* b, const float* c, size_t n) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f"))
    triad_avx512(a, b, c, n);
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    triad_avx2(a, b, c, n);
  else
    for (size_t i = 0; i < n; ++i) a[i] = b[i] + 0.5f * c[i];
}

// GB/s (1e9 bytes) of `threads` threads each running the triad over arrays of `bytes` bytes in
// all (three arrays of bytes / 3) for about `seconds`, counted from the first start to the last
// finish. Each thread first touches its own arrays, so pages sit on its side of the machine.
inline double measure_triad_gbs(int threads, int64_t bytes, double seconds) {
  using Clock = std::chrono::steady_clock;
  const auto n = static_cast<size_t>(std::max<int64_t>(16, bytes / 12 / 16 * 16));
  std::atomic<int64_t> elements{0};
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  Clock::time_point start, deadline;
  auto work = [&](int t) {
    auto array = [n](float v) {
      std::unique_ptr<float, decltype(&std::free)> p(
          static_cast<float*>(std::aligned_alloc(64, n * sizeof(float))), &std::free);
      if (!p) throw std::bad_alloc();
      std::fill(p.get(), p.get() + n, v);  // first touch, by this thread
      return p;
    };
    auto a = array(0.0f), b = array(1.0f + static_cast<float>(t)), c = array(2.0f);
    triad(a.get(), b.get(), c.get(), n);  // warm: caches, and the dispatch
    ++ready;
    while (!go) std::this_thread::yield();
    int64_t mine = 0;
    do {
      triad(a.get(), b.get(), c.get(), n);
      mine += static_cast<int64_t>(n);
      // The next pass reads what this one wrote, so no pass can be dropped.
      std::swap(a, b);
    } while (Clock::now() < deadline);
    elements += mine;
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work, t);
  while (ready < threads) std::this_thread::yield();
  start = Clock::now();
  deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  go = true;
  for (std::thread& th : pool) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(elements) * 12 / elapsed / 1e9;
}

}  // namespace cnnc::bench
