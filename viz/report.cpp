// The lesson of report.hpp: activations from generic prefixes of the model (the first k layers
// read the full parameter vector), pictures through draw/, and the page that strings them
// together.
#include "viz/report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "data/augment.hpp"
#include "data/batches.hpp"
#include "draw/charts.hpp"
#include "draw/image.hpp"
#include "engine/engine.hpp"
#include "engine/training.hpp"
#include "train/atomic_file.hpp"
#include "train/thread_pool.hpp"
#include "train/trainer.hpp"

namespace cnnc::viz {

namespace {

namespace fs = std::filesystem;

// Upscaling that makes a map about 112 pixels on its longer side, at least 1.
int scale_for(int64_t h, int64_t w, int target = 112) {
  return static_cast<int>(std::max<int64_t>(1, target / std::max(h, w)));
}

// Channel k of a [H][W][C] tensor as an H x W map.
std::vector<float> channel(std::span<const float> x, const dsl::Shape& s, int64_t k) {
  std::vector<float> map(static_cast<size_t>(s.h * s.w));
  for (int64_t i = 0; i < s.h * s.w; ++i) map[i] = x[i * s.c + k];
  return map;
}

// The output of the graph's first `layers` layers on one image.
std::vector<float> layer_output(const dsl::Graph& g, size_t layers,
                                const std::vector<float>& params, std::span<const float> image) {
  std::unique_ptr<engine::Engine> e = engine::make_generic_prefix(g, layers, 1);
  const cnnc_model& m = e->model();
  rt::ThreadPool pool(1);
  rt::Workspaces workspaces(m, 1);
  std::vector<float> out(static_cast<size_t>(m.output_size));
  rt::forward_batch(m, params, image.data(), 1, out.data(), pool, workspaces);
  return out;
}

std::string where(const dsl::Layer& l) {
  return fmt::format("{} {} (line {}: {})", l.name, l.out.str(), l.line, l.statement);
}

// Text for HTML: the .cnn lines and file names are the user's.
std::string escaped(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

// The columns of cnnc train's history.csv (runtime/train/trainer.cpp) by name; an empty cell
// (validation without a held-out set) is NaN and drops out of the chart.
std::map<std::string, std::vector<double>> read_history(const fs::path& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read " + path.string());
  std::string line;
  std::vector<std::string> names;
  std::map<std::string, std::vector<double>> columns;
  for (int number = 1; std::getline(f, line); ++number) {
    std::vector<std::string> cells;
    std::stringstream row(line);
    for (std::string cell; std::getline(row, cell, ',');) cells.push_back(cell);
    if (number == 1) {
      names = cells;
      continue;
    }
    if (cells.size() > names.size())
      throw std::runtime_error(fmt::format("{}:{}: {} cells, but the header names {}",
                                           path.string(), number, cells.size(), names.size()));
    for (size_t i = 0; i < names.size(); ++i) {
      double v = NAN;
      if (i < cells.size() && !cells[i].empty()) {
        size_t used = 0;
        try {
          v = std::stod(cells[i], &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used != cells[i].size())
          throw std::runtime_error(fmt::format("{}:{}: column {} ('{}') is not a number: '{}'",
                                               path.string(), number, i + 1, names[i], cells[i]));
      }
      columns[names[i]].push_back(v);
    }
  }
  if (!columns.count("epoch") || columns["epoch"].empty())
    throw std::runtime_error(path.string() + ": no epochs (is it cnnc train's history.csv?)");
  return columns;
}

// One line chart of `what` ("loss", "accuracy") per epoch for the three sets that have it.
Figure curves(std::map<std::string, std::vector<double>>& h, const std::string& what,
              const fs::path& dir) {
  draw::LineChart chart{what + " per epoch", "epoch", what, {}};
  const std::pair<const char*, draw::Rgb> sets[] = {
      {"train", {31, 119, 180}}, {"validation", {44, 160, 44}}, {"test", {255, 127, 14}}};
  for (const auto& [set, color] : sets) {
    draw::Series s{set, {}, {}, color};
    const std::vector<double>& y = h[std::string(set) + "_" + what];
    for (size_t i = 0; i < y.size(); ++i)
      if (!std::isnan(y[i])) s.x.push_back(h["epoch"][i]), s.y.push_back(y[i]);
    if (!s.x.empty()) chart.series.push_back(std::move(s));
  }
  Figure f{what + ".png", "Training: " + what, ""};
  draw::write_line_chart(dir / f.file, chart, 800, 400);
  f.caption = what == "loss"
                  ? "The cross-entropy per epoch. Training loss falling while validation or test "
                    "loss rises is overfitting: the model memorises rather than generalises."
                  : "The share of images classified correctly after each epoch. The gap between "
                    "training and test accuracy is what the model did not generalise.";
  return f;
}

// The confusion matrix and the most confident mistakes on the test set, in one pass.
std::vector<Figure> test_results(const dsl::Graph& g, const std::vector<float>& params,
                                 const rt::LabeledImages& test, const fs::path& dir) {
  std::unique_ptr<engine::Engine> e = engine::make_engine(g, "generic", 64);
  const cnnc_model& m = e->model();
  rt::ThreadPool pool(1);
  rt::Workspaces workspaces(m, 1);
  const int32_t K = m.output_size;
  std::vector<int32_t> predicted(static_cast<size_t>(test.count));
  std::vector<float> confidence(static_cast<size_t>(test.count));
  int32_t seen = 0;  // evaluate passes the test set in order, chunk after chunk
  rt::EvalResult r = rt::evaluate(m, test, 64, [&](const float* images, int32_t n, float* outputs) {
    rt::forward_batch(m, params, images, n, outputs, pool, workspaces);
    for (int32_t i = 0; i < n; ++i, ++seen) {
      const float* y = outputs + static_cast<int64_t>(i) * K;
      predicted[seen] = static_cast<int32_t>(std::max_element(y, y + K) - y);
      confidence[seen] = y[predicted[seen]];
    }
  });
  std::vector<std::string> classes;
  for (int32_t k = 0; k < K; ++k) classes.push_back(std::to_string(k));
  std::vector<Figure> figures;
  Figure c{"confusion.png", "Confusion matrix", ""};
  draw::write_matrix(dir / c.file,
                     {fmt::format("{} test images, {:.2f}% correct", r.count, 100 * r.accuracy),
                      "true class", "predicted class", classes, classes,
                      std::vector<double>(r.confusion.begin(), r.confusion.end())});
  c.caption =
      "Row: the true digit; column: what the model said. The diagonal holds the correct "
      "answers; a large number off the diagonal names two digits the model confuses.";
  figures.push_back(c);

  std::vector<int32_t> wrong;
  for (int32_t i = 0; i < test.count; ++i)
    if (predicted[i] != test.labels[i]) wrong.push_back(i);
  if (wrong.empty()) return figures;
  const size_t shown = std::min<size_t>(wrong.size(), 24);
  std::partial_sort(wrong.begin(), wrong.begin() + static_cast<std::ptrdiff_t>(shown), wrong.end(),
                    [&](int32_t a, int32_t b) { return confidence[a] > confidence[b]; });
  std::vector<draw::Tile> tiles;
  for (size_t j = 0; j < shown; ++j) {
    const int32_t i = wrong[j];
    std::vector<float> x(static_cast<size_t>(test.rows) * test.cols);
    rt::pixels_to_floats(test.image(i), x.size(), x.data());
    tiles.push_back({draw::tensor_image(x, test.rows, test.cols, draw::ColorMap::grey, 3, 0, 1),
                     fmt::format("#{}: {} as {} ({:.0f}%)", i, int{test.labels[i]}, predicted[i],
                                 100 * confidence[i])});
  }
  Figure w{"mistakes.png", "The most confident mistakes", ""};
  draw::write_grid(dir / w.file,
                   fmt::format("{} of the {} misclassified test images", shown, wrong.size()),
                   tiles, 8);
  w.caption =
      "Test images the model got wrong while most sure of itself: test index, true label, "
      "\"as\" the prediction, and its probability. Some are ambiguous even to a person; others "
      "show what the model never learned.";
  figures.push_back(w);
  return figures;
}

// What the model's augment statement does to this input: the warps training draws for it in
// 16 epochs (sample 0 of the seed), each with its shift, angle and zoom.
Figure augmented(const dsl::Graph& g, std::span<const float> image, const fs::path& dir) {
  const rt::AugmentSpec spec = engine::train_options(g.training).augment;
  const auto rows = static_cast<int32_t>(g.input.h), cols = static_cast<int32_t>(g.input.w);
  // warp_image reads bytes; the input's floats are bytes / 255 (pixels_to_floats), so this is
  // exact.
  std::vector<uint8_t> pixels(image.size());
  for (size_t i = 0; i < image.size(); ++i)
    pixels[i] = static_cast<uint8_t>(std::lround(std::clamp(image[i], 0.0f, 1.0f) * 255));
  std::vector<draw::Tile> tiles;
  std::vector<float> warped(pixels.size());
  for (uint32_t epoch = 0; epoch < 16; ++epoch) {
    const rt::AugmentParams p = rt::draw_augment(spec, g.training.seed, epoch, 0);
    rt::warp_image(pixels.data(), rows, cols, p, warped.data());
    tiles.push_back(
        {draw::tensor_image(warped, rows, cols, draw::ColorMap::grey, 3, 0, 1),
         fmt::format("{:+d},{:+d} {:+.0f}\u00b0 x{:.2f}", p.dx, p.dy, p.angle, p.zoom)});
  }
  Figure f{"augment.png", "What augmentation does", ""};
  draw::write_grid(dir / f.file,
                   fmt::format("augment shift={} rotate={:g} scale={:g}, 16 epochs", spec.shift,
                               spec.rotate, spec.scale),
                   tiles, 8);
  f.caption =
      "Each epoch training shows the model another version of every digit: shifted (dx,dy "
      "pixels), rotated (degrees) and zoomed by amounts drawn within the augment statement's "
      "limits. The model must learn the digit, not where or how upright it is.";
  return f;
}

// Saliency maps: for each image, the gradient of the predicted class's score (its logit) with
// respect to every input pixel, from the generic engine's backward pass.
Figure saliency(const dsl::Graph& g, const std::vector<float>& params,
                const std::vector<std::pair<std::string, std::vector<float>>>& images,
                const fs::path& dir) {
  const auto n = static_cast<int32_t>(images.size());
  const rt::GenericModel model = engine::make_generic_model(g, n);
  const cnnc_model& m = *model.abi();
  const int64_t size = int64_t{m.input_h} * m.input_w * m.input_c;
  std::vector<float> x, outputs(static_cast<size_t>(n) * m.output_size),
      grad(static_cast<size_t>(n * size));
  for (const auto& image : images) x.insert(x.end(), image.second.begin(), image.second.end());
  rt::Workspaces workspace(m, 1);
  cnnc_pass pass{};
  pass.params = params.data();
  pass.input = x.data();
  pass.output = outputs.data();
  pass.workspace = workspace[0];
  pass.n = n;
  m.forward(&m, &pass);
  std::vector<int32_t> predicted;
  for (int32_t i = 0; i < n; ++i) {
    const float* y = outputs.data() + static_cast<int64_t>(i) * m.output_size;
    predicted.push_back(static_cast<int32_t>(std::max_element(y, y + m.output_size) - y));
  }
  model.input_gradient(pass, predicted.data(), grad.data());

  std::vector<draw::Tile> tiles;
  const dsl::Shape& in = g.input;
  for (int32_t i = 0; i < n; ++i) {
    std::span<const float> xi(x.data() + i * size, static_cast<size_t>(size)),
        gi(grad.data() + i * size, static_cast<size_t>(size));
    float magnitude = 0;
    for (float v : gi) magnitude = std::max(magnitude, std::abs(v));
    tiles.push_back({draw::tensor_image(channel(xi, in, 0), static_cast<int>(in.h),
                                        static_cast<int>(in.w), draw::ColorMap::grey, 3, 0, 1),
                     fmt::format("{}: {}", images[size_t(i)].first, predicted[size_t(i)])});
    tiles.push_back(
        {draw::tensor_image(channel(gi, in, 0), static_cast<int>(in.h), static_cast<int>(in.w),
                            draw::ColorMap::diverging, 3, -magnitude, magnitude),
         fmt::format("saliency of {}", predicted[size_t(i)])});
  }
  Figure f{"saliency.png", "Saliency: which pixels the answer depends on", ""};
  draw::write_grid(dir / f.file, "each image, its prediction, and d score / d pixel", tiles, 8);
  f.caption =
      "Beside each image, the gradient of the predicted digit's score with respect to every "
      "pixel, each map on its own scale: red pixels would raise the score if they were brighter, "
      "blue ones lower it, white ones hardly matter. The strokes and gaps that tell this digit "
      "from the others light up.";
  return f;
}

Figure filters(const dsl::Layer& l, const std::vector<float>& params, bool first,
               const fs::path& dir) {
  // Conv weights are [K][R][S][C] (cnnc_abi.h); all kernels of a layer share one colour scale.
  const int64_t K = l.out.c, R = l.kernel_h, S = l.kernel_w, C = l.in.c;
  std::span<const float> w(params.data() + l.weight_offset, static_cast<size_t>(l.weight_count));
  float m = 0;
  for (float v : w) m = std::max(m, std::abs(v));
  std::vector<draw::Tile> tiles;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c) {
      std::vector<float> kernel(static_cast<size_t>(R * S));
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s) kernel[r * S + s] = w[((k * R + r) * S + s) * C + c];
      draw::Image im = draw::tensor_image(kernel, static_cast<int>(R), static_cast<int>(S),
                                          draw::ColorMap::diverging, scale_for(R, S, 96), -m, m);
      draw::write_png(dir / fmt::format("filters_{}_k{}_c{}.png", l.name, k, c), im);
      tiles.push_back(
          {std::move(im), C == 1 ? fmt::format("filter {}", k) : fmt::format("k{} c{}", k, c)});
    }
  Figure f{"filters_" + l.name + ".png", "Filters of " + where(l), ""};
  draw::write_grid(dir / f.file, f.title, tiles,
                   static_cast<int>(C == 1 ? std::min<int64_t>(K, 8) : C),
                   draw::ScaleBar{draw::ColorMap::diverging, -m, m});
  f.caption = first
                  ? fmt::format(
                        "The {} kernels of the first convolution, each {}x{}. Red weights add the "
                        "brightness under them, blue ones subtract it, white ones ignore it: a "
                        "kernel responds most where the digit looks like it.",
                        K, R, S)
                  : fmt::format(
                        "{}: one row per output channel, one kernel per input channel ({} of "
                        "them). This layer does not look at pixels but at the maps of the layer "
                        "before, so its kernels combine features rather than draw strokes.",
                        l.name, C);
  return f;
}

}  // namespace

std::vector<Figure> write_report(const dsl::Graph& g, const std::vector<float>& params,
                                 std::span<const float> image, const std::string& image_name,
                                 const fs::path& dir, const RunResults& run) {
  // Read before anything is written, so a broken history.csv leaves no half-made report.
  std::map<std::string, std::vector<double>> history;
  if (!run.history.empty()) history = read_history(run.history);
  fs::create_directories(dir);
  std::vector<Figure> figures;
  const dsl::Shape& in = g.input;
  figures.push_back(
      {"input.png", "The input",
       fmt::format("{}, {} as the model reads it (black 0, white 1).", image_name, in.str())});
  draw::write_png(
      dir / "input.png",
      draw::tensor_image(channel(image, in, 0), static_cast<int>(in.h), static_cast<int>(in.w),
                         draw::ColorMap::grey, scale_for(in.h, in.w, 224), 0, 1));
  bool first = true;
  for (const dsl::Layer& l : g.layers)
    if (l.kind == dsl::LayerKind::conv) {
      figures.push_back(filters(l, params, first, dir));
      first = false;
    }
  for (size_t i = 0; i < g.layers.size(); ++i) {
    const dsl::Layer& l = g.layers[i];
    if (l.kind != dsl::LayerKind::conv && l.kind != dsl::LayerKind::maxpool &&
        l.kind != dsl::LayerKind::avgpool)
      continue;
    const std::vector<float> y = layer_output(g, i + 1, params, image);
    const int scale = scale_for(l.out.h, l.out.w);
    std::vector<draw::Tile> tiles;
    for (int64_t k = 0; k < l.out.c; ++k) {
      const std::vector<float> map = channel(y, l.out, k);
      auto [lo, hi] = std::minmax_element(map.begin(), map.end());
      draw::Image im = draw::tensor_image(map, static_cast<int>(l.out.h), static_cast<int>(l.out.w),
                                          draw::ColorMap::grey, scale);
      draw::write_png(dir / fmt::format("maps_{}_c{}.png", l.name, k), im);
      tiles.push_back({std::move(im), fmt::format("{} [{:.2g}, {:.2g}]", k, *lo, *hi)});
    }
    Figure f{"maps_" + l.name + ".png", "Feature maps of " + where(l), ""};
    draw::write_grid(dir / f.file, f.title, tiles, static_cast<int>(std::min<int64_t>(l.out.c, 8)));
    f.caption = l.kind == dsl::LayerKind::conv
                    ? fmt::format(
                          "What {} computes on this input: one map per filter, each grey from its "
                          "smallest value (black) to its largest (white), the range under it. "
                          "Bright where the input matches the filter.",
                          l.name)
                    : fmt::format(
                          "{} keeps the strongest (max) or the mean (avg) response of each "
                          "{}x{} window: the same maps, {}x{} instead of {}x{}, so the next "
                          "layer sees a wider part of the digit.",
                          l.name, l.kernel_h, l.kernel_w, l.out.h, l.out.w, l.in.h, l.in.w);
    figures.push_back(std::move(f));
  }

  // The input's saliency, and seven test images' when there is a test set; only for a model
  // that answers with class scores (edges.cnn answers with maps).
  const dsl::Shape& out = g.layers.back().out;
  if (out.h == 1 && out.w == 1) {
    std::vector<std::pair<std::string, std::vector<float>>> salient{
        {"input", std::vector<float>(image.begin(), image.end())}};
    for (int32_t i = 0; run.test && i < run.test->count && salient.size() < 8; ++i) {
      std::vector<float> x(static_cast<size_t>(run.test->rows) * run.test->cols);
      rt::pixels_to_floats(run.test->image(i), x.size(), x.data());
      if (!std::equal(x.begin(), x.end(), image.begin(), image.end()))  // the input itself
        salient.emplace_back(fmt::format("test #{}", i), std::move(x));
    }
    figures.push_back(saliency(g, params, salient, dir));
  }

  if (engine::train_options(g.training).augment.enabled())
    figures.push_back(augmented(g, image, dir));
  if (!history.empty()) {
    figures.push_back(curves(history, "loss", dir));
    figures.push_back(curves(history, "accuracy", dir));
  }
  if (run.test)
    for (Figure& f : test_results(g, params, *run.test, dir)) figures.push_back(std::move(f));

  // The page: every figure with its caption; the inline script only reports, in the title,
  // whether every image loaded (the test that opens the page in a browser reads it).
  std::string html = fmt::format(
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      "<title>cnnc viz: {0}</title>\n<style>body{{font-family:'DejaVu Sans',sans-serif;"
      "max-width:1100px;margin:2em auto;color:#222}}figure{{margin:2em 0}}img{{max-width:100%;"
      "image-rendering:pixelated}}figcaption{{max-width:70ch}}</style>\n</head><body>\n"
      "<h1>What {0} computes</h1>\n<p>Model <code>{1}</code>, input {2}. Read from top to "
      "bottom: the input, the filters the model applies, and what each layer makes of the "
      "input.</p>\n",
      escaped(g.name), escaped(g.source_path), escaped(image_name));
  for (const Figure& f : figures)
    html += fmt::format(
        "<figure><h2>{}</h2><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>\n",
        escaped(f.title), escaped(f.file), escaped(f.title), escaped(f.caption));
  html +=
      "<script>window.addEventListener('load',()=>{const i=[...document.images];"
      "document.title=i.every(x=>x.complete&&x.naturalWidth>0)?'all images loaded':"
      "'images missing: '+i.filter(x=>!(x.complete&&x.naturalWidth>0)).map(x=>x.src).join(' ');"
      "});</script>\n</body></html>\n";
  rt::write_file_atomically(dir / "index.html", html);
  return figures;
}

}  // namespace cnnc::viz
