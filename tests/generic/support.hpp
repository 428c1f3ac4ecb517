// Test support for the generic engine: a portable RNG, a layer-table builder, finite differences.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cnnc_abi.h"
#include "generic/generic_engine.hpp"

namespace cnnc::test {

// splitmix64: the same numbers on every platform, unlike std:: distributions.
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform(float lo, float hi) { return lo + (hi - lo) * float(next() >> 40) / 16777216.0f; }
  std::vector<float> vec(size_t n, float lo = -1.0f, float hi = 1.0f) {
    std::vector<float> v(n);
    for (float& x : v) x = uniform(lo, hi);
    return v;
  }
};

// Scratch the way the ABI hands it out: 64-byte aligned, owned by the caller.
struct AlignedBuffer {
  std::unique_ptr<float, decltype(&std::free)> ptr{nullptr, &std::free};
  explicit AlignedBuffer(int64_t floats)
      : ptr(static_cast<float*>(std::aligned_alloc(64, size_t((floats + 16) / 16 * 16 * 4))),
            &std::free) {}
  float* get() const { return ptr.get(); }
};

struct Pads {
  int32_t top = 0, left = 0, bottom = 0, right = 0;
};

// Builds a layer table the way the front end would: each layer's input is the previous output,
// output shapes follow the ABI's rule, parameters are laid out one after the other.
class SpecBuilder {
 public:
  SpecBuilder(int32_t h, int32_t w, int32_t c, int32_t loss = CNNC_CROSS_ENTROPY) {
    spec_.name = "test";
    spec_.input_h = h, spec_.input_w = w, spec_.input_c = c;
    spec_.loss = loss;
  }

  SpecBuilder& conv(int32_t k, int32_t r, int32_t s, int32_t sh = 1, int32_t sw = 1, Pads p = {},
                    int32_t act = CNNC_LINEAR) {
    cnnc_layer& l = add(CNNC_CONV, "conv");
    l.kernel_h = r, l.kernel_w = s, l.stride_h = sh, l.stride_w = sw;
    l.pad_top = p.top, l.pad_left = p.left, l.pad_bottom = p.bottom, l.pad_right = p.right;
    l.out_h = (l.in_h + p.top + p.bottom - r) / sh + 1;
    l.out_w = (l.in_w + p.left + p.right - s) / sw + 1;
    l.out_c = k;
    l.activation = act;
    params(l, int64_t{k} * r * s * l.in_c, k);
    return *this;
  }
  SpecBuilder& pool(int32_t kind, int32_t r, int32_t s, int32_t sh, int32_t sw) {
    cnnc_layer& l = add(kind, kind == CNNC_MAXPOOL ? "maxpool" : "avgpool");
    l.kernel_h = r, l.kernel_w = s, l.stride_h = sh, l.stride_w = sw;
    l.out_h = (l.in_h - r) / sh + 1, l.out_w = (l.in_w - s) / sw + 1, l.out_c = l.in_c;
    return *this;
  }
  SpecBuilder& flatten() {
    cnnc_layer& l = add(CNNC_FLATTEN, "flatten");
    l.out_h = 1, l.out_w = 1, l.out_c = l.in_h * l.in_w * l.in_c;
    return *this;
  }
  SpecBuilder& dense(int32_t k, int32_t act = CNNC_LINEAR) {
    cnnc_layer& l = add(CNNC_DENSE, "dense");
    l.out_h = 1, l.out_w = 1, l.out_c = k;
    l.activation = act;
    params(l, int64_t{k} * l.in_h * l.in_w * l.in_c, k);
    return *this;
  }
  SpecBuilder& dropout(float rate) {
    cnnc_layer& l = add(CNNC_DROPOUT, "dropout");
    l.out_h = l.in_h, l.out_w = l.in_w, l.out_c = l.in_c;
    l.dropout_rate = rate;
    return *this;
  }
  SpecBuilder& activation(int32_t act) {
    cnnc_layer& l = add(CNNC_ACTIVATION, "act");
    l.out_h = l.in_h, l.out_w = l.in_w, l.out_c = l.in_c;
    l.activation = act;
    return *this;
  }
  // Marks the last layer frozen.
  SpecBuilder& frozen() {
    spec_.layers.back().trainable = 0;
    return *this;
  }
  rt::ModelSpec build() const { return spec_; }

