// draw/ as specified: a tensor image's pixels are the tensor under the scaling image.hpp
// documents (read back from the PNG file with stb_image), and every chart is a PNG of the size
// its layout asks for.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../read_png.hpp"
#include "../run_command.hpp"
#include "draw/charts.hpp"
#include "draw/image.hpp"

namespace fs = std::filesystem;
using namespace cnnc::draw;
using cnnc_test::read_png;

namespace {

fs::path scratch(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("cnnc_test_draw_" + std::to_string(getpid()));
  fs::create_directories(dir);
  return dir / name;
}

}  // namespace

TEST_CASE("a grey tensor image shows every value as a scale x scale block of its grey level") {
  // 2 rows x 3 columns from -1 to 4: lo -1, hi 4, so v -> round(255 (v + 1) / 5).
  const std::vector<float> x = {-1, 0, 1, 2, 3, 4};
  const fs::path path = scratch("grey.png");
  write_png(path, tensor_image(x, 2, 3, ColorMap::grey, 4));
  const cnnc_test::Png d = read_png(path);
  REQUIRE(d.width == 12);
  REQUIRE(d.height == 8);
  for (int y = 0; y < 8; ++y)
    for (int c = 0; c < 12; ++c) {
      const int want = static_cast<int>(std::lround(255 * (x[(y / 4) * 3 + c / 4] + 1) / 5));
      INFO("pixel " << c << "," << y);
      REQUIRE(d.at(c, y)[0] == want);
      REQUIRE(d.at(c, y)[1] == want);
      REQUIRE(d.at(c, y)[2] == want);
    }
}

TEST_CASE("a diverging tensor image is white at 0, red at +max and blue at -max") {
  const std::vector<float> x = {-2, -1, 0, 1, 2, 0.5f};
  const fs::path path = scratch("diverging.png");
  write_png(path, tensor_image(x, 1, 6, ColorMap::diverging, 1));
  const cnnc_test::Png d = read_png(path);
  auto is = [&](int c, int r, int g, int b) {
    INFO("pixel " << c);
    CHECK(int{d.at(c, 0)[0]} == r);
    CHECK(int{d.at(c, 0)[1]} == g);
    CHECK(int{d.at(c, 0)[2]} == b);
  };
  is(0, 0, 0, 255);
  is(1, 128, 128, 255);  // t = -0.5: 255 * 0.5 = 127.5 rounds to 128
  is(2, 255, 255, 255);
  is(3, 255, 128, 128);
  is(4, 255, 0, 0);
  is(5, 255, 191, 191);  // t = 0.25: 255 * 0.75 = 191.25
}

TEST_CASE("a tensor image of the wrong size is refused with both sizes") {
  const std::vector<float> x(5);
  CHECK_THROWS_WITH(tensor_image(x, 2, 3, ColorMap::grey, 1),
                    "tensor_image: a map of 5 values is not 2x3");
}

TEST_CASE("charts are PNG files of the size their layout asks for") {
  const fs::path lines = scratch("lines.png");
  write_line_chart(lines,
                   {"loss",
                    "epoch",
                    "cross-entropy",
                    {{"train", {1, 2, 3}, {0.9, 0.4, 0.3}, {31, 119, 180}},
                     {"test", {1, 2, 3}, {0.8, 0.5, 0.35}, {255, 127, 14}}}},
                   640, 360);
  CHECK(read_png(lines).width == 640);
  CHECK(read_png(lines).height == 360);

  const fs::path matrix = scratch("matrix.png");
  write_matrix(matrix, {"confusion", "true", "predicted", {"0", "1"}, {"0", "1"}, {9, 1, 2, 8}});
  CHECK(read_png(matrix).width == 90 + 2 * 46 + 20);

  const fs::path grid = scratch("grid.png");
  const std::vector<float> x = {0, 1, 2, 3};
  write_grid(grid, "two maps",
             {{tensor_image(x, 2, 2, ColorMap::grey, 10), "a"},
              {tensor_image(x, 2, 2, ColorMap::grey, 10), "b"}},
             2, ScaleBar{ColorMap::diverging, 0, 3});
  CHECK(read_png(grid).height > 20);
  CHECK_THROWS_WITH(write_grid(scratch("empty.png"), "none", {}, 2),
                    Catch::Contains("a grid needs images"));

  // Panels side by side; each point in the palette's next colour, its label beside it.
  const fs::path scatter = scratch("scatter.png");
  write_scatter_charts(scatter,
                       {{"by size",
                         "parameters",
                         "accuracy",
                         true,
                         {{"a", 1e4, 0.9, 0.88, 0.92}, {"b", 1e6, 0.95, 0.95, 0.95}}},
                        {"by time", "seconds", "accuracy", false, {{"a", 2, 0.9, 0.9, 0.9}}}},
                       300, 200);
  const cnnc_test::Png sp = read_png(scatter);
  CHECK(sp.width == 600);
  CHECK(sp.height == 200);
  auto has = [&](int from, int to, uint8_t r, uint8_t g, uint8_t b) {
    for (int row = 0; row < sp.height; ++row)
      for (int col = from; col < to; ++col)
        if (sp.at(col, row)[0] == r && sp.at(col, row)[1] == g && sp.at(col, row)[2] == b)
          return true;
    return false;
  };
  CHECK(has(0, 300, 31, 119, 180));    // the first point of the first panel
  CHECK(has(0, 300, 214, 39, 40));     // its second
  CHECK(has(300, 600, 31, 119, 180));  // the second panel's only point
  CHECK_FALSE(has(300, 600, 214, 39, 40));
  CHECK_THROWS_WITH(
      write_scatter_charts(scratch("none.png"), {{"empty", "x", "y", false, {}}}, 300, 200),
      Catch::Contains("a scatter chart with no points"));
  fs::remove_all(lines.parent_path());
}

