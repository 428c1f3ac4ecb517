// The charts of charts.hpp on Cairo image surfaces. A Canvas owns the surface and the context,
// and knows the two text sizes every chart uses; PNG bytes go through a memory stream so the
// file is written atomically.
#include "draw/charts.hpp"

#include <cairo.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <stdexcept>

#include "train/atomic_file.hpp"

namespace cnnc::draw {

namespace {

constexpr const char* kFont = "DejaVu Sans";
constexpr double kText = 14, kTitle = 18;
const Rgb kInk{30, 30, 30}, kFaint{210, 210, 210};

class Canvas {
 public:
  Canvas(int width, int height)
      : surface_(cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height),
                 cairo_surface_destroy),
        cr_(cairo_create(surface_.get()), cairo_destroy) {
    set(Rgb{255, 255, 255});
    cairo_paint(cr_.get());
    cairo_select_font_face(cr_.get(), kFont, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  }
  cairo_t* cr() { return cr_.get(); }
  void set(Rgb c) { cairo_set_source_rgb(cr(), c.r / 255.0, c.g / 255.0, c.b / 255.0); }
  void rect(double x, double y, double w, double h, Rgb c) {
    set(c);
    cairo_rectangle(cr(), x, y, w, h);
    cairo_fill(cr());
  }
  void line(double x0, double y0, double x1, double y1, Rgb c, double width = 1) {
    set(c);
    cairo_set_line_width(cr(), width);
    cairo_move_to(cr(), x0, y0);
    cairo_line_to(cr(), x1, y1);
    cairo_stroke(cr());
  }
  double width_of(const std::string& s, double size = kText) {
    cairo_set_font_size(cr(), size);
    cairo_text_extents_t e;
    cairo_text_extents(cr(), s.c_str(), &e);
    return e.x_advance;
  }
  // Text with its baseline at y; align 0 left, 0.5 centred, 1 right of x.
  void text(double x, double y, const std::string& s, Rgb c = kInk, double size = kText,
            double align = 0) {
    x -= align * width_of(s, size);
    set(c);
    cairo_move_to(cr(), x, y);
    cairo_show_text(cr(), s.c_str());
  }
  void image(const Image& im, double x, double y) {
    // Cairo's RGB24 keeps a pixel as a native-endian 32-bit 0x00RRGGBB.
    std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)> s(
        cairo_image_surface_create(CAIRO_FORMAT_RGB24, im.width, im.height), cairo_surface_destroy);
    cairo_surface_flush(s.get());
    unsigned char* data = cairo_image_surface_get_data(s.get());
    const int stride = cairo_image_surface_get_stride(s.get());
    for (int r = 0; r < im.height; ++r)
      for (int c = 0; c < im.width; ++c) {
        const uint8_t* p = &im.rgb[(static_cast<size_t>(r) * im.width + c) * 3];
        reinterpret_cast<uint32_t*>(data + r * stride)[c] =
            uint32_t{p[0]} << 16 | uint32_t{p[1]} << 8 | p[2];
      }
    cairo_surface_mark_dirty(s.get());
    cairo_set_source_surface(cr(), s.get(), x, y);
    cairo_pattern_set_filter(cairo_get_source(cr()), CAIRO_FILTER_NEAREST);
    cairo_paint(cr());
  }
  void save(const std::filesystem::path& path) {
    std::string bytes;
    auto append = [](void* context, const unsigned char* data, unsigned int size) {
      static_cast<std::string*>(context)->append(reinterpret_cast<const char*>(data), size);
      return CAIRO_STATUS_SUCCESS;
    };
    if (cairo_surface_write_to_png_stream(surface_.get(), append, &bytes) != CAIRO_STATUS_SUCCESS)
      throw std::runtime_error("cannot encode the PNG of " + path.string());
    rt::write_file_atomically(path, bytes);
  }

 private:
  std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)> surface_;
  std::unique_ptr<cairo_t, decltype(&cairo_destroy)> cr_;
};