 private:
  cnnc_layer& add(int32_t kind, const char* base) {
    cnnc_layer l{};
    const std::string name = base + std::to_string(spec_.layers.size());
    std::strncpy(l.name, name.c_str(), sizeof l.name - 1);
    l.kind = kind;
    if (spec_.layers.empty()) {
      l.in_h = spec_.input_h, l.in_w = spec_.input_w, l.in_c = spec_.input_c;
    } else {
      const cnnc_layer& prev = spec_.layers.back();
      l.in_h = prev.out_h, l.in_w = prev.out_w, l.in_c = prev.out_c;
    }
    spec_.layers.push_back(l);
    return spec_.layers.back();
  }
  void params(cnnc_layer& l, int64_t weights, int64_t bias) {
    l.weight_offset = spec_.param_count, l.weight_count = weights;
    l.bias_offset = spec_.param_count + weights, l.bias_count = bias;
    spec_.param_count += weights + bias;
    l.trainable = 1;
  }
  rt::ModelSpec spec_;
};

// Everything one ABI call needs, sized from the model.
struct Harness {
  const cnnc_model* m;
  std::vector<float> params, input, output, grads;
  std::vector<int32_t> labels;
  AlignedBuffer workspace;
  cnnc_pass pass{};

  Harness(const cnnc_model* model, int32_t n, uint64_t seed)
      : m(model), workspace(model->workspace_bytes / 4) {
    Rng rng(seed);
    params = rng.vec(size_t(m->param_count), -0.5f, 0.5f);
    input = rng.vec(size_t(n) * m->input_h * m->input_w * m->input_c);
    output.assign(size_t(n) * m->output_size, 0.0f);
    grads.assign(size_t(m->param_count), 0.0f);
    for (int32_t i = 0; i < n; ++i) labels.push_back(int32_t(rng.next() % m->output_size));
    pass.n = n;
    pass.seed = 42;
    pass.epoch = 3;
    pass.sample_base = 7;
  }
  const cnnc_pass* bind() {
    pass.params = params.data();
    pass.input = input.data();
    pass.labels = labels.data();
    pass.output = output.data();
    pass.grads = grads.data();
    pass.workspace = workspace.get();
    return &pass;
  }
  float train() { return m->train(m, bind()); }
  void forward() { m->forward(m, bind()); }
};

// Central differences of loss() with respect to each checked entry of t, against analytic[i]:
// |fd - analytic| <= atol + rtol * max(|fd|, |analytic|). Checks every entry when the tensor is
// small, an evenly spread subset of max_checks entries otherwise.
inline void check_gradient(const std::string& what, std::vector<float>& t,
                           const std::vector<float>& analytic, const std::function<double()>& loss,
                           float eps, double atol, double rtol, size_t max_checks = 64) {
  REQUIRE(t.size() == analytic.size());
  const size_t step = t.size() <= max_checks ? 1 : t.size() / max_checks;
  double worst = 0.0;
  for (size_t i = 0; i < t.size(); i += step) {
    const float saved = t[i];
    t[i] = saved + eps;
    const double up = loss();
    t[i] = saved - eps;
    const double down = loss();
    t[i] = saved;
    const double fd = (up - down) / (2.0 * double(eps));
    const double err = std::fabs(fd - analytic[i]);
    const double allowed = atol + rtol * std::max(std::fabs(fd), std::fabs(double(analytic[i])));
    worst = std::max(worst, err / allowed);
    if (err > allowed) {
      INFO(what << "[" << i << "]: finite difference " << fd << ", backward " << analytic[i]);
      CHECK(err <= allowed);
    }
  }
  INFO(what << ": worst error / allowed = " << worst);
  CHECK(worst <= 1.0);
}

// sum_j g[j] * y[j] in double: a scalar whose gradient with respect to y is g.
inline double dot(const std::vector<float>& g, const std::vector<float>& y) {
  double s = 0.0;
  for (size_t j = 0; j < g.size(); ++j) s += double(g[j]) * y[j];
  return s;
}

}  // namespace cnnc::test
