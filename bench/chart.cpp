// bench_chart: the chart of docs/benchmarks.md, drawn from the JSON lines `cnnc bench --json`
// prints: one panel per model, training and inference images/s per engine as horizontal bars,
// with the targets as vertical marks. PNG through stb_image_write, text through
// stb_easy_font, so the chart needs nothing beyond what the build already has.
//
//   bench_chart -o docs/benchmarks.png --target lenet5=50000,100000
//       --target keras_mnist=2300,5000 lenet5.json keras_mnist.json
//
// Each input file may hold any output; its last line that starts with '{' is read.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_easy_font.h>
#include <stb_image_write.h>

namespace {

// A flat reader of one JSON object: every scalar as path -> text ("engines.0.engine" ->
// "specialized"); strings lose their quotes. Enough for cnnc bench's own output.
class FlatJson {
 public:
  explicit FlatJson(const std::string& text) : s_(text) {
    if (!value("")) throw std::runtime_error("not a JSON object: " + text.substr(0, 60));
  }
  std::map<std::string, std::string> flat;

 private:
  void skip() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool eat(char c) {
    skip();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  bool string(std::string& out) {
    if (!eat('"')) return false;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\') ++i_;
      if (i_ < s_.size()) out += s_[i_++];
    }
    return i_ < s_.size() && (++i_, true);
  }
  bool value(const std::string& path) {
    skip();
    if (i_ >= s_.size()) return false;
    if (s_[i_] == '{' || s_[i_] == '[') {
      const bool object = s_[i_++] == '{';
      if (eat(object ? '}' : ']')) return true;
      int index = 0;
      do {
        std::string key = object ? std::string() : std::to_string(index);
        ++index;
        if (object && (!string(key) || !eat(':'))) return false;
        if (!value(path.empty() ? key : path + "." + key)) return false;
      } while (eat(','));
      return eat(object ? '}' : ']');
    }
    if (s_[i_] == '"') {
      std::string text;
      if (!string(text)) return false;
      flat[path] = text;
      return true;
    }
    size_t start = i_;
    while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != '}' && s_[i_] != ']') ++i_;
    flat[path] = s_.substr(start, i_ - start);
    return true;
  }
  std::string s_;
  size_t i_ = 0;
};

struct EngineResult {
  std::string engine, label;
  double train = 0, infer = 0, train_min = 0, train_max = 0, infer_min = 0, infer_max = 0;
  double peak_share = 0, infer_peak_share = 0;
};

struct ModelResult {
  std::string model;
  int threads = 0, batch = 0;
  double peak_gflops = 0, train_mflop = 0;
  std::vector<EngineResult> engines;
  std::vector<std::string> skipped;  // "engine: reason"
  double train_target = 0, infer_target = 0;
};

ModelResult read_result(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::string line, last;
  while (std::getline(f, line))
    if (!line.empty() && line[0] == '{') last = line;
  if (last.empty()) throw std::runtime_error(path + " holds no JSON line");
  FlatJson j(last);
  ModelResult r;
  r.model = j.flat["model"];
  r.threads = std::atoi(j.flat["threads"].c_str());
  r.batch = std::atoi(j.flat["batch"].c_str());
  for (int i = 0; j.flat.count(fmt::format("engines.{}.engine", i)); ++i) {
    EngineResult e;
    e.engine = j.flat[fmt::format("engines.{}.engine", i)];
    e.train = std::atof(j.flat[fmt::format("engines.{}.train_images_per_second", i)].c_str());
    e.infer = std::atof(j.flat[fmt::format("engines.{}.infer_images_per_second", i)].c_str());
    auto num = [&](const char* key) {
      return std::atof(j.flat[fmt::format("engines.{}.{}", i, key)].c_str());
    };
    e.label = j.flat[fmt::format("engines.{}.label", i)];
    e.train_min = num("train_min"), e.train_max = num("train_max");
    e.infer_min = num("infer_min"), e.infer_max = num("infer_max");
    e.peak_share = num("peak_share"), e.infer_peak_share = num("infer_peak_share");
    r.engines.push_back(e);
  }
  r.peak_gflops = std::atof(j.flat["peak_gflops"].c_str());
  r.train_mflop = std::atof(j.flat["train_mflop_per_image"].c_str());
  for (int i = 0; j.flat.count(fmt::format("skipped.{}.engine", i)); ++i)
    r.skipped.push_back(j.flat[fmt::format("skipped.{}.engine", i)] + ": " +
                        j.flat[fmt::format("skipped.{}.reason", i)]);
  return r;
}

