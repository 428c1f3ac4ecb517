// cnnc train FILE and cnnc eval FILE: training on MNIST-format data and evaluating a checkpoint.
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/interrupt.hpp"
#include "cli/progress.hpp"
#include "cli/ranks.hpp"
#include "codegen/compile/build.hpp"
#include "data/dataset.hpp"
#include "dsl/diagnostics.hpp"
#include "engine/engine.hpp"
#include "engine/training.hpp"
#include "train/checkpoint.hpp"
#include "train/params.hpp"
#include "train/trainer.hpp"

namespace cnnc::cli {

namespace {

std::string percent(double x) {
  return fmt::format("{:.2f}%", 100 * x);
}

struct TrainArgs {
  std::string file, engine = "specialized", target = "auto", data = engine::default_data_dir(), out;
  std::string precision;  // empty: the file's
  std::optional<int64_t> epochs, batch, seed;
  std::optional<double> lr;
  int threads = engine::default_threads();
  int32_t limit = 0;
  int64_t max_steps = 0;
  bool resume = false, json = false;
  dsl::Limits limits;
  const EmbeddedModel* embedded = nullptr;
};

int run_train(TrainArgs& a, Ranks& ranks) {
  std::optional<dsl::Graph> graph = load_model(a.embedded, a.file, a.limits);
  if (!graph) return exit_user_error;
  dsl::Graph& g = *graph;
  dsl::Training& t = g.training;
  if (a.epochs) t.epochs = *a.epochs;
  if (a.batch) t.batch = *a.batch;
  if (a.seed) t.seed = static_cast<uint64_t>(*a.seed);
  if (a.lr) t.optimizer.lr = *a.lr;
  apply_precision(g, a.precision);
  std::filesystem::path out =
      a.out.empty() ? std::filesystem::path("runs") / g.name : std::filesystem::path(a.out);

  // The run's directory first, then the data: what cannot work is reported before any code is
  // generated and compiled.
  std::error_code ec;
  if (ranks.leader()) std::filesystem::create_directories(out, ec);
  if (ec)
    throw std::runtime_error(
        fmt::format("cannot create the run's directory '{}': {}", out.string(), ec.message()));
  rt::Mnist data = engine::load_data(g, a.data, t.validation, a.limit);
  std::unique_ptr<engine::Engine> eng = engine::make_engine(
      g, a.engine, engine::slice_size(t.batch, a.threads * ranks.ranks), a.target);
  const cnnc_model& m = eng->model();
  if (!a.json) fmt::print("engine: {}\n", eng->description());

  rt::TrainOptions o = engine::train_options(t);  // after --lr, which it carries as the base rate
  if (ranks.leader()) o.out_dir = out;  // the other ranks write nothing, and resume from rank 0
  o.resume = a.resume;
  o.max_steps = a.max_steps;
  o.threads = a.threads;
  bool progress = ranks.leader() && !a.json && isatty(STDERR_FILENO);
  // Ctrl-C or SIGTERM, on any rank, stops the run after the step under way, with a checkpoint
  // of where it stands.
  InterruptRequest interrupt;
  bool interrupted = false;
  rt::StepRecord last_step;
  rt::TrainHooks hooks;
  hooks.after_step = [&](const rt::StepRecord& at) {
    if (progress) draw_progress(at);
    last_step = at;
    interrupted = ranks.any_rank(interrupt.requested());
    // --max-steps within an epoch ends the run as Ctrl-C does, with a checkpoint of the place
    // that --resume continues; on an epoch's last step the trainer's own limit ends the run once
    // the epoch is evaluated and checkpointed as done.
    bool within_epoch = a.max_steps > 0 && at.step >= a.max_steps && at.batch < at.batches;
    return !interrupted && !within_epoch;
  };
  hooks.after_epoch = [&](const rt::EpochRecord& e) {
    if (progress) erase_progress();
    std::string val = e.validation.count
                          ? fmt::format(" | validation loss {:.4f} acc {}", e.validation.loss,
                                        percent(e.validation.accuracy))
                          : "";
    fmt::print(
        "epoch {}/{}: loss {:.4f} acc {}{} | test loss {:.4f} acc {} | {:.1f} s, {:.0f} images/s\n",
        e.epoch, o.epochs, e.train_loss, percent(e.train_accuracy), val, e.test.loss,
        percent(e.test.accuracy), e.seconds, e.images_per_second);
    std::fflush(stdout);
  };

  std::vector<float> params = engine::initial_params(g, m, t.seed);
  rt::ThreadPool pool(a.threads);
  fmt::print(
      "training {} on {} ({} images, test {}) with the {} engine: batch {}, {}{} thread{}, {} "
      "epoch{}\n",
      g.name, a.data, data.train.count, data.test.count, a.engine, t.batch,
      ranks.ranks > 1 ? fmt::format("{} ranks x ", ranks.ranks) : "", a.threads,
      a.threads == 1 ? "" : "s", t.epochs, t.epochs == 1 ? "" : "s");
  if (a.resume && a.max_steps > 0 && ranks.leader()) {
    // A run that has taken its --max-steps has none left: the trainer would end before a step
    // and count the checkpoint's epoch as done. The other ranks end with rank 0 (ranks.hpp).
    rt::Checkpoint c =
        rt::load_checkpoint(out / "checkpoint.bin", rt::model_digest(m), m.param_count);
    if (c.step >= a.max_steps)
      throw std::runtime_error(fmt::format(
          "--max-steps {}: the run in '{}' has taken {} steps already; to continue it, give a "
          "larger --max-steps or none",
          a.max_steps, out.string(), c.step));
  }
  std::unique_ptr<rt::Learner> learner = ranks.learner(m, params, pool, o.batch);
  rt::TrainResult r = rt::train(*learner, data, o, hooks);
  if (r.diverged) {
    fmt::print(stderr, "cnnc: error: {}\n", r.divergence);
    return exit_user_error;
  }
  if (r.stopped && interrupted) {
    ranks.end_together();
    if (progress) erase_progress();
    if (ranks.leader())
      fmt::print(stderr,
                 "cnnc: interrupted after epoch {}, batch {} of {} (step {}); its state is in {}\n"
                 "cnnc: to continue, run the same command with --resume\n",
                 last_step.epoch, last_step.batch, last_step.batches, last_step.step,
                 (out / "checkpoint.bin").string());
    return interrupt.exit_status();
  }
  if (r.stopped) {
    if (progress) erase_progress();
    fmt::print(
        "stopped after epoch {}, batch {} of {} (step {}), as --max-steps asks; its state is "
        "in {}\nto continue, run the same command with --resume and a larger --max-steps, or "
        "none\n",
        last_step.epoch, last_step.batch, last_step.batches, last_step.step,
        (out / "checkpoint.bin").string());
  }
  // A run stopped within an epoch has not evaluated its weights.
  rt::EvalResult last = r.stopped || r.history.empty() ? rt::evaluate(m, params, data.test, pool)
                                                       : r.history.back().test;
  double ips = r.images / std::max(r.train_seconds, 1e-9);
  std::string digest = rt::weights_digest(params);
  fmt::print("test accuracy {} ({} images); weights in {}\n", percent(last.accuracy), last.count,
             (out / "checkpoint.bin").string());
  if (a.json)
    fmt::print("{}\n", dsl::json_line(
                           {{"model", g.name},
                            {"engine", a.engine},
                            {"build", eng->build().empty() ? nlohmann::ordered_json()
                                                           : nlohmann::ordered_json(eng->build())},
                            {"build_seconds", eng->build_seconds()},
                            {"epochs", t.epochs},
                            {"ranks", ranks.ranks},
                            {"threads", a.threads},
                            {"batch", t.batch},
                            {"test_accuracy", last.accuracy},
                            {"test_loss", last.loss},
                            {"train_images_per_second", ips},
                            {"seconds", r.train_seconds},
                            {"wait_seconds", ranks.wait_seconds()},
                            {"communication_seconds", ranks.communication_seconds()},
                            {"weights_digest", digest}}));
  return exit_ok;
}

struct EvalArgs {
  std::string file, weights, engine = "generic", data = engine::default_data_dir();
  int threads = engine::default_threads();
  int32_t limit = 0;
  bool json = false;
  dsl::Limits limits;
  const EmbeddedModel* embedded = nullptr;
};

int run_eval(EvalArgs& a) {
  std::optional<dsl::Graph> graph = load_model(a.embedded, a.file, a.limits);
  if (!graph) return exit_user_error;
  const dsl::Graph& g = *graph;
  std::unique_ptr<engine::Engine> eng =
      engine::make_engine(g, a.engine, engine::slice_size(g.training.batch, a.threads));
  const cnnc_model& m = eng->model();
  rt::Checkpoint c = rt::load_checkpoint(a.weights, rt::model_digest(m), m.param_count);
  rt::Mnist data = engine::load_data(g, a.data, 0, a.limit);
  rt::ThreadPool pool(a.threads);
  rt::EvalResult r = rt::evaluate(m, c.params, data.test, pool);
  int32_t k = m.output_size;
  if (a.json) {
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (int32_t i = 0; i < k; ++i)
      rows.push_back(std::vector<int64_t>(r.confusion.begin() + int64_t{i} * k,
                                          r.confusion.begin() + int64_t{i + 1} * k));
    fmt::print("{}\n", dsl::json_line({{"model", g.name},
                                       {"images", r.count},
                                       {"test_accuracy", r.accuracy},
                                       {"test_loss", r.loss},
                                       {"confusion", rows}}));
    return exit_ok;
  }
  fmt::print("{} on {} test images: accuracy {}, loss {:.4f}\n", g.name, r.count,
             percent(r.accuracy), r.loss);
  if (k <= 20) {
    fmt::print("confusion matrix (rows: true class, columns: predicted)\n     ");
    for (int32_t j = 0; j < k; ++j) fmt::print("{:>6}", j);
    fmt::print("\n");
    for (int32_t i = 0; i < k; ++i) {
      fmt::print("{:>4} ", i);
      for (int32_t j = 0; j < k; ++j)
        fmt::print("{:>6}", r.confusion[static_cast<size_t>(i) * k + j]);
      fmt::print("\n");
    }
  }
  return exit_ok;
}

}  // namespace

void register_train(CLI::App& app, int& status, const EmbeddedModel* embedded) {
  auto a = std::make_shared<TrainArgs>();
  a->embedded = embedded;
  CLI::App* cmd = app.add_subcommand("train", "Train a model on MNIST-format data");
  if (!embedded) cmd->add_option("file", a->file, ".cnn file")->required();
  cmd->add_option("--engine", a->engine, "specialized (generated for this model) or generic")
      ->capture_default_str()
      ->check(CLI::IsMember({"specialized", "generic"}));
  cmd->add_option("--target", a->target,
                  "The specialised code's ISA: auto, avx512, avx2 or portable")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "avx512", "avx2", "portable"}));
  add_precision_flag(*cmd, a->precision);
  cmd->add_option("--data", a->data,
                  "Directory with the four IDX files (default $CNNC_DATA, then data/mnist)")
      ->capture_default_str();
  cmd->add_option("--epochs", a->epochs, "Override the file's epochs")
      ->check(within(int64_t{1}, int64_t{100000}));
  cmd->add_option("--batch", a->batch, "Override the file's batch size")
      ->check(within(int64_t{1}, int64_t{65536}));
  cmd->add_option("--lr", a->lr, "Override the optimizer's learning rate")
      ->check(within(1e-9, 10.0));
  cmd->add_option("--threads", a->threads, "Threads that split each batch")
      ->capture_default_str()
      ->check(within(1, 256));
  cmd->add_option("--seed", a->seed, "Override the file's seed")
      ->check(within(int64_t{0}, INT64_MAX));
  cmd->add_option("--out", a->out,
                  "Where history.csv and checkpoint.bin go (default runs/<model>)");
  cmd->add_flag("--resume", a->resume, "Continue from the checkpoint in --out");
  cmd->add_flag("--json", a->json, "End with one JSON object of the results");
  cmd->add_option("--limit", a->limit, "Use only the first N training and test images")
      ->check(within(int64_t{1}, int64_t{INT32_MAX}));
  cmd->add_option("--max-steps", a->max_steps, "Stop after N optimizer steps")
      ->check(within(int64_t{1}, int64_t{INT32_MAX}));
  if (!embedded) add_limit_flags(*cmd, a->limits);
  cmd->callback([a, &status] {
    status = run_as_ranks(
        [&](Ranks& ranks) { return user_errors([&] { return run_train(*a, ranks); }); });
  });
}

void register_eval(CLI::App& app, int& status, const EmbeddedModel* embedded) {
  auto a = std::make_shared<EvalArgs>();
  a->embedded = embedded;
  // Linked code costs nothing to start, where cnnc would compile it first.
  if (embedded) a->engine = "specialized";
  CLI::App* cmd = app.add_subcommand(
      "eval", "Evaluate a checkpoint on the test set: accuracy, loss, confusion matrix");
  if (!embedded) cmd->add_option("file", a->file, ".cnn file")->required();
  cmd->add_option("--weights", a->weights, "Checkpoint written by cnnc train")->required();
  cmd->add_option("--engine", a->engine, "generic or specialized")->capture_default_str();
  cmd->add_option("--data", a->data, "Directory with the four IDX files")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads")->capture_default_str()->check(within(1, 256));
  cmd->add_option("--limit", a->limit, "Use only the first N test images")
      ->check(within(int64_t{1}, int64_t{INT32_MAX}));
  cmd->add_flag("--json", a->json, "Print one JSON object");
  if (!embedded) add_limit_flags(*cmd, a->limits);
  cmd->callback([a, &status] { status = user_errors([&] { return run_eval(*a); }); });
}

}  // namespace cnnc::cli
