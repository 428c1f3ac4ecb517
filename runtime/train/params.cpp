// Initialisation, digests and the finiteness check of parameter-sized vectors.
#include "train/params.hpp"

#include <fmt/format.h>

#include <bit>
#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "data/random.hpp"

namespace cnnc::rt {

namespace {

// A float's magnitude as an integer: |x| <= |y| exactly when magnitude(x) <= magnitude(y), and
// the NaNs lie above the infinity. Comparing it vectorises without any float arithmetic.
int32_t magnitude(float x) {
  return std::bit_cast<int32_t>(x) & 0x7fffffff;
}

constexpr int32_t largest_finite = 0x7f7fffff;  // magnitude(the largest float)

#if defined(__x86_64__)
// Whether some g[i], i < n rounded down to whole vectors of 16, is a NaN or an infinity. In
// AVX-512: the step's check of the dense weight gradients each thread summed (lenet5's dense1,
// 24,000 floats a thread) took 3.6-7.7 us in the baseline's SSE2 and 0.9-3.4 us so, of a
// 2-thread bf16 step of about 320 us (time-stamp probes in TrainStep::run, docs/benchmarks.md).
__attribute__((target("avx512f"))) bool any_non_finite_avx512(const float* g, size_t n) {
  const __m512i sign_off = _mm512_set1_epi32(0x7fffffff);
  const __mmask16 all = 0xffff;  // the masked max: GCC 12 warns of the plain one's undefined lanes
  __m512i largest = _mm512_setzero_si512();
  for (size_t i = 0; i + 16 <= n; i += 16)
    largest =
        _mm512_maskz_max_epi32(all, largest, _mm512_and_si512(_mm512_loadu_si512(g + i), sign_off));
  return _mm512_cmpgt_epi32_mask(largest, _mm512_set1_epi32(largest_finite)) != 0;
}
#endif

// The activation that follows a layer's weights: fused, or a separate activation layer next.
int32_t activation_after(const cnnc_model& m, int32_t i) {
  const cnnc_layer& l = m.layers[i];
  if (l.activation != CNNC_LINEAR) return l.activation;
  if (i + 1 < m.layer_count && m.layers[i + 1].kind == CNNC_ACTIVATION)
    return m.layers[i + 1].activation;
  return CNNC_LINEAR;
}

struct Fnv {
  uint64_t h = 0xcbf29ce484222325ull;
  void bytes(const void* p, size_t n) {
    for (size_t i = 0; i < n; ++i)
      h = (h ^ static_cast<const unsigned char*>(p)[i]) * 0x100000001b3ull;
  }
  template <class T>
  void value(T v) {
    bytes(&v, sizeof v);
  }
};

}  // namespace

std::vector<float> initial_params(const cnnc_model& m, uint64_t seed) {
  std::vector<float> p(static_cast<size_t>(m.param_count), 0.0f);
  for (int32_t i = 0; i < m.layer_count; ++i) {
    const cnnc_layer& l = m.layers[i];
    if (l.weight_count == 0) continue;
    int64_t fan_out =
        l.kind == CNNC_CONV ? static_cast<int64_t>(l.out_c) * l.kernel_h * l.kernel_w : l.out_c;
    int64_t fan_in = l.weight_count / l.out_c;
    // He: variance 2 / fan_in keeps relu activations' scale; Glorot: 2 / (fan_in + fan_out).
    double variance = activation_after(m, i) == CNNC_RELU ? 2.0 / fan_in : 2.0 / (fan_in + fan_out);
    double limit = std::sqrt(3.0 * variance);  // uniform(-a, a) has variance a^2 / 3
    SplitMix64 rng(mix64(seed ^ mix64(0x1000 + static_cast<uint64_t>(i))));
    for (int64_t k = 0; k < l.weight_count; ++k)
      p[l.weight_offset + k] = static_cast<float>((2 * unit_double(rng.next()) - 1) * limit);
  }
  return p;
}

uint64_t model_digest(const cnnc_model& m) {
  Fnv f;
  f.bytes(m.name, std::strlen(m.name));
  for (int32_t v : {m.input_h, m.input_w, m.input_c, m.output_size, m.loss, m.layer_count})
    f.value(v);
  f.value(m.param_count);
  for (int32_t i = 0; i < m.layer_count; ++i) {
    const cnnc_layer& l = m.layers[i];
    for (int32_t v : {l.kind, l.activation, l.in_h, l.in_w, l.in_c, l.out_h, l.out_w, l.out_c,
                      l.kernel_h, l.kernel_w, l.stride_h, l.stride_w, l.pad_top, l.pad_left,
                      l.pad_bottom, l.pad_right, l.trainable})
      f.value(v);
    for (int64_t v : {l.weight_offset, l.weight_count, l.bias_offset, l.bias_count}) f.value(v);
    f.value(l.dropout_rate);
  }
  return f.h;
}

std::string weights_digest(std::span<const float> params) {
  Fnv f;
  f.bytes(params.data(), params.size_bytes());
  return fmt::format("{:016x}", f.h);
}

bool all_finite(std::span<const float> values) {
  size_t i = 0;
#if defined(__x86_64__)
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (avx512) {
    if (any_non_finite_avx512(values.data(), values.size())) return false;
    i = values.size() / 16 * 16;
  }
#endif
  int32_t above = 0;
  for (; i < values.size(); ++i) above |= magnitude(values[i]) > largest_finite;
  return above == 0;
}

}  // namespace cnnc::rt
