// bench_chart: the chart of docs/benchmarks.md, drawn from the JSON lines `cnnc bench --json`
// prints: one panel per model, training and inference images/s per engine as horizontal bars,
// with the targets as vertical marks. The JSON is read with nlohmann-json, the chart
// drawn by draw/ (Cairo, DejaVu Sans).
//
//   bench_chart -o docs/benchmarks.png --target lenet5=140000,623000
//       --target keras_mnist=4600,0 lenet5.json keras_mnist.json
//
// Each input file may hold any output; its last line that starts with '{' is read.
#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "draw/charts.hpp"

namespace {

struct EngineResult {
  std::string engine, label;
  double train = 0, infer = 0, train_min = 0, train_max = 0, infer_min = 0, infer_max = 0;
  double peak_share = 0, infer_peak_share = 0;
  double bf16_peak_share = 0;  // a bf16 engine's share of the bf16 peak; 0 for the others
};

struct ModelResult {
  std::string model;
  int threads = 0, batch = 0;
  double peak_gflops = 0, bf16_peak_gflops = 0, train_mflop = 0;
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
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(last);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": its last JSON line does not parse: " + e.what());
  }
  ModelResult r;
  r.model = j.value("model", "");
  r.threads = j.value("threads", 0);
  r.batch = j.value("batch", 0);
  r.peak_gflops = j.value("peak_gflops", 0.0);
  r.bf16_peak_gflops = j.value("bf16_peak_gflops", 0.0);
  r.train_mflop = j.value("train_mflop_per_image", 0.0);
  for (const nlohmann::json& e : j.value("engines", nlohmann::json::array()))
    r.engines.push_back({e.value("engine", ""), e.value("label", ""),
                         e.value("train_images_per_second", 0.0),
                         e.value("infer_images_per_second", 0.0), e.value("train_min", 0.0),
                         e.value("train_max", 0.0), e.value("infer_min", 0.0),
                         e.value("infer_max", 0.0), e.value("peak_share", 0.0),
                         e.value("infer_peak_share", 0.0), e.value("bf16_peak_share", 0.0)});
  for (const nlohmann::json& s : j.value("skipped", nlohmann::json::array()))
    r.skipped.push_back(s.value("engine", "") + ": " + s.value("reason", ""));
  return r;
}

cnnc::draw::Rgb color_of(const std::string& engine) {
  if (engine == "specialized") return {31, 119, 180};
  if (engine == "generic") return {127, 127, 127};
  if (engine == "onednn") return {255, 127, 14};
  if (engine == "pytorch" || engine == "pytorch-fp32") return {214, 39, 40};
  if (engine == "pytorch-bf16") return {255, 152, 150};
  return {44, 160, 44};
}

std::string grouped(double x);

std::string threads_text(int threads) {
  return fmt::format("{} thread{}", threads, threads == 1 ? "" : "s");
}

// The tables of docs/benchmarks.md: one row per engine, medians with their [min-max], the
// share of the measured FP32 peak (and a bf16 engine's of the bf16 peak), and the gap to the
// issue's target when one was given.
void print_markdown(const std::vector<ModelResult>& models) {
  for (const ModelResult& m : models) {
    fmt::print(
        "\n**{}** (batch {}, {}, {:.2f} MFLOP per training image, measured peak "
        "{:.0f} GFLOP/s{})\n\n",
        m.model, m.batch, threads_text(m.threads), m.train_mflop, m.peak_gflops,
        m.bf16_peak_gflops > 0 ? fmt::format(", bf16 peak {:.0f}", m.bf16_peak_gflops) : "");
    fmt::print(
        "| engine | training img/s [min-max] | % of peak | inference img/s [min-max] | "
        "training vs target | inference vs target |\n");
    fmt::print("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    auto versus = [](double v, double target) {
      return target > 0 ? fmt::format("{:.2f}x", v / target) : std::string("-");
    };
    for (const EngineResult& e : m.engines)
      fmt::print(
          "| {} | {} [{}-{}] | {:.1f}%{} | {} [{}-{}] | {} | {} |\n",
          e.label.empty() ? e.engine : e.label, grouped(e.train), grouped(e.train_min),
          grouped(e.train_max), 100 * e.peak_share,
          e.bf16_peak_share > 0 ? fmt::format(" ({:.1f}% of bf16's)", 100 * e.bf16_peak_share) : "",
          grouped(e.infer), grouped(e.infer_min), grouped(e.infer_max),
          versus(e.train, m.train_target), versus(e.infer, m.infer_target));
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

  // Per model a panel with a training and an inference group of one bar per engine.
  std::vector<cnnc::draw::BarPanel> panels;
  for (const ModelResult& m : models) {
    cnnc::draw::BarPanel& panel = panels.emplace_back();
    panel.title = fmt::format("{}: images/s, batch {}, {} (medians)", m.model, m.batch,
                              threads_text(m.threads));
    for (int phase = 0; phase < 2; ++phase) {
      cnnc::draw::BarGroup& g = panel.groups.emplace_back();
      g.title = phase == 0 ? "training" : "inference";
      g.mark = phase == 0 ? m.train_target : m.infer_target;
      g.mark_label = fmt::format("target {}", grouped(g.mark));
      for (const EngineResult& e : m.engines) {
        const double v = phase == 0 ? e.train : e.infer;
        g.bars.push_back({e.engine, grouped(v), v, color_of(e.engine)});
      }
    }
  }
  try {
    cnnc::draw::write_bar_chart(out, panels, 1000);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_chart: {}\n", e.what());
    return 1;
  }
  fmt::print("bench_chart: wrote {} ({} model{})\n", out, models.size(),
             models.size() == 1 ? "" : "s");
  return 0;
}
