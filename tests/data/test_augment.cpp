// test_augment.cpp: specifications of augmentation: the draws (ranges, determinism, keying) and
// the warp (identity, exact shifts, a quarter turn, zoom about the centre).
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "data/augment.hpp"
#include "data/batches.hpp"

using namespace cnnc::rt;

namespace {

std::vector<float> warp(const std::vector<uint8_t>& src, int32_t rows, int32_t cols,
                        const AugmentParams& p) {
  std::vector<float> out(src.size(), -1.0f);
  warp_image(src.data(), rows, cols, p, out.data());
  return out;
}

std::vector<uint8_t> ramp(int32_t rows, int32_t cols) {
  std::vector<uint8_t> img(static_cast<size_t>(rows) * cols);
  for (size_t k = 0; k < img.size(); ++k) img[k] = static_cast<uint8_t>(1 + (k * 37) % 255);
  return img;
}

LabeledImages one_image(std::vector<uint8_t> pixels, int32_t rows, int32_t cols) {
  LabeledImages d;
  d.count = 1;
  d.rows = rows;
  d.cols = cols;
  d.pixels = std::move(pixels);
  d.labels = {3};
  return d;
}

}  // namespace

TEST_CASE("identity parameters reproduce prepare_batch exactly", "[augment]") {
  for (auto [rows, cols] : {std::pair{28, 28}, std::pair{5, 8}, std::pair{1, 1}}) {
    auto img = ramp(rows, cols);
    auto out = warp(img, rows, cols, AugmentParams{});
    for (size_t k = 0; k < img.size(); ++k) CHECK(out[k] == pixel_to_float(img[k]));
  }
}

TEST_CASE("a spec of zeros draws the identity and leaves the batch unchanged", "[augment]") {
  const AugmentSpec none;
  CHECK_FALSE(none.enabled());
  const AugmentParams p = draw_augment(none, 1, 2, 3);
  CHECK(p.dx == 0);
  CHECK(p.dy == 0);
  CHECK(p.angle == 0.0f);
  CHECK(p.zoom == 1.0f);

  auto data = one_image(ramp(28, 28), 28, 28);
  const std::vector<int32_t> idx{0};
  std::vector<float> plain(784), augmented(784);
  int32_t y1 = -1, y2 = -1;
  prepare_batch(data, idx, plain.data(), &y1);
  prepare_augmented_batch(data, idx, none, 1, 2, augmented.data(), &y2);
  CHECK(plain == augmented);
  CHECK(y2 == 3);
}

TEST_CASE("a shift moves a bright pixel by exactly the drawn amount", "[augment]") {
  const int32_t rows = 28, cols = 28, y0 = 13, x0 = 10;
  std::vector<uint8_t> img(rows * cols, 0);
  img[y0 * cols + x0] = 255;
  auto data = one_image(img, rows, cols);
  const AugmentSpec spec{3, 0, 0};
  std::set<std::pair<int, int>> seen;
  for (uint32_t epoch = 0; epoch < 1000; ++epoch) {
    const AugmentParams p = draw_augment(spec, 9, epoch, 0);
    REQUIRE(std::abs(p.dx) <= 3);
    REQUIRE(std::abs(p.dy) <= 3);
    seen.insert({p.dx, p.dy});
    std::vector<float> want(rows * cols, 0.0f), out(rows * cols);
    want[(y0 + p.dy) * cols + x0 + p.dx] = 1.0f;
    int32_t label = -1;
    prepare_augmented_batch(data, std::vector<int32_t>{0}, spec, 9, epoch, out.data(), &label);
    INFO("epoch " << epoch << " dx " << p.dx << " dy " << p.dy);
    REQUIRE(out == want);
  }
  CHECK(seen.size() == 49);  // every shift in [-3, 3]^2 turns up
}

TEST_CASE("shifted content leaves the frame and zeros come in", "[augment]") {
  std::vector<uint8_t> img(9, 255);
  auto out = warp(img, 3, 3, AugmentParams{2, -1, 0, 1});
  const std::vector<float> want{0, 0, 1, 0, 0, 1, 0, 0, 0};
  CHECK(out == want);
}

TEST_CASE("a quarter turn rotates a known image counter-clockwise", "[augment]") {
  for (int32_t n : {5, 6}) {
    INFO("size " << n);
    auto img = ramp(n, n);
    auto out = warp(img, n, n, AugmentParams{0, 0, 90, 1});
    // Counter-clockwise as displayed: the top row becomes the left column, read upwards.
    for (int32_t y = 0; y < n; ++y) {
      for (int32_t x = 0; x < n; ++x) {
        const float want = pixel_to_float(img[x * n + (n - 1 - y)]);
        CHECK(out[y * n + x] == Approx(want).margin(1e-5));
      }
    }
    auto back = warp(img, n, n, AugmentParams{0, 0, -90, 1});
    for (int32_t y = 0; y < n; ++y) {
      for (int32_t x = 0; x < n; ++x) {
        CHECK(back[y * n + x] == Approx(pixel_to_float(img[(n - 1 - x) * n + y])).margin(1e-5));
      }
    }
  }
}

