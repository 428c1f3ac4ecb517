// Convolution: forward on hand-computed Sobel filters, backward against finite differences.
#include <algorithm>

#include "generic/gemm.hpp"
#include "generic/layers.hpp"
#include "support.hpp"

using cnnc::test::Pads;
using cnnc::test::SpecBuilder;

namespace {

struct ConvRun {
  cnnc_layer l;
  int32_t n;
  cnnc::test::AlignedBuffer col, pack;

  ConvRun(const cnnc_layer& layer, int32_t samples)
      : l(layer),
        n(samples),
        col(cnnc::rt::conv_col_floats(layer) + 1),
        pack(cnnc::rt::kGemmPackFloats) {}
  int64_t in_size() const { return int64_t{n} * l.in_h * l.in_w * l.in_c; }
  int64_t out_size() const { return int64_t{n} * l.out_h * l.out_w * l.out_c; }
  std::vector<float> forward(const std::vector<float>& x, const std::vector<float>& w,
                             const std::vector<float>& b) {
    std::vector<float> y(static_cast<size_t>(out_size()));
    cnnc::rt::conv_forward(l, n, x.data(), w.data(), b.data(), y.data(), col.get(), pack.get());
    return y;
  }
};

cnnc_layer conv_layer(int32_t h, int32_t w, int32_t c, int32_t k, int32_t r, int32_t s, int32_t sh,
                      int32_t sw, Pads p) {
  return SpecBuilder(h, w, c).conv(k, r, s, sh, sw, p).build().layers[0];
}

// L = sum g * conv(x, w, b) is linear in each of x, w, b, so central differences are exact up
// to float rounding and a large step keeps that rounding small relative to the step.
void check_conv_backward(const cnnc_layer& layer, int32_t n) {
  cnnc::test::Rng rng(uint64_t(layer.kernel_h * 131 + layer.kernel_w * 17 + layer.in_c +
                               layer.out_c * 7 + layer.stride_h));
  ConvRun run(layer, n);
  std::vector<float> x = rng.vec(size_t(run.in_size()));
  std::vector<float> w = rng.vec(size_t(layer.weight_count));
  std::vector<float> b = rng.vec(size_t(layer.bias_count));
  const std::vector<float> g = rng.vec(size_t(run.out_size()));
  std::vector<float> dx(x.size()), dw(w.size()), db(b.size());
  cnnc::rt::conv_backward(layer, n, x.data(), w.data(), g.data(), dx.data(), dw.data(), db.data(),
                          run.col.get(), run.pack.get());
  auto loss = [&] { return cnnc::test::dot(g, run.forward(x, w, b)); };
  cnnc::test::check_gradient("dx", x, dx, loss, 0.05f, 2e-4, 1e-3);
  cnnc::test::check_gradient("dw", w, dw, loss, 0.05f, 2e-4, 1e-3);
  cnnc::test::check_gradient("db", b, db, loss, 0.05f, 2e-4, 1e-3);
}

}  // namespace