// A round number of ticks (1, 2 or 5 times a power of ten) that covers 0..top in about n steps.
double tick_step(double top, int n) {
  if (top <= 0) return 1;
  const double raw = top / n, power = std::pow(10, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (m * power >= raw) return m * power;
  return 10 * power;
}

std::string short_number(double v) {
  return fmt::format("{:.4g}", v);
}

// A count on a log axis as people say it: 500, 20k, 1.5M.
std::string count_text(double v) {
  const double r = std::round(v);
  if (r >= 1e6) return short_number(r / 1e6) + "M";
  if (r >= 1e3) return short_number(r / 1e3) + "k";
  return short_number(r);
}

// An axis title turned upright, centred on (x, y).
void y_title(Canvas& c, double x, double y, const std::string& s) {
  cairo_save(c.cr());
  cairo_translate(c.cr(), x, y);
  cairo_rotate(c.cr(), -M_PI / 2);
  c.text(0, 0, s, kInk, kText, 0.5);
  cairo_restore(c.cr());
}

// Ticks of a log axis from lo to hi (decades): every power of ten, and 2 and 5 times it when
// the axis spans fewer than three decades.
std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> out;
  const bool fine = hi - lo < 3;
  for (double e = std::floor(lo); e <= std::ceil(hi); ++e)
    for (double m : {1.0, 2.0, 5.0}) {
      const double t = std::log10(m) + e;
      if ((m == 1 || fine) && t >= lo && t <= hi) out.push_back(t);
    }
  if (out.size() >= 2) return out;
  // Less than a factor of 5 across (a sweep's parameter counts): round values, evenly spaced.
  out.clear();
  const double a = std::pow(10, lo), b = std::pow(10, hi), step = tick_step(b - a, 4);
  for (double v = std::ceil(a / step) * step; v <= b; v += step) out.push_back(std::log10(v));
  return out;
}

void scatter_panel(Canvas& c, double x0, int width, int height, const ScatterChart& chart) {
  auto fx = [&](double x) { return chart.log_x ? std::log10(std::max(x, 1e-300)) : x; };
  double x_min = INFINITY, x_max = -INFINITY, y_min = INFINITY, y_max = -INFINITY;
  for (const Point& p : chart.points) {
    x_min = std::min(x_min, fx(p.x)), x_max = std::max(x_max, fx(p.x));
    y_min = std::min({y_min, p.y, p.y_lo}), y_max = std::max({y_max, p.y, p.y_hi});
  }
  // Room around the points, and a visible span when they share an x or a y.
  const double x_pad = x_max > x_min ? 0.08 * (x_max - x_min) : chart.log_x ? 0.5 : 1;
  const double y_pad = y_max > y_min ? 0.12 * (y_max - y_min) : 0.01;
  x_min -= x_pad, x_max += x_pad, y_min -= y_pad, y_max += y_pad;
  const double left = 70, right = 30, top = 50, bottom = 55;
  const double w = width - left - right, h = height - top - bottom;
  auto px = [&](double x) { return x0 + left + w * (fx(x) - x_min) / (x_max - x_min); };
  auto py = [&](double y) { return top + h * (1 - (y - y_min) / (y_max - y_min)); };
  c.text(x0 + left, 30, chart.title, kInk, kTitle);
  const double dy = tick_step(y_max - y_min, 5);
  for (double t = std::ceil(y_min / dy) * dy; t <= y_max; t += dy) {
    c.line(x0 + left, std::round(py(t)) + 0.5, x0 + left + w, std::round(py(t)) + 0.5, kFaint);
    c.text(x0 + left - 8, py(t) + 5, short_number(t), kInk, 12, 1);
  }
  std::vector<double> ticks;
  if (chart.log_x) {
    ticks = log_ticks(x_min, x_max);
  } else {
    const double dx = tick_step(x_max - x_min, 6);
    // + 0.0: a tick at ceil(-0.3) is -0, which would print as "-0".
    for (double t = std::ceil(x_min / dx) * dx + 0.0; t <= x_max; t += dx) ticks.push_back(t);
  }
  for (double t : ticks) {
    const double x = x0 + left + w * (t - x_min) / (x_max - x_min);
    c.line(std::round(x) + 0.5, top, std::round(x) + 0.5, top + h, kFaint);
    c.text(x, top + h + 18, chart.log_x ? count_text(std::pow(10, t)) : short_number(t), kInk, 12,
           0.5);
  }
  c.line(x0 + left, top + h + 0.5, x0 + left + w, top + h + 0.5, kInk);
  c.line(x0 + left - 0.5, top, x0 + left - 0.5, top + h, kInk);
  c.text(x0 + left + w / 2, height - 12, chart.x_label, kInk, kText, 0.5);
  y_title(c, x0 + 20, top + h / 2, chart.y_label);
  const Rgb palette[] = {{31, 119, 180}, {214, 39, 40},  {44, 160, 44}, {148, 103, 189},
                         {255, 127, 14}, {23, 190, 207}, {140, 86, 75}, {227, 119, 194}};
  std::vector<std::array<double, 4>> labels;  // left, top, right, bottom of those drawn
  for (size_t i = 0; i < chart.points.size(); ++i) {
    const Point& p = chart.points[i];
    const Rgb color = palette[i % std::size(palette)];
    const double x = px(p.x), y = py(p.y);
    if (p.y_hi > p.y_lo) {
      c.line(x, py(p.y_lo), x, py(p.y_hi), color, 1.5);
      c.line(x - 4, py(p.y_lo), x + 4, py(p.y_lo), color, 1.5);
      c.line(x - 4, py(p.y_hi), x + 4, py(p.y_hi), color, 1.5);
    }
    c.set(color);
    cairo_arc(c.cr(), x, y, 4.5, 0, 2 * M_PI);
    cairo_fill(c.cr());
    // Labels sit right of their point (left of it near the right edge), moved up or down
    // until they overlap no label drawn before.
    const double lw = c.width_of(p.label, 12);
    const bool flip = x + 8 + lw > x0 + width - 4;
    const double lx = flip ? x - 8 - lw : x + 8;
    double ly = y - 6;
    for (double shift : {0.0, 15.0, -15.0, 30.0, -30.0, 45.0, -45.0, 60.0, -60.0}) {
      ly = y - 6 + shift;
      if (std::none_of(labels.begin(), labels.end(), [&](const std::array<double, 4>& r) {
            return lx < r[2] && r[0] < lx + lw && ly - 11 < r[3] && r[1] < ly + 3;
          }))
        break;
    }
    labels.push_back({lx, ly - 11, lx + lw, ly + 3});
    c.text(lx, ly, p.label, color, 12);
  }
}

}  // namespace

