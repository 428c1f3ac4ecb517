// cnnc predict FILE --checkpoint CKPT IMAGE...: the class and the probabilities of each picture.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/pictures.hpp"
#include "data/batches.hpp"
#include "dsl/diagnostics.hpp"
#include "engine/engine.hpp"
#include "engine/training.hpp"
#include "train/checkpoint.hpp"
#include "train/params.hpp"
#include "train/trainer.hpp"

namespace cnnc::cli {

namespace {

struct PredictArgs {
  std::string file, checkpoint, engine = "generic";
  std::vector<std::string> images;
  int threads = engine::default_threads();
  int32_t limit = 0;
  bool invert = false, json = false;
  dsl::Limits limits;
  const EmbeddedModel* embedded = nullptr;
};

int run_predict(PredictArgs& a) {
  std::optional<dsl::Graph> graph = load_model(a.embedded, a.file, a.limits);
  if (!graph) return exit_user_error;
  const dsl::Graph& g = *graph;
  if (g.input.c != 1)
    throw std::runtime_error(fmt::format(
        "pictures are read as 1 grey channel, but the model's input is {}", g.input.str()));
  std::vector<Picture> pictures;
  for (const std::string& path : a.images) {
    for (Picture& p : read_pictures(path, a.limit)) {
      if (p.rows != g.input.h || p.cols != g.input.w)
        throw std::runtime_error(fmt::format("'{}' is {}x{}, but model {} takes {}x{} pictures",
                                             p.name, p.cols, p.rows, g.name, g.input.w, g.input.h));
      pictures.push_back(std::move(p));
    }
  }

  std::unique_ptr<engine::Engine> eng =
      engine::make_engine(g, a.engine, engine::slice_size(g.training.batch, a.threads));
  const cnnc_model& m = eng->model();
  rt::Checkpoint c = rt::load_checkpoint(a.checkpoint, rt::model_digest(m), m.param_count);

  // MNIST's digits are white on black; --invert turns a dark digit on paper into one.
  auto n = static_cast<int32_t>(pictures.size());
  size_t size = static_cast<size_t>(g.input.h) * g.input.w;
  std::vector<float> input(n * size);
  for (int32_t i = 0; i < n; ++i) {
    std::vector<uint8_t>& px = pictures[i].pixels;
    if (a.invert)
      for (uint8_t& p : px) p = static_cast<uint8_t>(255 - p);
    rt::pixels_to_floats(px.data(), size, input.data() + i * size);
  }
  int32_t k = m.output_size;
  std::vector<float> output(static_cast<size_t>(n) * k);
  rt::ThreadPool pool(a.threads);
  rt::Workspaces workspaces(m, pool.size());
  rt::forward_batch(m, c.params, input.data(), n, output.data(), pool, workspaces);

  bool softmax = g.layers.back().activation == dsl::Activation::softmax;
  if (!softmax && !a.json)
    fmt::print("(model {} ends without softmax: its raw outputs are shown)\n", g.name);
  for (int32_t i = 0; i < n; ++i) {
    const float* y = output.data() + static_cast<size_t>(i) * k;
    auto best = static_cast<int32_t>(std::max_element(y, y + k) - y);
    if (a.json) {
      fmt::print(
          "{}\n",
          dsl::json_line({{"image", pictures[i].name},
                          {"class", best},
                          {softmax ? "probabilities" : "outputs", std::vector<float>(y, y + k)}}));
      continue;
    }
    fmt::print("{}: {} ({:.2f}%) |", pictures[i].name, best, 100 * y[best]);
    // Up to 20 classes fit a line; beyond that, the five likeliest.
    std::vector<int32_t> shown(static_cast<size_t>(k));
    for (int32_t j = 0; j < k; ++j) shown[j] = j;
    if (k > 20) {
      std::partial_sort(shown.begin(), shown.begin() + 5, shown.end(),
                        [y](int32_t l, int32_t r) { return y[l] > y[r]; });
      shown.resize(5);
    }
    for (int32_t j : shown) fmt::print(" {}:{:.4f}", j, y[j]);
    fmt::print("\n");
  }
  return exit_ok;
}

}  // namespace

void register_predict(CLI::App& app, int& status, const EmbeddedModel* embedded) {
  auto a = std::make_shared<PredictArgs>();
  a->embedded = embedded;
  if (embedded) a->engine = "specialized";  // linked code costs nothing to start
  CLI::App* cmd = app.add_subcommand(
      "predict", "Classify pictures (PNG, PGM, or the images of an IDX file) with a checkpoint");
  if (!embedded) cmd->add_option("file", a->file, ".cnn file")->required();
  cmd->add_option("images", a->images, "PNG or PGM files, or IDX image files")->required();
  cmd->add_option("--checkpoint,--weights", a->checkpoint, "Checkpoint written by train")
      ->required();
  cmd->add_option("--engine", a->engine, "generic or specialized")
      ->capture_default_str()
      ->check(CLI::IsMember({"specialized", "generic"}));
  cmd->add_option("--limit", a->limit, "Only the first N images of an IDX file")
      ->check(within(int64_t{1}, int64_t{INT32_MAX}));
  cmd->add_option("--threads", a->threads, "Threads")->capture_default_str()->check(within(1, 256));
  cmd->add_flag("--invert", a->invert, "Invert grey levels: dark digits on a light background");
  cmd->add_flag("--json", a->json, "One JSON object per picture");
  if (!embedded) add_limit_flags(*cmd, a->limits);
  cmd->callback([a, &status] {
    try {
      status = run_predict(*a);
    } catch (const std::runtime_error& e) {
      fmt::print(stderr, "cnnc: error: {}\n", e.what());
      status = exit_user_error;
    }
  });
}

}  // namespace cnnc::cli
