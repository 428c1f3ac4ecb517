// Dropout: the ABI's mask, the keep rate, the scale, reproducibility, and backward by differences.
#include "generic/layers.hpp"
#include "support.hpp"

using cnnc::test::SpecBuilder;

namespace {

std::vector<float> drop(const cnnc_layer& l, int32_t n, const cnnc::rt::DropoutKey& key,
                        const std::vector<float>& x) {
  std::vector<float> y(x.size());
  cnnc::rt::dropout_forward(l, n, key, x.data(), y.data());
  return y;
}

}  // namespace

TEST_CASE("dropout follows the ABI's mask element by element", "[dropout]") {
  const cnnc_layer l = SpecBuilder(3, 4, 5).dropout(0.25f).build().layers[0];
  const cnnc::rt::DropoutKey key{0x123456789abcdefull, 2, 40, 6};
  const std::vector<float> x(2 * 60, 1.0f);
  const std::vector<float> y = drop(l, 2, key, x);
  const uint32_t threshold = cnnc_dropout_threshold(0.25f);
  for (uint32_t i = 0; i < 2; ++i) {
    // Sample i of the slice is sample 40 + i of the epoch; e indexes the sample's [H][W][C].
    const uint32_t k = cnnc_dropout_key(key.seed, 2, 40 + i, 6);
    for (uint32_t e = 0; e < 60; ++e) {
      const float expected = cnnc_dropout_bits(k, e) >= threshold ? 1.0f / 0.75f : 0.0f;
      INFO("sample " << i << " element " << e);
      REQUIRE(y[i * 60 + e] == expected);
    }
  }
}

TEST_CASE("dropout keeps about 1 - rate of the elements, scaled by 1 / (1 - rate)", "[dropout]") {
  const cnnc_layer l = SpecBuilder(100, 100, 10).dropout(0.3f).build().layers[0];
  const std::vector<float> x(100000, 2.0f);
  const std::vector<float> y = drop(l, 1, {1, 0, 0, 0}, x);
  size_t kept = 0;
  for (float v : y) {
    if (v == 0.0f) continue;
    ++kept;
    REQUIRE(v == Approx(2.0f / 0.7f));
  }
  // Binomial(1e5, 0.7) has a standard deviation of 145: 0.005 is more than 3 of them.
  CHECK(double(kept) / 1e5 == Approx(0.7).margin(0.005));
}

TEST_CASE("dropout masks repeat for the same key and change with the epoch", "[dropout]") {
  const cnnc_layer l = SpecBuilder(8, 8, 4).dropout(0.5f).build().layers[0];
  const std::vector<float> x(256, 1.0f);
  const std::vector<float> a = drop(l, 1, {7, 1, 3, 2}, x);
  CHECK(drop(l, 1, {7, 1, 3, 2}, x) == a);
  CHECK(drop(l, 1, {7, 2, 3, 2}, x) != a);
  CHECK(drop(l, 1, {7, 1, 4, 2}, x) != a);
  CHECK(drop(l, 1, {7, 1, 3, 5}, x) != a);
  CHECK(drop(l, 1, {8, 1, 3, 2}, x) != a);
}

TEST_CASE("dropout backward matches finite differences for a fixed mask", "[dropout]") {
  const cnnc_layer l = SpecBuilder(3, 3, 5).dropout(0.4f).build().layers[0];
  const cnnc::rt::DropoutKey key{99, 4, 0, 1};
  cnnc::test::Rng rng(3);
  std::vector<float> x = rng.vec(90);
  const std::vector<float> g = rng.vec(90);
  std::vector<float> dx(90);
  cnnc::rt::dropout_backward(l, 2, key, g.data(), dx.data());
  cnnc::test::check_gradient(
      "dx", x, dx, [&] { return cnnc::test::dot(g, drop(l, 2, key, x)); }, 0.05f, 1e-4, 1e-4);
}