void write_bar_chart(const std::filesystem::path& path, const std::vector<BarPanel>& panels,
                     int width) {
  const double left = 150, right = 160, bar = 22, gap = 6, title_h = 40, group_h = 30;
  double height = 20;
  for (const BarPanel& p : panels) {
    height += title_h + 20;
    for (const BarGroup& g : p.groups) height += group_h + g.bars.size() * (bar + gap);
  }
  Canvas c(width, static_cast<int>(height));
  double y = 20;
  for (const BarPanel& p : panels) {
    c.text(20, y + 20, p.title, kInk, kTitle);
    y += title_h;
    for (const BarGroup& g : p.groups) {
      double top = g.mark;
      for (const auto& b : g.bars) top = std::max(top, b.value);
      top *= 1.05;
      const double span = width - left - right;
      c.text(20, y + 20, g.title);
      y += group_h;
      const double group_top = y, group_end = y + g.bars.size() * (bar + gap) - gap;
      auto length = [&](const BarGroup::Bar& b) { return top > 0 ? span * b.value / top : 0; };
      for (const auto& b : g.bars) {
        c.text(20, y + 16, b.label);
        c.rect(left, y, length(b), bar, b.color);
        y += bar + gap;
      }
      // The mark crosses the bars but not their values, which are drawn on a white ground.
      if (g.mark > 0) {
        const Rgb green{0, 150, 0};
        const double x = left + span * g.mark / top;
        c.line(x, group_top - 4, x, group_end + 4, green, 2);
        c.text(x + 4, group_top - 6, g.mark_label, green, 12);
      }
      for (size_t i = 0; i < g.bars.size(); ++i) {
        const double at = left + length(g.bars[i]), bar_top = group_top + i * (bar + gap);
        c.rect(at + 3, bar_top, c.width_of(g.bars[i].value_text) + 6, bar, Rgb{255, 255, 255});
        c.text(at + 6, bar_top + 16, g.bars[i].value_text);
      }
      c.line(left - 0.5, group_top, left - 0.5, group_end, kFaint);
    }
    y += 20;
  }
  c.save(path);
}

