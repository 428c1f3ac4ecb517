// cnnc viz as a user runs it: models/edges.cnn (fixed Sobel filters, no checkpoint needed) on a
// picture of a bright square. Its filter PNGs show the Sobel kernels, its feature-map PNGs are
// the convolution computed here by hand under draw/image.hpp's grey scaling, and its page loads
// every picture in a real browser.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../read_png.hpp"
#include "../run_command.hpp"
#include "../skip.hpp"

namespace fs = std::filesystem;
using cnnc_test::Png;
using cnnc_test::read_png;

namespace {

// A 28x28 binary PGM: black, with a white square over rows and columns 8..19.
std::vector<float> square() {
  std::vector<float> x(28 * 28);
  for (int r = 8; r < 20; ++r)
    for (int c = 8; c < 20; ++c) x[r * 28 + c] = 1;
  return x;
}

// Runs cnnc viz on edges.cnn and the square once per process; returns its directory.
fs::path viz_dir() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("cnnc_test_viz_" + std::to_string(getpid()));
    fs::create_directories(d);
    std::ofstream pgm(d / "square.pgm", std::ios::binary);
    pgm << "P5\n28 28\n255\n";
    for (float v : square()) pgm.put(static_cast<char>(v > 0 ? 255 : 0));
    pgm.close();
    const auto r =
        cnnc_test::run_cnnc("viz models/edges.cnn --image '" + (d / "square.pgm").string() +
                            "' --out '" + (d / "viz").string() + "'");
    INFO(r.out);
    REQUIRE(r.status == 0);
    CHECK(cnnc_test::contains(r.out, "wrote"));
    return d / "viz";
  }();
  return dir;
}

const float kSobel[2][9] = {{-1, 0, 1, -2, 0, 2, -1, 0, 1}, {-1, -2, -1, 0, 0, 0, 1, 2, 1}};

}  // namespace

TEST_CASE("cnnc viz edges.cnn draws the two Sobel kernels in diverging colours") {
  for (int k = 0; k < 2; ++k) {
    const Png p = read_png(viz_dir() / ("filters_conv1_k" + std::to_string(k) + "_c0.png"));
    REQUIRE(p.width == 96);  // 3x3, 32 pixels a weight
    REQUIRE(p.height == 96);
    for (int i = 0; i < 9; ++i) {
      // One scale for the layer: max |w| = 2, so -2 is blue, -1 half blue, 0 white, ...
      const double t = kSobel[k][i] / 2.0;
      const int fade = static_cast<int>(std::lround(255 * (1 - std::abs(t))));
      const uint8_t* px = p.at((i % 3) * 32 + 16, (i / 3) * 32 + 16);
      INFO("filter " << k << " weight " << i);
      CHECK(int{px[0]} == (t >= 0 ? 255 : fade));
      CHECK(int{px[1]} == fade);
      CHECK(int{px[2]} == (t >= 0 ? fade : 255));
    }
  }
}

TEST_CASE("cnnc viz's feature-map PNGs are the convolution under the grey scaling") {
  const std::vector<float> x = square();
  for (int k = 0; k < 2; ++k) {
    // Cross-correlation with zero padding 1 (pad=same), no bias, no activation.
    std::vector<float> y(28 * 28);
    for (int p = 0; p < 28; ++p)
      for (int q = 0; q < 28; ++q)
        for (int r = 0; r < 3; ++r)
          for (int s = 0; s < 3; ++s) {
            const int h = p + r - 1, w = q + s - 1;
            if (h >= 0 && h < 28 && w >= 0 && w < 28)
              y[p * 28 + q] += kSobel[k][r * 3 + s] * x[h * 28 + w];
          }
    const auto [lo, hi] = std::minmax_element(y.begin(), y.end());
    const Png png = read_png(viz_dir() / ("maps_conv1_c" + std::to_string(k) + ".png"));
    REQUIRE(png.width == 112);  // 28 pixels scaled 4 times to about 112
    for (int p = 0; p < 28; ++p)
      for (int q = 0; q < 28; ++q) {
        const long want = std::lround(255.0 * (y[p * 28 + q] - *lo) / (*hi - *lo));
        INFO("map " << k << " at " << p << "," << q);
        REQUIRE(png.at(q * 4 + 3, p * 4 + 3)[0] == want);
      }
  }
}