struct Rgb {
  uint8_t r, g, b;
};

class Canvas {
 public:
  Canvas(int w, int h) : w_(w), h_(h), px_(static_cast<size_t>(w) * h * 3, 255) {}
  void rect(int x0, int y0, int x1, int y1, Rgb c) {
    x0 = std::max(0, x0), y0 = std::max(0, y0), x1 = std::min(w_, x1), y1 = std::min(h_, y1);
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) {
        uint8_t* p = &px_[(static_cast<size_t>(y) * w_ + x) * 3];
        p[0] = c.r, p[1] = c.g, p[2] = c.b;
      }
  }
  // stb_easy_font's quads, scaled: its glyphs are about 7 pixels high at scale 1.
  void text(int x, int y, const std::string& s, Rgb c, int scale = 2) {
    static char buffer[200000];
    std::string copy = s;
    int quads = stb_easy_font_print(0, 0, copy.data(), nullptr, buffer, sizeof buffer);
    for (int q = 0; q < quads; ++q) {
      const float* v = reinterpret_cast<const float*>(buffer + q * 4 * 16);
      // Vertex k of quad q: x at v[k * 4], y at v[k * 4 + 1] (16 bytes a vertex).
      float qx0 = v[0], qy0 = v[1], qx1 = v[8], qy1 = v[9];
      rect(x + static_cast<int>(qx0 * scale), y + static_cast<int>(qy0 * scale),
           x + static_cast<int>(qx1 * scale), y + static_cast<int>(qy1 * scale), c);
    }
  }
  int text_width(const std::string& s, int scale = 2) {
    std::string copy = s;
    return stb_easy_font_width(copy.data()) * scale;
  }
  bool save(const std::string& path) const {
    return stbi_write_png(path.c_str(), w_, h_, 3, px_.data(), w_ * 3) != 0;
  }

 private:
  int w_, h_;
  std::vector<uint8_t> px_;
};

Rgb color_of(const std::string& engine) {
  if (engine == "specialized") return {31, 119, 180};
  if (engine == "generic") return {127, 127, 127};
  if (engine == "onednn") return {255, 127, 14};
  if (engine == "pytorch") return {214, 39, 40};
  return {44, 160, 44};
}

std::string grouped(double x);

// The tables of docs/benchmarks.md: one row per engine, medians with their [min-max], the
// share of the measured peak, and the gap to the target when one was given.
void print_markdown(const std::vector<ModelResult>& models) {
  for (const ModelResult& m : models) {
    fmt::print(
        "\n**{}** (batch {}, {} threads, {:.2f} MFLOP per training image, measured peak "
        "{:.0f} GFLOP/s)\n\n",
        m.model, m.batch, m.threads, m.train_mflop, m.peak_gflops);
    fmt::print(
        "| engine | training img/s [min-max] | % of peak | inference img/s [min-max] | "
        "training vs target | inference vs target |\n");
    fmt::print("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    auto versus = [](double v, double target) {
      return target > 0 ? fmt::format("{:.2f}x", v / target) : std::string("-");
    };
    for (const EngineResult& e : m.engines)
      fmt::print("| {} | {} [{}-{}] | {:.1f}% | {} [{}-{}] | {} | {} |\n",
                 e.label.empty() ? e.engine : e.label, grouped(e.train), grouped(e.train_min),
                 grouped(e.train_max), 100 * e.peak_share, grouped(e.infer), grouped(e.infer_min),
                 grouped(e.infer_max), versus(e.train, m.train_target),
                 versus(e.infer, m.infer_target));
    for (const std::string& s : m.skipped) fmt::print("\nskipped: {}\n", s);
  }
}

