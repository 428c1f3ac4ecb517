// Pooling: hand-computed forward and backward, and backward against finite differences.
#include <algorithm>
#include <numeric>

#include "generic/layers.hpp"
#include "support.hpp"

using cnnc::test::SpecBuilder;

namespace {

cnnc_layer pool_layer(int32_t kind, int32_t h, int32_t w, int32_t c, int32_t r, int32_t s,
                      int32_t sh, int32_t sw) {
  return SpecBuilder(h, w, c).pool(kind, r, s, sh, sw).build().layers[0];
}

std::vector<float> pool_forward(const cnnc_layer& l, int32_t n, const std::vector<float>& x) {
  std::vector<float> y(size_t(n) * l.out_h * l.out_w * l.out_c);
  if (l.kind == CNNC_MAXPOOL)
    cnnc::rt::maxpool_forward(l, n, x.data(), y.data());
  else
    cnnc::rt::avgpool_forward(l, n, x.data(), y.data());
  return y;
}

std::vector<float> pool_backward(const cnnc_layer& l, int32_t n, const std::vector<float>& x,
                                 const std::vector<float>& dy) {
  std::vector<float> dx(x.size(), -1.0f);
  if (l.kind == CNNC_MAXPOOL)
    cnnc::rt::maxpool_backward(l, n, x.data(), dy.data(), dx.data());
  else
    cnnc::rt::avgpool_backward(l, n, dy.data(), dx.data());
  return dx;
}

// Values 0.01 apart in shuffled order: no ties, and a step of 0.002 never changes which element
// of a window is the maximum, so max pooling is linear around x and differences are exact.
void check_pool_backward(const cnnc_layer& l, int32_t n) {
  const size_t count = size_t(n) * l.in_h * l.in_w * l.in_c;
  std::vector<float> x(count);
  std::iota(x.begin(), x.end(), 0.0f);
  cnnc::test::Rng rng(count);
  for (size_t i = count - 1; i > 0; --i) std::swap(x[i], x[rng.next() % (i + 1)]);
  for (float& v : x) v = v * 0.01f - 1.0f;
  const std::vector<float> g = rng.vec(size_t(n) * l.out_h * l.out_w * l.out_c);
  const std::vector<float> dx = pool_backward(l, n, x, g);
  cnnc::test::check_gradient(
      "dx", x, dx, [&] { return cnnc::test::dot(g, pool_forward(l, n, x)); }, 0.002f, 1e-3, 1e-3);
}

}  // namespace

TEST_CASE("pool forward and backward on a 4x4 ramp", "[pool]") {
  std::vector<float> x(16);
  std::iota(x.begin(), x.end(), 1.0f);
  const std::vector<float> dy = {1, 2, 3, 4};
  SECTION("max 2x2 stride 2 takes the bottom-right of each window and routes dy back there") {
    const cnnc_layer l = pool_layer(CNNC_MAXPOOL, 4, 4, 1, 2, 2, 2, 2);
    CHECK(pool_forward(l, 1, x) == std::vector<float>{6, 8, 14, 16});
    CHECK(pool_backward(l, 1, x, dy) ==
          std::vector<float>{0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4});
  }
  SECTION("average 2x2 stride 2 spreads a quarter of dy over each window") {
    const cnnc_layer l = pool_layer(CNNC_AVGPOOL, 4, 4, 1, 2, 2, 2, 2);
    CHECK(pool_forward(l, 1, x) == std::vector<float>{3.5f, 5.5f, 11.5f, 13.5f});
    CHECK(pool_backward(l, 1, x, dy) == std::vector<float>{0.25f, 0.25f, 0.5f, 0.5f,  //
                                                           0.25f, 0.25f, 0.5f, 0.5f,  //
                                                           0.75f, 0.75f, 1.0f, 1.0f,  //
                                                           0.75f, 0.75f, 1.0f, 1.0f});
  }
  SECTION("max 3x3 stride 1 overlaps: one input is the maximum of several windows") {
    const cnnc_layer l = pool_layer(CNNC_MAXPOOL, 4, 4, 1, 3, 3, 1, 1);
    std::vector<float> peak(16, 0.0f);
    peak[5] = 9.0f;  // (1,1) lies in all four 3x3 windows
    CHECK(pool_forward(l, 1, peak) == std::vector<float>{9, 9, 9, 9});
    CHECK(pool_backward(l, 1, peak, dy)[5] == 10.0f);
  }
  SECTION("ties go to the first maximum in window order") {
    const cnnc_layer l = pool_layer(CNNC_MAXPOOL, 2, 2, 1, 2, 2, 2, 2);
    const std::vector<float> flat = {5, 5, 5, 5};
    CHECK(pool_backward(l, 1, flat, {1.0f}) == std::vector<float>{1, 0, 0, 0});
  }
}

TEST_CASE("pool backward matches finite differences", "[pool]") {
  SECTION("max 2x2 stride 2, odd width drops the last column") {
    check_pool_backward(pool_layer(CNNC_MAXPOOL, 6, 5, 3, 2, 2, 2, 2), 2);
  }
  SECTION("max 3x3 stride 2, overlapping windows, 5 channels") {
    check_pool_backward(pool_layer(CNNC_MAXPOOL, 7, 7, 5, 3, 3, 2, 2), 2);
  }
  SECTION("max 2x3 window, strides 1 and 2, 17 channels") {
    check_pool_backward(pool_layer(CNNC_MAXPOOL, 5, 7, 17, 2, 3, 1, 2), 1);
  }
  SECTION("average 2x2 stride 2") {
    check_pool_backward(pool_layer(CNNC_AVGPOOL, 6, 5, 3, 2, 2, 2, 2), 2);
  }
  SECTION("average 3x3 stride 2, overlapping, 16 channels") {
    check_pool_backward(pool_layer(CNNC_AVGPOOL, 7, 7, 16, 3, 3, 2, 2), 2);
  }
}
