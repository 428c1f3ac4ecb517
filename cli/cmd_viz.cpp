// cnnc viz FILE [--weights CKPT] [--image IMG | --index N]: the lesson of viz/report.hpp for
// one input, written to runs/<model>/viz/ unless --out says otherwise; with --weights also the
// run's curves (history.csv beside the checkpoint), confusion matrix and worst mistakes.
#include <fmt/format.h>

#include <filesystem>
#include <optional>

#include "cli/commands.hpp"
#include "cli/pictures.hpp"
#include "data/batches.hpp"
#include "data/idx.hpp"
#include "engine/engine.hpp"
#include "engine/training.hpp"
#include "train/checkpoint.hpp"
#include "train/params.hpp"
#include "viz/report.hpp"

namespace cnnc::cli {

namespace {

struct VizArgs {
  std::string file, weights, image, out, data = engine::default_data_dir();
  int32_t index = 0;
  dsl::Limits limits;
};

int run_viz(const VizArgs& a) {
  std::optional<dsl::Graph> graph = load_model(a.file, a.limits);
  if (!graph) return exit_user_error;
  const dsl::Graph& g = *graph;
  if (g.input.c != 1)
    throw std::runtime_error(fmt::format(
        "pictures are read as 1 grey channel, but the model's input is {}", g.input.str()));

  std::unique_ptr<engine::Engine> e = engine::make_engine(g, "generic", 1);
  std::vector<float> params;
  if (!a.weights.empty()) {
    params =
        rt::load_checkpoint(a.weights, rt::model_digest(e->model()), e->model().param_count).params;
  } else {
    params = engine::initial_params(g, e->model(), g.training.seed);
    // Fixed weights (weights= ... frozen) need no checkpoint; anything trainable is shown as
    // initialised, which the user should know before reading the pictures.
    if (g.trainable_params > 0)
      fmt::print(stderr,
                 "cnnc viz: no --weights: the {} trainable parameters are shown as initialised "
                 "from seed {}, untrained\n",
                 g.trainable_params, g.training.seed);
  }

  // The test set gives --index its image and a trained model its confusion matrix; a picture
  // from --image needs it only for the latter, so then a missing data set is a note, not an error.
  std::optional<rt::Mnist> data;
  if (a.image.empty() || !a.weights.empty()) {
    try {
      data = engine::load_data(g, a.data);
    } catch (const rt::DataError& missing) {
      if (a.image.empty()) throw;
      fmt::print(stderr, "cnnc viz: no test set ({}): no confusion matrix\n", missing.what());
    }
  }
  std::vector<uint8_t> pixels;
  std::string name;
  if (!a.image.empty()) {
    Picture p = std::move(read_pictures(a.image, 1).at(0));
    if (p.rows != g.input.h || p.cols != g.input.w)
      throw std::runtime_error(fmt::format("'{}' is {}x{}, but model {} takes {}x{} pictures",
                                           p.name, p.cols, p.rows, g.name, g.input.w, g.input.h));
    pixels = std::move(p.pixels), name = p.name;
  } else {
    if (a.index >= data->test.count)
      throw std::runtime_error(fmt::format("--index {} is past the {} test images of {}", a.index,
                                           data->test.count, data->test.images_path));
    const uint8_t* p = data->test.image(a.index);
    pixels.assign(p, p + static_cast<size_t>(g.input.h) * g.input.w);
    name = fmt::format("test image {} (label {})", a.index, data->test.labels[a.index]);
  }
  // A trained model's run: history.csv beside its checkpoint, and the test set.
  viz::RunResults run;
  if (!a.weights.empty()) {
    const std::filesystem::path history =
        std::filesystem::path(a.weights).parent_path() / "history.csv";
    if (std::filesystem::exists(history)) run.history = history;
    if (data) run.test = &data->test;
  }
  std::vector<float> input(pixels.size());
  rt::pixels_to_floats(pixels.data(), pixels.size(), input.data());

  const std::string out = a.out.empty() ? "runs/" + g.name + "/viz" : a.out;
  std::vector<viz::Figure> figures = viz::write_report(g, params, input, name, out, run);
  fmt::print("cnnc viz: wrote {}/index.html and {} pictures of {} on {}\n", out, figures.size(),
             g.name, name);
  return exit_ok;
}

}  // namespace

void register_viz(CLI::App& app, int& status) {
  auto a = std::make_shared<VizArgs>();
  CLI::App* cmd = app.add_subcommand(
      "viz", "Pictures of what a model computes on one input: filters, feature maps, index.html");
  cmd->add_option("file", a->file, ".cnn file")->required();
  cmd->add_option("--weights,--checkpoint", a->weights,
                  "Checkpoint written by train (default: the initial weights)");
  auto* image = cmd->add_option("--image", a->image, "A PNG or PGM picture to show");
  cmd->add_option("--index", a->index, "Else test image N of the data set")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->excludes(image);
  cmd->add_option("--out", a->out, "Directory of the pictures (default runs/<model>/viz)");
  cmd->add_option("--data", a->data, "MNIST directory")->capture_default_str();
  add_limit_flags(*cmd, a->limits);
  cmd->callback([a, &status] {
    try {
      status = run_viz(*a);
    } catch (const std::runtime_error& e) {
      fmt::print(stderr, "cnnc: error: {}\n", e.what());
      status = exit_user_error;
    }
  });
}

}  // namespace cnnc::cli
