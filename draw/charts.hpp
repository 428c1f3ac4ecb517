// Charts through Cairo, text in DejaVu Sans, antialiased: horizontal bar panels (the benchmark
// chart), line charts (training curves), a matrix with its numbers (a confusion matrix) and a
// grid of captioned images (filters, feature maps). Each writes one PNG file atomically and
// throws std::runtime_error naming the file when it cannot.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "draw/image.hpp"

namespace cnnc::draw {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

// Bars of one quantity side by side, with an optional vertical mark (a target) at `mark`.
struct BarGroup {
  struct Bar {
    std::string label, value_text;  // left of the bar; right of its end
    double value = 0;
    Rgb color;
  };
  std::string title;
  std::vector<Bar> bars;
  double mark = 0;  // 0: none
  std::string mark_label;
};
struct BarPanel {
  std::string title;
  std::vector<BarGroup> groups;  // each on its own scale, from 0 to its largest bar or mark
};
void write_bar_chart(const std::filesystem::path& path, const std::vector<BarPanel>& panels,
                     int width);

struct Series {
  std::string name;
  std::vector<double> x, y;
  Rgb color;
};
struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;  // drawn in order, named in a legend
};
void write_line_chart(const std::filesystem::path& path, const LineChart& chart, int width,
                      int height);

// Labelled points with vertical error bars, panels side by side (cnnc compare's chart). The y
// axis spans the points (accuracies near 1 would vanish on a scale from 0); log_x for quantities
// that differ by orders of magnitude, such as parameter counts.
struct Point {
  std::string label;
  double x = 0, y = 0, y_lo = 0, y_hi = 0;  // the error bar from y_lo to y_hi; equal to y: none
};
struct ScatterChart {
  std::string title, x_label, y_label;
  bool log_x = false;
  std::vector<Point> points;
};
void write_scatter_charts(const std::filesystem::path& path,
                          const std::vector<ScatterChart>& panels, int panel_width, int height);

// values[r][c] row-major; every cell shows its number, shaded by its share of the largest.
struct Matrix {
  std::string title, row_axis, col_axis;
  std::vector<std::string> rows, cols;
  std::vector<double> values;
};
void write_matrix(const std::filesystem::path& path, const Matrix& matrix);

// Images in rows of `columns`, each with a caption below; images are drawn at their own size.
// A scale bar under the title tells what the colours mean when the images share one map.
struct Tile {
  Image image;
  std::string caption;
};
struct ScaleBar {
  ColorMap map = ColorMap::grey;
  float lo = 0, hi = 1;  // the range (grey) or magnitude (diverging, then lo is -hi)
};
void write_grid(const std::filesystem::path& path, const std::string& title,
                const std::vector<Tile>& tiles, int columns,
                std::optional<ScaleBar> scale = std::nullopt);

}  // namespace cnnc::draw