void write_line_chart(const std::filesystem::path& path, const LineChart& chart, int width,
                      int height) {
  double x_min = INFINITY, x_max = -INFINITY, y_min = INFINITY, y_max = -INFINITY;
  for (const Series& s : chart.series)
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      x_min = std::min(x_min, s.x[i]), x_max = std::max(x_max, s.x[i]);
      y_min = std::min(y_min, s.y[i]), y_max = std::max(y_max, s.y[i]);
    }
  if (!(x_min <= x_max)) throw std::runtime_error(path.string() + ": a line chart with no points");
  // The y axis starts at 0 for values that are all positive (losses, accuracies), so slopes
  // are not exaggerated; a single x or y value still gets a visible span.
  y_min = std::min(0.0, y_min);
  if (y_max <= y_min) y_max = y_min + 1;
  if (x_max <= x_min) x_max = x_min + 1;
  // The top of the y axis is a whole tick, so the highest point never touches the frame.
  const double dy = tick_step(y_max - y_min, 5);
  y_max = std::ceil(y_max / dy - 1e-9) * dy;
  const double left = 70, right = 170, top = 50, bottom = 55;
  const double w = width - left - right, h = height - top - bottom;
  auto px = [&](double x) { return left + w * (x - x_min) / (x_max - x_min); };
  auto py = [&](double y) { return top + h * (1 - (y - y_min) / (y_max - y_min)); };
  Canvas c(width, height);
  c.text(left, 30, chart.title, kInk, kTitle);
  for (double t = std::ceil(y_min / dy) * dy; t <= y_max + 1e-9 * dy; t += dy) {
    c.line(left, std::round(py(t)) + 0.5, left + w, std::round(py(t)) + 0.5, kFaint);
    c.text(left - 8, py(t) + 5, short_number(t), kInk, 12, 1);
  }
  // Whole numbers on x (epochs) get whole ticks: "epoch 1.5" means nothing.
  bool whole = true;
  for (const Series& s : chart.series)
    for (double x : s.x) whole = whole && x == std::floor(x);
  const double dx =
      whole ? std::max(1.0, tick_step(x_max - x_min, 8)) : tick_step(x_max - x_min, 8);
  for (double t = std::ceil(x_min / dx) * dx; t <= x_max + 1e-9 * dx; t += dx)
    c.text(px(t), top + h + 18, short_number(t), kInk, 12, 0.5);
  c.line(left, top + h + 0.5, left + w, top + h + 0.5, kInk);
  c.line(left - 0.5, top, left - 0.5, top + h, kInk);
  c.text(left + w / 2, height - 12, chart.x_label, kInk, kText, 0.5);
  y_title(c, 20, top + h / 2, chart.y_label);
  double legend_y = top + 10;
  for (const Series& s : chart.series) {
    c.set(s.color);
    cairo_set_line_width(c.cr(), 2.5);
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
      (i ? cairo_line_to : cairo_move_to)(c.cr(), px(s.x[i]), py(s.y[i]));
    cairo_stroke(c.cr());
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      cairo_arc(c.cr(), px(s.x[i]), py(s.y[i]), 3.5, 0, 2 * M_PI);
      cairo_fill(c.cr());
    }
    c.line(left + w + 15, legend_y - 5, left + w + 40, legend_y - 5, s.color, 2.5);
    c.text(left + w + 46, legend_y, s.name);
    legend_y += 22;
  }
  c.save(path);
}

void write_scatter_charts(const std::filesystem::path& path,
                          const std::vector<ScatterChart>& panels, int panel_width, int height) {
  for (const ScatterChart& p : panels)
    if (p.points.empty())
      throw std::runtime_error(path.string() + ": a scatter chart with no points");
  Canvas c(panel_width * static_cast<int>(panels.size()), height);
  for (size_t i = 0; i < panels.size(); ++i)
    scatter_panel(c, static_cast<double>(panel_width) * i, panel_width, height, panels[i]);
  c.save(path);
}

