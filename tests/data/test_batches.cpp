// test_batches.cpp: specifications of the epoch order (a permutation, fixed by seed and epoch)
// and of the uint8 -> float batch conversion.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

#include "data/batches.hpp"

using namespace cnnc::rt;

namespace {

// count images of rows x cols; pixel j of image i is (i * 7 + j) mod 256, label i mod 10.
LabeledImages synthetic(int32_t count, int32_t rows, int32_t cols) {
  LabeledImages d;
  d.count = count;
  d.rows = rows;
  d.cols = cols;
  d.pixels.resize(static_cast<size_t>(count) * rows * cols);
  for (size_t k = 0; k < d.pixels.size(); ++k) {
    const size_t i = k / (rows * cols), j = k % (rows * cols);
    d.pixels[k] = static_cast<uint8_t>((i * 7 + j) % 256);
  }
  for (int32_t i = 0; i < count; ++i) d.labels.push_back(static_cast<uint8_t>(i % 10));
  return d;
}

}  // namespace

TEST_CASE("the epoch order is a permutation", "[batches][shuffle]") {
  for (int32_t n : {1, 2, 3, 64, 1000, 60000}) {
    auto order = epoch_order(n, 1, 0);
    REQUIRE(order.size() == static_cast<size_t>(n));
    std::sort(order.begin(), order.end());
    std::vector<int32_t> iota(static_cast<size_t>(n));
    std::iota(iota.begin(), iota.end(), 0);
    CHECK(order == iota);
  }
  CHECK(epoch_order(0, 1, 0).empty());
}

TEST_CASE("the epoch order depends on seed and epoch only", "[batches][shuffle]") {
  CHECK(epoch_order(1000, 7, 3) == epoch_order(1000, 7, 3));
  CHECK(epoch_order(1000, 7, 3) != epoch_order(1000, 7, 4));
  CHECK(epoch_order(1000, 7, 3) != epoch_order(1000, 8, 3));
  // Shuffled, not the identity.
  auto order = epoch_order(1000, 7, 3);
  CHECK_FALSE(std::is_sorted(order.begin(), order.end()));
}

TEST_CASE("the epoch order is the same on every platform", "[batches][shuffle]") {
  // Pinned so that a change of the RNG, which would change every run's results, is noticed.
  const auto order = epoch_order(8, 42, 1);
  INFO("order: " << Catch::Detail::stringify(order));
  CHECK(order == std::vector<int32_t>{7, 4, 5, 1, 6, 3, 2, 0});
}

TEST_CASE("each position of a small shuffle takes every value about equally often",
          "[batches][shuffle]") {
  int hits[4][4] = {};
  for (uint32_t epoch = 0; epoch < 4000; ++epoch) {
    auto order = epoch_order(4, 5, epoch);
    for (int i = 0; i < 4; ++i) ++hits[i][order[i]];
  }
  for (auto& row : hits) {
    for (int h : row) CHECK((h > 850 && h < 1150));  // 1000 expected, sd about 27
  }
}

TEST_CASE("a batch holds the chosen images as floats p / 255 and their labels", "[batches]") {
  auto data = synthetic(10, 3, 2);
  const std::vector<int32_t> indices{4, 0, 9};
  std::vector<float> x(indices.size() * 6, -1.0f);
  std::vector<int32_t> y(indices.size(), -1);
  prepare_batch(data, indices, x.data(), y.data());
  for (size_t b = 0; b < indices.size(); ++b) {
    for (int j = 0; j < 6; ++j) {
      const int p = (indices[b] * 7 + j) % 256;
      CHECK(x[b * 6 + j] == static_cast<float>(p) / 255.0f);
    }
  }
  CHECK(y == std::vector<int32_t>{4, 0, 9});
  CHECK(pixel_to_float(0) == 0.0f);
  CHECK(pixel_to_float(255) == 1.0f);
  CHECK(pixel_to_float(51) == 0.2f);
}

TEST_CASE("every byte value converts to p / 255 exactly, whatever its place in a row",
          "[batches]") {
  // Every value through the 16-byte (AVX-512) and 4-byte (SSE2) loops, and rows short enough for
  // the 4-byte loop and the scalar tail alone.
  std::vector<uint8_t> bytes(3 * 256 + 7);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 17 % 256);
  for (size_t n : {bytes.size(), size_t{15}, size_t{3}}) {
    std::vector<float> out(n, -1.0f);
    pixels_to_floats(bytes.data(), n, out.data());
    for (size_t i = 0; i < n; ++i) {
      INFO("byte " << i << " of " << n << ": " << int{bytes[i]});
      CHECK(out[i] == static_cast<float>(bytes[i]) / 255.0f);
    }
  }
}
