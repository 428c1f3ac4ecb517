// Dense and activations: backward against finite differences, forward against closed forms.
#include <cmath>

#include "generic/gemm.hpp"
#include "generic/layers.hpp"
#include "support.hpp"

using cnnc::test::SpecBuilder;

TEST_CASE("dense forward is x w^T + b", "[dense]") {
  const cnnc_layer l = SpecBuilder(1, 1, 3).dense(2).build().layers[0];
  const std::vector<float> x = {1, 2, 3, -1, 0, 1};
  const std::vector<float> w = {1, 0, -1, 0.5f, 0.5f, 0.5f};
  const std::vector<float> b = {10, 20};
  std::vector<float> y(4);
  cnnc::test::AlignedBuffer pack(cnnc::rt::kGemmPackFloats);
  cnnc::rt::dense_forward(l, 2, x.data(), w.data(), b.data(), y.data(), pack.get());
  CHECK(y == std::vector<float>{10 - 2, 20 + 3, 10 - 2, 20 + 0});
}

TEST_CASE("dense backward matches finite differences", "[dense]") {
  // A 2x3x4 input: dense reads it flattened in [H][W][C] order.
  const cnnc_layer l = SpecBuilder(2, 3, 4).dense(7).build().layers[0];
  const int32_t n = 3;
  cnnc::test::Rng rng(5);
  std::vector<float> x = rng.vec(size_t(n) * 24), w = rng.vec(size_t(l.weight_count)),
                     b = rng.vec(7);
  const std::vector<float> g = rng.vec(size_t(n) * 7);
  cnnc::test::AlignedBuffer pack(cnnc::rt::kGemmPackFloats);
  std::vector<float> dx(x.size()), dw(w.size()), db(b.size());
  cnnc::rt::dense_backward(l, n, x.data(), w.data(), g.data(), dx.data(), dw.data(), db.data(),
                           pack.get());
  auto loss = [&] {
    std::vector<float> y(size_t(n) * 7);
    cnnc::rt::dense_forward(l, n, x.data(), w.data(), b.data(), y.data(), pack.get());
    return cnnc::test::dot(g, y);
  };
  cnnc::test::check_gradient("dx", x, dx, loss, 0.05f, 2e-4, 1e-3);
  cnnc::test::check_gradient("dw", w, dw, loss, 0.05f, 2e-4, 1e-3);
  cnnc::test::check_gradient("db", b, db, loss, 0.05f, 2e-4, 1e-3);
}

TEST_CASE("activations forward: closed forms", "[activation]") {
  auto apply = [](int32_t act, std::vector<float> y) {
    cnnc::rt::activation_forward(act, 1, int64_t(y.size()), y.data());
    return y;
  };
  CHECK(apply(CNNC_LINEAR, {-2, 3}) == std::vector<float>{-2, 3});
  CHECK(apply(CNNC_RELU, {-2, 0, 3}) == std::vector<float>{0, 0, 3});
  CHECK(apply(CNNC_SIGMOID, {0})[0] == 0.5f);
  CHECK(apply(CNNC_SIGMOID, {2})[0] == Approx(1.0 / (1.0 + std::exp(-2.0))));
  CHECK(apply(CNNC_TANH, {0.5f})[0] == Approx(std::tanh(0.5)));
  const std::vector<float> p = apply(CNNC_SOFTMAX, {1, 2, 3});
  const double e = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  CHECK(p[0] == Approx(std::exp(1.0) / e));
  CHECK(p[2] == Approx(std::exp(3.0) / e));
  SECTION("softmax shifts by the maximum, so huge logits neither overflow nor give NaN") {
    const std::vector<float> q = apply(CNNC_SOFTMAX, {1000, 1000});
    CHECK(q == std::vector<float>{0.5f, 0.5f});
  }
}

TEST_CASE("activations backward match finite differences", "[activation]") {
  const int32_t n = 2;
  const int64_t size = 10;
  for (int32_t act : {CNNC_LINEAR, CNNC_RELU, CNNC_SIGMOID, CNNC_TANH, CNNC_SOFTMAX}) {
    INFO("activation " << act);
    cnnc::test::Rng rng(uint64_t(act) + 11);
    std::vector<float> x = rng.vec(size_t(n * size), -2.0f, 2.0f);
    // Keep relu away from its kink, where no finite difference is meaningful.
    for (float& v : x) v = std::fabs(v) < 0.05f ? 0.3f : v;
    const std::vector<float> g = rng.vec(x.size());
    std::vector<float> y = x;
    cnnc::rt::activation_forward(act, n, size, y.data());
    std::vector<float> dx(x.size());
    cnnc::rt::activation_backward(act, n, size, y.data(), g.data(), dx.data());
    auto loss = [&] {
      std::vector<float> z = x;
      cnnc::rt::activation_forward(act, n, size, z.data());
      return cnnc::test::dot(g, z);
    };
    cnnc::test::check_gradient("dx", x, dx, loss, 1e-2f, 2e-4, 2e-3);
  }
}

TEST_CASE("activation backward works in place", "[activation]") {
  std::vector<float> y = {0.2f, 0.3f, 0.5f}, d = {1, -1, 2};
  std::vector<float> out(3);
  cnnc::rt::activation_backward(CNNC_SOFTMAX, 1, 3, y.data(), d.data(), out.data());
  cnnc::rt::activation_backward(CNNC_SOFTMAX, 1, 3, y.data(), d.data(), d.data());
  CHECK(d == out);
}