void write_matrix(const std::filesystem::path& path, const Matrix& m) {
  if (m.values.size() != m.rows.size() * m.cols.size())
    throw std::runtime_error(path.string() + ": a matrix of " + std::to_string(m.values.size()) +
                             " values is not " + std::to_string(m.rows.size()) + "x" +
                             std::to_string(m.cols.size()));
  const double cell = 46, left = 90, top = 90;
  const int width = static_cast<int>(left + cell * m.cols.size() + 20);
  const int height = static_cast<int>(top + cell * m.rows.size() + 20);
  Canvas c(width, height);
  c.text(20, 28, m.title, kInk, kTitle);
  c.text(left + cell * m.cols.size() / 2, 56, m.col_axis, kInk, kText, 0.5);
  y_title(c, 28, top + cell * m.rows.size() / 2, m.row_axis);
  const double largest = std::max(1e-30, *std::max_element(m.values.begin(), m.values.end()));
  for (size_t j = 0; j < m.cols.size(); ++j)
    c.text(left + cell * (j + 0.5), top - 8, m.cols[j], kInk, kText, 0.5);
  for (size_t i = 0; i < m.rows.size(); ++i) {
    c.text(left - 10, top + cell * (i + 0.5) + 5, m.rows[i], kInk, kText, 1);
    for (size_t j = 0; j < m.cols.size(); ++j) {
      const double v = m.values[i * m.cols.size() + j], share = std::sqrt(v / largest);
      // sqrt: the diagonal of a good model holds almost everything, and the few mistakes must
      // still show; blue deepens with the count, the number turns white on dark cells.
      const uint8_t shade = static_cast<uint8_t>(std::lround(255 * (1 - 0.85 * share)));
      c.rect(left + cell * j, top + cell * i, cell - 1, cell - 1, Rgb{shade, shade, 255});
      c.text(left + cell * (j + 0.5), top + cell * (i + 0.5) + 5, short_number(v),
             share > 0.6 ? Rgb{255, 255, 255} : kInk, 12, 0.5);
    }
  }
  c.save(path);
}

void write_grid(const std::filesystem::path& path, const std::string& title,
                const std::vector<Tile>& tiles, int columns, std::optional<ScaleBar> scale) {
  if (tiles.empty() || columns <= 0)
    throw std::runtime_error(path.string() + ": a grid needs images and columns");
  Canvas measure(1, 1);
  double cell_w = 0, cell_h = 0;
  for (const Tile& t : tiles) {
    cell_w =
        std::max({cell_w, static_cast<double>(t.image.width), measure.width_of(t.caption, 12)});
    cell_h = std::max(cell_h, static_cast<double>(t.image.height));
  }
  cell_w += 16, cell_h += 30;  // room between images and for a line of caption
  const int rows = (static_cast<int>(tiles.size()) + columns - 1) / columns;
  const double top = scale ? 90 : 50;
  const int width =
      static_cast<int>(std::max(20 + cell_w * columns, measure.width_of(title, kTitle) + 40));
  Canvas c(width, static_cast<int>(top + cell_h * rows + 10));
  c.text(20, 30, title, kInk, kTitle);
  if (scale) {
    // 256 steps of the map from its low to its high end, labelled at both ends and the middle.
    const float lo = scale->map == ColorMap::diverging ? -scale->hi : scale->lo, hi = scale->hi;
    const double x0 = 60, w = 256;
    for (int i = 0; i < 256; ++i) {
      uint8_t rgb[3];
      color_of(lo + (hi - lo) * i / 255.0f, lo, hi, scale->map, rgb);
      c.rect(x0 + i, 45, 1, 14, Rgb{rgb[0], rgb[1], rgb[2]});
    }
    c.text(x0, 76, short_number(lo), kInk, 12, 0.5);
    c.text(x0 + w / 2, 76, short_number((lo + hi) / 2), kInk, 12, 0.5);
    c.text(x0 + w, 76, short_number(hi), kInk, 12, 0.5);
  }
  for (size_t i = 0; i < tiles.size(); ++i) {
    const double x = 20 + cell_w * (i % columns), y = top + cell_h * (i / columns);
    const double image_x = x + (cell_w - 16 - tiles[i].image.width) / 2;
    c.image(tiles[i].image, image_x, y);
    // A hairline frame, so a map whose edge is white (a zero weight) keeps its outline.
    c.set(kFaint);
    cairo_set_line_width(c.cr(), 1);
    cairo_rectangle(c.cr(), image_x - 0.5, y - 0.5, tiles[i].image.width + 1,
                    tiles[i].image.height + 1);
    cairo_stroke(c.cr());
    c.text(x + (cell_w - 16) / 2, y + tiles[i].image.height + 18, tiles[i].caption, kInk, 12, 0.5);
  }
  c.save(path);
}

}  // namespace cnnc::draw