std::string grouped(double x) {
  std::string digits = std::to_string(std::llround(x)), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out = "benchmarks.png";
  std::vector<std::string> inputs;
  std::map<std::string, std::pair<double, double>> targets;
  bool markdown = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-o" && i + 1 < argc) {
      out = argv[++i];
    } else if (a == "--markdown") {
      markdown = true;
    } else if (a == "--target" && i + 1 < argc) {
      std::string t = argv[++i];
      size_t eq = t.find('='), comma = t.find(',');
      if (eq == std::string::npos || comma == std::string::npos) {
        fmt::print(stderr, "bench_chart: --target MODEL=TRAIN,INFER, got '{}'\n", t);
        return 2;
      }
      targets[t.substr(0, eq)] = {std::atof(t.substr(eq + 1, comma - eq - 1).c_str()),
                                  std::atof(t.substr(comma + 1).c_str())};
    } else if (a == "-h" || a == "--help") {
      fmt::print(
          "usage: bench_chart [-o out.png] [--markdown] [--target MODEL=TRAIN,INFER]... "
          "file.json...\n");
      return 0;
    } else {
      inputs.push_back(a);
    }
  }
  if (inputs.empty()) {
    fmt::print(stderr, "bench_chart: no input (the JSON of cnnc bench --json); try --help\n");
    return 2;
  }
  std::vector<ModelResult> models;
  try {
    for (const std::string& p : inputs) models.push_back(read_result(p));
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_chart: {}\n", e.what());
    return 1;
  }
  for (ModelResult& m : models)
    if (auto t = targets.find(m.model); t != targets.end())
      std::tie(m.train_target, m.infer_target) = t->second;

  if (markdown) print_markdown(models);

  // Layout: per model a title, then a training and an inference group of one bar per engine.
  const int width = 1000, left = 150, right = 150, bar = 22, gap = 6, title_h = 40, group_h = 28;
  int height = 20;
  for (const ModelResult& m : models)
    height += title_h + 2 * (group_h + static_cast<int>(m.engines.size()) * (bar + gap)) + 20;
  Canvas c(width, height);
  const Rgb ink{30, 30, 30}, faint{200, 200, 200}, target_ink{0, 150, 0};
  int y = 20;
  for (const ModelResult& m : models) {
    c.text(20, y,
           fmt::format("{}: images/s, batch {}, {} threads (medians)", m.model, m.batch, m.threads),
           ink, 3);
    y += title_h;
    for (int phase = 0; phase < 2; ++phase) {
      double target = phase == 0 ? m.train_target : m.infer_target, top = target;
      for (const EngineResult& e : m.engines) top = std::max(top, phase == 0 ? e.train : e.infer);
      top *= 1.05;
      c.text(20, y + 6, phase == 0 ? "training" : "inference", ink);
      y += group_h;
      int group_top = y;
      for (const EngineResult& e : m.engines) {
        double v = phase == 0 ? e.train : e.infer;
        int len = top > 0 ? static_cast<int>((width - left - right) * v / top) : 0;
        c.text(20, y + 5, e.engine, ink);
        c.rect(left, y, left + len, y + bar, color_of(e.engine));
        c.text(left + len + 6, y + 5, grouped(v), ink);
        y += bar + gap;
      }
      c.rect(left - 1, group_top, left, y - gap, faint);
      if (target > 0) {
        int x = left + static_cast<int>((width - left - right) * target / top);
        c.rect(x, group_top - 4, x + 2, y - gap + 4, target_ink);
        c.text(x + 4, group_top - 16, fmt::format("target {}", grouped(target)), target_ink);
      }
    }
    y += 20;
  }
  if (!c.save(out)) {
    fmt::print(stderr, "bench_chart: cannot write {}\n", out);
    return 1;
  }
  fmt::print("bench_chart: wrote {} ({} model{})\n", out, models.size(),
             models.size() == 1 ? "" : "s");
  return 0;
}