TEST_CASE("cnnc viz's index.html loads every picture in headless chromium") {
  if (std::system("command -v chromium >/dev/null 2>&1") != 0)
    CNNC_SKIP("chromium", "no chromium on PATH (scripts/setup installs it)");
  const fs::path page = viz_dir() / "index.html";
  const fs::path profile = viz_dir().parent_path() / "chromium-profile";
  const fs::path shot = fs::path(CNNC_BINARY_DIR) / "tests" / "viz" / "edges_viz.png";
  const std::string chromium =
      "chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
      "--disable-background-networking --disable-component-update --disable-sync "
      "--user-data-dir='" +
      profile.string() + "' ";
  const auto dom = cnnc_test::run_apart(
      chromium + "--virtual-time-budget=5000 --dump-dom 'file://" + page.string() + "'");
  INFO(dom.err);
  REQUIRE(dom.status == 0);
  CHECK(cnnc_test::contains(dom.out, "<title>all images loaded</title>"));
  const auto s = cnnc_test::run_apart(chromium + "--window-size=1200,1600 --screenshot='" +
                                      shot.string() + "' 'file://" + page.string() + "'");
  INFO(s.err);
  CHECK(s.status == 0);
  CHECK(fs::file_size(shot) > 0);
}

TEST_CASE(
    "cnnc viz with a trained checkpoint adds the curves, the confusion matrix, the mistakes") {
  if (!cnnc_test::have_mnist()) CNNC_SKIP("data", "no MNIST in data/mnist (scripts/setup)");
  const fs::path run = viz_dir().parent_path() / "lenet5";
  const auto t = cnnc_test::run_cnnc(
      "train models/lenet5.cnn --engine generic --epochs 2 --limit 500 --out '" + run.string() +
      "'");
  INFO(t.out);
  REQUIRE(t.status == 0);
  const auto v = cnnc_test::run_cnnc("viz models/lenet5.cnn --index 0 --weights '" +
                                     (run / "checkpoint.bin").string() + "' --out '" +
                                     (run / "viz").string() + "'");
  INFO(v.out);
  REQUIRE(v.status == 0);
  for (const char* file : {"loss.png", "accuracy.png", "confusion.png", "mistakes.png"})
    CHECK(read_png(run / "viz" / file).width > 0);
  // The input and seven other test images, each beside its saliency map: two rows of eight.
  const Png saliency = read_png(run / "viz" / "saliency.png");
  CHECK(saliency.width > 8 * 84);
  CHECK(saliency.height > 2 * 84);
  CHECK_FALSE(fs::exists(viz_dir() / "saliency.png"));  // edges.cnn's outputs are not classes
  const std::string html = [&] {
    std::ifstream f(run / "viz" / "index.html");
    return std::string(std::istreambuf_iterator<char>(f), {});
  }();
  CHECK(cnnc_test::contains(html, "<img src=\"confusion.png\""));

  // A history.csv that is not one names the file, the line and the column.
  std::ofstream(run / "history.csv") << "epoch,train_loss\n1,0.5\n2,oops\n";
  const auto bad = cnnc_test::run_cnnc("viz models/lenet5.cnn --index 0 --weights '" +
                                       (run / "checkpoint.bin").string() + "' --out '" +
                                       (run / "viz2").string() + "'");
  CHECK(bad.status == 1);
  CHECK(cnnc_test::contains(bad.out,
                            "history.csv:3: column 2 ('train_loss') is not a number: 'oops'"));
}

TEST_CASE("cnnc viz shows what augment does when the model asks for it, and only then") {
  CHECK_FALSE(fs::exists(viz_dir() / "augment.png"));  // edges.cnn has no augment statement
  const fs::path dir = viz_dir().parent_path() / "augment";
  fs::create_directories(dir);
  std::ofstream(dir / "aug.cnn") << "model aug\ninput 28x28x1\n"
                                    "conv 2 3x3 pad=same weights=sobel frozen\n"
                                    "augment shift=2 rotate=10\n";
  const auto r = cnnc_test::run_cnnc("viz '" + (dir / "aug.cnn").string() + "' --image '" +
                                     (viz_dir().parent_path() / "square.pgm").string() +
                                     "' --out '" + (dir / "viz").string() + "'");
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK(read_png(dir / "viz" / "augment.png").height > 2 * 84);  // two rows of 16 warped copies
}