TEST_CASE("conv forward: Sobel filters on a 4x4 ramp, valid and same padding", "[conv]") {
  // x[h][w] = 4h + w + 1: every horizontal step adds 1, every vertical step 4.
  std::vector<float> x(16);
  for (int i = 0; i < 16; ++i) x[size_t(i)] = float(i + 1);
  // Filter 0 is Sobel-x (right column minus left), filter 1 Sobel-y (bottom row minus top).
  const std::vector<float> w = {-1, 0,  1,  -2, 0, 2, -1, 0, 1,  //
                                -1, -2, -1, 0,  0, 0, 1,  2, 1};
  const std::vector<float> b = {1.0f, -2.0f};

  SECTION("valid: every window sees the same ramp, 4 * 2 = 8 across and 4 * 8 = 32 down") {
    ConvRun run(conv_layer(4, 4, 1, 2, 3, 3, 1, 1, {}), 1);
    CHECK(run.forward(x, w, b) == std::vector<float>{9, 30, 9, 30, 9, 30, 9, 30});
  }
  SECTION("same: the top-left window hangs over zero padding") {
    ConvRun run(conv_layer(4, 4, 1, 2, 3, 3, 1, 1, {1, 1, 1, 1}), 1);
    const std::vector<float> y = run.forward(x, w, b);
    REQUIRE(y.size() == 32);
    // Sobel-x at (0,0): 2*x[0][1] + 1*x[1][1] = 2*2 + 6 = 10; Sobel-y: 2*x[1][0] + x[1][1] = 16.
    CHECK(y[0] == 10.0f + 1.0f);
    CHECK(y[1] == 16.0f - 2.0f);
    // An interior position is the valid result.
    CHECK(y[(1 * 4 + 1) * 2] == 9.0f);
    CHECK(y[(1 * 4 + 1) * 2 + 1] == 30.0f);
  }
  SECTION("stride 2 with padding only at the bottom and right, as pad=same on an even input") {
    ConvRun run(conv_layer(4, 4, 1, 2, 3, 3, 2, 2, {0, 0, 1, 1}), 1);
    const std::vector<float> y = run.forward(x, w, b);
    REQUIRE(y.size() == 8);
    CHECK(y[0] == 9.0f);
    // (1,1) covers rows 2..4 and columns 2..4, the last of each being padding:
    // Sobel-x = -(x[2][2] + 2*x[3][2]) = -(11 + 30) = -41.
    CHECK(y[(1 * 2 + 1) * 2] == -41.0f + 1.0f);
  }
}

TEST_CASE("conv backward matches finite differences", "[conv]") {
  SECTION("1x1 pointwise, 3 channels to 5 filters") {
    check_conv_backward(conv_layer(5, 4, 3, 5, 1, 1, 1, 1, {}), 2);
  }
  SECTION("1x1 with stride 2, so im2col is not the identity") {
    check_conv_backward(conv_layer(5, 6, 3, 5, 1, 1, 2, 2, {}), 2);
  }
  SECTION("3x3 same padding, 1 channel to 16 filters") {
    check_conv_backward(conv_layer(6, 7, 1, 16, 3, 3, 1, 1, {1, 1, 1, 1}), 2);
  }
  SECTION("3x3 stride 2, asymmetric same-style padding") {
    check_conv_backward(conv_layer(8, 8, 3, 5, 3, 3, 2, 2, {0, 0, 1, 1}), 2);
  }
  SECTION("5x5 stride 2, asymmetric explicit padding, 3 channels to 17 filters") {
    check_conv_backward(conv_layer(9, 8, 3, 17, 5, 5, 2, 2, {1, 2, 2, 1}), 2);
  }
  SECTION("2x3 kernel, strides 3 and 2, padding 1") {
    check_conv_backward(conv_layer(8, 7, 3, 5, 2, 3, 3, 2, {1, 1, 1, 1}), 2);
  }
  SECTION("3x3 valid, 16 channels to 17 filters") {
    check_conv_backward(conv_layer(5, 5, 16, 17, 3, 3, 1, 1, {}), 2);
  }
  SECTION("5x5 valid, 17 channels to 16 filters, stride 3") {
    check_conv_backward(conv_layer(9, 10, 17, 16, 5, 5, 3, 3, {}), 1);
  }
}

TEST_CASE("conv backward skips what it is not asked for", "[conv]") {
  const cnnc_layer layer = conv_layer(5, 5, 3, 4, 3, 3, 1, 1, {1, 1, 1, 1});
  ConvRun run(layer, 1);
  cnnc::test::Rng rng(9);
  const std::vector<float> x = rng.vec(75), w = rng.vec(size_t(layer.weight_count)),
                           dy = rng.vec(100);
  std::vector<float> dw(w.size(), 0.0f);
  cnnc::rt::conv_backward(layer, 1, x.data(), w.data(), dy.data(), nullptr, dw.data(), nullptr,
                          run.col.get(), run.pack.get());
  CHECK(std::any_of(dw.begin(), dw.end(), [](float v) { return v != 0.0f; }));
}