TEST_CASE("zoom scales about the centre and interpolates bilinearly", "[augment]") {
  // A 1x3 row 0, 200, 0 zoomed by 2: source x = (x - 1) / 2 + 1, so the outer pixels sample
  // halfway between the centre and the edge.
  std::vector<uint8_t> img{0, 200, 0};
  auto out = warp(img, 1, 3, AugmentParams{0, 0, 0, 2});
  CHECK(out[0] == Approx(100.0f / 255.0f));
  CHECK(out[1] == pixel_to_float(200));
  CHECK(out[2] == Approx(100.0f / 255.0f));
  // Zoom 0.5 shrinks it: the outer pixels sample outside the source and get zero.
  out = warp(img, 1, 3, AugmentParams{0, 0, 0, 0.5f});
  CHECK(out == std::vector<float>{0.0f, pixel_to_float(200), 0.0f});
}

TEST_CASE("draws are fixed by (seed, epoch, sample) and stay in range", "[augment]") {
  const AugmentSpec spec{2, 15, 0.1f};
  CHECK(spec.enabled());
  std::set<float> angles;
  for (uint32_t sample = 0; sample < 1000; ++sample) {
    const AugmentParams a = draw_augment(spec, 4, 1, sample);
    const AugmentParams b = draw_augment(spec, 4, 1, sample);
    REQUIRE((a.dx == b.dx && a.dy == b.dy && a.angle == b.angle && a.zoom == b.zoom));
    REQUIRE(std::abs(a.dx) <= 2);
    REQUIRE(std::abs(a.angle) <= 15.0f);
    REQUIRE(a.zoom >= 0.9f);
    REQUIRE(a.zoom <= 1.1f);
    angles.insert(a.angle);
  }
  CHECK(angles.size() > 990);
  auto differs = [&](uint64_t seed, uint32_t epoch, uint32_t sample) {
    const AugmentParams a = draw_augment(spec, 4, 1, 7);
    const AugmentParams b = draw_augment(spec, seed, epoch, sample);
    return a.angle != b.angle || a.zoom != b.zoom;
  };
  CHECK(differs(5, 1, 7));
  CHECK(differs(4, 2, 7));
  CHECK(differs(4, 1, 8));
}

TEST_CASE("an augmented batch does not depend on batch order", "[augment]") {
  LabeledImages data;
  data.count = 3;
  data.rows = data.cols = 28;
  for (int i = 0; i < 3; ++i) {
    auto img = ramp(28, 28);
    for (auto& p : img) p = static_cast<uint8_t>(p + 11 * i);
    data.pixels.insert(data.pixels.end(), img.begin(), img.end());
    data.labels.push_back(static_cast<uint8_t>(i));
  }
  const AugmentSpec spec{2, 10, 0.1f};
  std::vector<float> a(3 * 784), b(3 * 784);
  std::vector<int32_t> la(3), lb(3);
  prepare_augmented_batch(data, std::vector<int32_t>{0, 1, 2}, spec, 1, 5, a.data(), la.data());
  prepare_augmented_batch(data, std::vector<int32_t>{2, 0, 1}, spec, 1, 5, b.data(), lb.data());
  CHECK(std::equal(a.begin(), a.begin() + 784, b.begin() + 784));
  CHECK(std::equal(a.begin() + 784, a.begin() + 1568, b.begin() + 1568));
  CHECK(std::equal(a.begin() + 1568, a.end(), b.begin()));
  CHECK(lb == std::vector<int32_t>{2, 0, 1});
}

TEST_CASE("the warp matches a direct double-precision bilinear reference", "[augment]") {
  // Rows of 28 and 13 take the vector path (with an overlapping last block), rows of 5 the
  // scalar one; all must agree with the formula of augment.hpp.
  for (auto [rows, cols] : {std::pair{28, 28}, std::pair{9, 13}, std::pair{7, 5}}) {
    auto img = ramp(rows, cols);
    for (uint32_t sample = 0; sample < 20; ++sample) {
      const AugmentParams p = draw_augment(AugmentSpec{2, 30, 0.2f}, 3, 0, sample);
      auto out = warp(img, rows, cols, p);
      const double rad = p.angle * 3.14159265358979323846 / 180.0;
      const double c = std::cos(rad) / p.zoom, s = std::sin(rad) / p.zoom;
      const double cx = (cols - 1) / 2.0, cy = (rows - 1) / 2.0;
      auto at = [&](int y, int x) {
        return y < 0 || y >= rows || x < 0 || x >= cols ? 0.0 : img[y * cols + x] / 255.0;
      };
      for (int32_t oy = 0; oy < rows; ++oy) {
        for (int32_t ox = 0; ox < cols; ++ox) {
          const double u = ox - cx - p.dx, v = oy - cy - p.dy;
          const double sx = u * c - v * s + cx, sy = u * s + v * c + cy;
          const int x0 = static_cast<int>(std::floor(sx)), y0 = static_cast<int>(std::floor(sy));
          const double fx = sx - x0, fy = sy - y0;
          const double want = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) +
                              fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
          INFO("size " << rows << "x" << cols << " sample " << sample << " at " << oy << "," << ox);
          REQUIRE(out[oy * cols + ox] == Approx(want).margin(1e-4));
        }
      }
    }
  }
}
