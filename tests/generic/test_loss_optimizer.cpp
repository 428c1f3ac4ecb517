// Losses against closed forms and finite differences; optimizer steps against hand-computed values.
#include <cmath>

#include "generic/layers.hpp"
#include "support.hpp"

TEST_CASE("softmax cross-entropy: closed form, gradient, probabilities", "[loss]") {
  const std::vector<float> z = {1, 2, 3, 0, 0, 0};
  const std::vector<int32_t> labels = {2, 0};
  std::vector<float> probs(6), dz(6);
  const float loss = cnnc::rt::softmax_xent(2, 3, z.data(), labels.data(), probs.data(), dz.data());
  const double e = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  CHECK(loss == Approx(-std::log(std::exp(3.0) / e) + std::log(3.0)));
  CHECK(probs[0] == Approx(std::exp(1.0) / e));
  CHECK(dz[2] == Approx(std::exp(3.0) / e - 1.0));
  CHECK(dz[3] == Approx(1.0 / 3.0 - 1.0));
  CHECK(dz[4] == Approx(1.0 / 3.0));
  SECTION("logits far apart give a finite loss, not log(0)") {
    const std::vector<float> far = {0, 200};
    const int32_t label = 0;
    float dfar[2];
    CHECK(cnnc::rt::softmax_xent(1, 2, far.data(), &label, nullptr, dfar) == Approx(200.0));
  }
}

TEST_CASE("losses' gradients match finite differences", "[loss]") {
  cnnc::test::Rng rng(17);
  std::vector<float> y = rng.vec(3 * 10, -3.0f, 3.0f);
  const std::vector<int32_t> labels = {4, 0, 9};
  std::vector<float> dy(y.size()), scratch(y.size());
  SECTION("softmax cross-entropy, gradient with respect to the logits") {
    cnnc::rt::softmax_xent(3, 10, y.data(), labels.data(), nullptr, dy.data());
    cnnc::test::check_gradient(
        "dz", y, dy,
        [&] {
          return double(
              cnnc::rt::softmax_xent(3, 10, y.data(), labels.data(), nullptr, scratch.data()));
        },
        1e-2f, 2e-4, 2e-3);
  }
  SECTION("mean squared error against the one-hot label") {
    cnnc::rt::mse(3, 10, y.data(), labels.data(), dy.data());
    cnnc::test::check_gradient(
        "dy", y, dy,
        [&] { return double(cnnc::rt::mse(3, 10, y.data(), labels.data(), scratch.data())); },
        1e-2f, 2e-4, 2e-3);
  }
}

TEST_CASE("mse is the mean over outputs of (y - onehot)^2, summed over samples", "[loss]") {
  const std::vector<float> y = {0.5f, 0.5f, 1, 0};
  const std::vector<int32_t> labels = {0, 1};
  std::vector<float> dy(4);
  // Sample 0: (0.25 + 0.25) / 2; sample 1: (1 + 1) / 2.
  CHECK(cnnc::rt::mse(2, 2, y.data(), labels.data(), dy.data()) == 1.25f);
  CHECK(dy == std::vector<float>{-0.5f, 0.5f, 1.0f, -1.0f});
}

TEST_CASE("a label outside the outputs is refused", "[loss]") {
  const std::vector<float> y = {0, 0};
  const int32_t label = 2;
  float dy[2];
  CHECK_THROWS_WITH(cnnc::rt::mse(1, 2, y.data(), &label, dy), "label 2 is outside [0, 2)");
}

TEST_CASE("sgd with momentum and weight decay, two steps by hand", "[optimizer]") {
  cnnc_optimizer opt{};
  opt.kind = CNNC_SGD, opt.lr = 0.1f, opt.momentum = 0.9f, opt.weight_decay = 0.01f;
  float p = 1.0f, v = 0.0f;
  const float g = 0.5f;
  opt.step = 1;
  cnnc::rt::sgd_step(opt, 1, &p, &g, &v);
  // g' = 0.5 + 0.01 * 1 = 0.51; v = 0.51; p = 1 - 0.051
  CHECK(v == Approx(0.51).epsilon(1e-6));
  CHECK(p == Approx(0.949).epsilon(1e-6));
  opt.step = 2;
  cnnc::rt::sgd_step(opt, 1, &p, &g, &v);
  // g' = 0.5 + 0.00949 = 0.50949; v = 0.459 + 0.50949 = 0.96849; p = 0.949 - 0.096849
  CHECK(v == Approx(0.96849).epsilon(1e-6));
  CHECK(p == Approx(0.852151).epsilon(1e-6));
}

TEST_CASE("adam, two steps by hand, without and with weight decay", "[optimizer]") {
  cnnc_optimizer opt{};
  opt.kind = CNNC_ADAM, opt.lr = 0.1f, opt.beta1 = 0.9f, opt.beta2 = 0.999f, opt.eps = 1e-8f;
  float p = 1.0f, m = 0.0f, v = 0.0f;
  const float g = 0.5f;
  SECTION("a constant gradient moves the parameter by lr per step once bias-corrected") {
    opt.step = 1;
    cnnc::rt::adam_step(opt, 1, &p, &g, &m, &v);
    // m = 0.05, v = 0.00025; m / 0.1 = 0.5, sqrt(v / 0.001) = 0.5: p -= 0.1 * 0.5 / 0.5
    CHECK(m == Approx(0.05).epsilon(1e-6));
    // 1 - beta2 in float is 0.00099998713, not 0.001: v carries that 1.3e-5 relative error.
    CHECK(v == Approx(0.00025).epsilon(2e-5));
    CHECK(p == Approx(0.9).epsilon(1e-6));
    opt.step = 2;
    cnnc::rt::adam_step(opt, 1, &p, &g, &m, &v);
    // m = 0.095, v = 0.00049975; m / 0.19 = 0.5, sqrt(v / 0.001999) = 0.5
    CHECK(m == Approx(0.095).epsilon(1e-6));
    CHECK(p == Approx(0.8).epsilon(1e-6));
  }
  SECTION("weight decay 0.1 is added to the gradient before the moments") {
    opt.weight_decay = 0.1f;
    opt.step = 1;
    cnnc::rt::adam_step(opt, 1, &p, &g, &m, &v);
    // g' = 0.6: m = 0.06, v = 0.00036, the step is again exactly lr
    CHECK(p == Approx(0.9).epsilon(1e-6));
    opt.step = 2;
    cnnc::rt::adam_step(opt, 1, &p, &g, &m, &v);
    // g' = 0.59: m = 0.113, v = 0.00070774; 0.1 * (0.113 / 0.19) / sqrt(0.00070774 / 0.001999)
    CHECK(m == Approx(0.113).epsilon(1e-6));
    CHECK(v == Approx(0.00070774).epsilon(2e-5));
    CHECK(p == Approx(0.80004734).epsilon(1e-6));
  }
}