#ifdef BENCH_CHART_EXE
TEST_CASE("bench_chart draws the chart from a line of cnnc bench --json") {
  const fs::path json = scratch("lenet5.json"), png = scratch("chart.png");
  std::ofstream(json)
      << "cnnc bench: some progress\n"
         R"({"model":"lenet5","threads":2,"batch":64,"peak_gflops":230,)"
         R"("train_mflop_per_image":2.3,"engines":[{"engine":"specialized",)"
         R"("train_images_per_second":61000,"infer_images_per_second":150000},)"
         R"({"engine":"generic","train_images_per_second":9000,"infer_images_per_second":30000}]})"
      << "\n";
  const auto r = cnnc_test::run(BENCH_CHART_EXE " --markdown --target lenet5=50000,100000 -o '" +
                                png.string() + "' '" + json.string() + "'");
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("| specialized | 61,000 [0-0] |"));
  CHECK_THAT(r.out, Catch::Contains("(batch 64, 2 threads, 2.30 MFLOP"));
  CHECK(read_png(png).width == 1000);

  std::ofstream(json) << R"({"model":"lenet5","threads":1,"batch":64,"peak_gflops":115,)"
                         R"("train_mflop_per_image":2.3,"engines":[{"engine":"specialized",)"
                         R"("train_images_per_second":31000,"infer_images_per_second":75000}]})"
                      << "\n";
  const auto one = cnnc_test::run(BENCH_CHART_EXE " --markdown -o '" + png.string() + "' '" +
                                  json.string() + "'");
  CHECK(one.status == 0);
  CHECK_THAT(one.out, Catch::Contains("(batch 64, 1 thread, 2.30 MFLOP"));

  // A bf16 engine's row gives its share of the bf16 peak beside its share of the FP32 peak.
  std::ofstream(json) << R"({"model":"lenet5","threads":2,"batch":64,"peak_gflops":400,)"
                         R"("bf16_peak_gflops":800,"train_mflop_per_image":2.3,"engines":[)"
                         R"({"engine":"specialized-bf16","train_images_per_second":174000,)"
                         R"("infer_images_per_second":600000,"peak_share":1.0,)"
                         R"("bf16_peak_share":0.5}]})"
                      << "\n";
  const auto bf16 = cnnc_test::run(BENCH_CHART_EXE " --markdown -o '" + png.string() + "' '" +
                                   json.string() + "'");
  CHECK(bf16.status == 0);
  CHECK_THAT(bf16.out, Catch::Contains("measured peak 400 GFLOP/s, bf16 peak 800)"));
  CHECK_THAT(bf16.out, Catch::Contains("| 100.0% (50.0% of bf16's) |"));

  std::ofstream(json) << "{not json\n";
  const auto bad =
      cnnc_test::run(BENCH_CHART_EXE " -o '" + png.string() + "' '" + json.string() + "'");
  CHECK(bad.status == 1);
  CHECK_THAT(bad.out, Catch::Contains("lenet5.json: its last JSON line does not parse"));
  fs::remove_all(json.parent_path());
}
#endif
