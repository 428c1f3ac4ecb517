// peak_fma.hpp: the machine's measured FP32 FMA peak, the denominator of every "share of peak",
// and its bf16 peak (vdpbf16ps), the denominator of a bf16 engine's share of its own peak.
//
// Twelve independent accumulator chains per thread: more than FMA latency x FMA ports (4 x 2 on
// Zen 4, 4 x 2 on recent Intel), so the chains never wait on each other and the loop runs at the
// issue rate. vdpbf16ps waits longer: on the Zen 5 of docs/benchmarks.md (a probe of 2026-12-07,
// the loop below with 12, 16 and 24 chains) 12 chains ran 1.85x the FMA peak and 16 ran 2.0x, so
// its loop keeps 24. Each ISA variant is compiled with its own target attribute, so one binary
// measures every variant the CPU has. Header-only: bench_layers and `cnnc bench` both include it.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace cnnc::bench {

// The instruction each peak loop runs: avx512 and avx2 FP32 FMAs, whose better is the FP32 peak;
// avx512_bf16 vdpbf16ps, the bf16 products' instruction, never part of the FP32 peak.
enum class PeakIsa { avx512, avx2, avx512_bf16 };

inline const char* peak_isa_name(PeakIsa isa) {
  switch (isa) {
    case PeakIsa::avx512: return "avx512";
    case PeakIsa::avx2: return "avx2";
    case PeakIsa::avx512_bf16: return "avx512_bf16";
  }
  return "?";
}

inline bool peak_isa_supported(PeakIsa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case PeakIsa::avx512: return __builtin_cpu_supports("avx512f");
    case PeakIsa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case PeakIsa::avx512_bf16: return __builtin_cpu_supports("avx512bf16");
  }
  return false;
}

inline constexpr int kFmaChains = 12;
inline constexpr int kBf16Chains = 24;

// FLOPs of one iteration of a chains loop: chains x lanes x 2 (a multiply and an add); vdpbf16ps
// adds two products into each of its 16 lanes.
inline double peak_flops_per_iteration(PeakIsa isa) {
  switch (isa) {
    case PeakIsa::avx512: return kFmaChains * 16 * 2.0;
    case PeakIsa::avx2: return kFmaChains * 8 * 2.0;
    case PeakIsa::avx512_bf16: return kBf16Chains * 16 * 4.0;
  }
  return 0;
}

// The sum of a vector's lanes through memory rather than _mm512_reduce_add_ps, whose GCC 12
// expansion trips -Wuninitialized (an _mm256_undefined_pd inside the header).
__attribute__((target("avx512f"))) inline float lane_sum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float total = 0;
  for (float x : lanes) total += x;
  return total;
}

// acc = acc * a + b on every chain, `iterations` times. The sum is returned so that the compiler
// cannot drop the work; a and b keep the values bounded (a < 1) and normal.
__attribute__((target("avx512f"))) inline float fma_chains_avx512(int64_t iterations, float seed) {
  __m512 acc[kFmaChains];
  for (int j = 0; j < kFmaChains; ++j) acc[j] = _mm512_set1_ps(seed + static_cast<float>(j));
  const __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(0.0001f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kFmaChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  }
  __m512 sum = acc[0];
  for (int j = 1; j < kFmaChains; ++j) sum = _mm512_add_ps(sum, acc[j]);
  return lane_sum(sum);
}

// acc += a.lo * b.lo + a.hi * b.hi on every chain: pairs of 1 and of about 1e-4, so that a chain
// grows by about 2e-4 an iteration and stays normal and finite.
__attribute__((target("avx512f,avx512bf16"))) inline float bf16_chains_avx512(int64_t iterations,
                                                                              float seed) {
  __m512 acc[kBf16Chains];
  for (int j = 0; j < kBf16Chains; ++j) acc[j] = _mm512_set1_ps(seed + static_cast<float>(j));
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0f), _mm512_set1_ps(1.0f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-4f), _mm512_set1_ps(1e-4f));
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
    for (int j = 0; j < kBf16Chains; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  }
  __m512 sum = acc[0];
  for (int j = 1; j < kBf16Chains; ++j) sum = _mm512_add_ps(sum, acc[j]);
  return lane_sum(sum);
}

__attribute__((target("avx2,fma"))) inline float fma_chains_avx2(int64_t iterations, float seed) {
  __m256 acc[kFmaChains];
  for (int j = 0; j < kFmaChains; ++j) acc[j] = _mm256_set1_ps(seed + static_cast<float>(j));
  const __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(0.0001f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kFmaChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  }
  __m256 sum = acc[0];
  for (int j = 1; j < kFmaChains; ++j) sum = _mm256_add_ps(sum, acc[j]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float total = 0;
  for (float x : lanes) total += x;
  return total;
}

inline float peak_chains(PeakIsa isa, int64_t iterations, float seed) {
  switch (isa) {
    case PeakIsa::avx512: return fma_chains_avx512(iterations, seed);
    case PeakIsa::avx2: return fma_chains_avx2(iterations, seed);
    case PeakIsa::avx512_bf16: return bf16_chains_avx512(iterations, seed);
  }
  return 0;
}

// GFLOP/s of `threads` threads running the chains together for about `seconds`, counted from
// the first start to the last finish (a straggler lowers the figure, as it would a kernel's).
// 0 when the CPU lacks the ISA.
inline double measure_isa_gflops(PeakIsa isa, int threads, double seconds) {
  if (!peak_isa_supported(isa)) return 0;
  using Clock = std::chrono::steady_clock;
  constexpr int64_t kChunk = 1 << 18;  // about a millisecond: the deadline is checked this often
  std::atomic<int64_t> chunks{0};
  std::atomic<float> sink{0};
  auto start = Clock::now();
  auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  auto work = [&](int t) {
    int64_t mine = 0;
    float s = 0;
    do {
      s += peak_chains(isa, kChunk, static_cast<float>(t));
      ++mine;
    } while (Clock::now() < deadline);
    chunks += mine;
    sink = sink + s;
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (std::thread& th : pool) th.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(chunks) * kChunk * peak_flops_per_iteration(isa) / elapsed / 1e9;
}

// The best variant's GFLOP/s on `threads` threads: what "share of peak" divides by.
inline double measure_peak_gflops(int threads, double seconds) {
  return std::max(measure_isa_gflops(PeakIsa::avx512, threads, seconds),
                  measure_isa_gflops(PeakIsa::avx2, threads, seconds));
}

// vdpbf16ps's GFLOP/s on `threads` threads (2 per multiply-add, as the engines count theirs):
// what a bf16 engine's share of its own peak divides by. 0 without AVX512_BF16.
inline double measure_bf16_peak_gflops(int threads, double seconds) {
  return measure_isa_gflops(PeakIsa::avx512_bf16, threads, seconds);
}

}  // namespace cnnc::bench
