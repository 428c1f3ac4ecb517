// cnnc bench --to-accuracy: training seconds to a test accuracy, per engine and seed.
//
// cnnc's engines and the oneDNN peer train through the trainer's epoch loop (rt::train: the same
// epoch order, learning-rate schedule, augmentation and steps as cnnc train), with the run's
// per-step hook evaluating the test set every --eval-every steps and at each epoch's end, and
// ending the run at the first evaluation that reaches the target. Only the steps are timed
// (batch preparation included, as in cnnc train's images/s); evaluations are not. PyTorch runs
// the same network from the same initial parameters in bench/peers/pytorch_mnist.py's accuracy
// mode, with its own shuffling and dropout masks. Runs interleave by seed: seed 1 on every
// engine, then seed 2.
//
// Beside the training seconds, each run's seconds from the command to the accuracy: what `cnnc
// train` of that seed alone would take with a warm compile cache. For cnnc's engines and oneDNN,
// this process's start-up (from exec, libraries loaded, to the data read, once) plus that run's
// wall time (the engine built, the steps and the evaluations up to the one that reached it); for
// PyTorch, its process's wall time from its start to its result.
#include "bench/to_accuracy.hpp"

#include <fmt/format.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "bench/engine_variant.hpp"
#include "bench/onednn_peer_loader.hpp"
#include "bench/pytorch_peer.hpp"
#include "data/batches.hpp"
#include "dsl/diagnostics.hpp"
#include "engine/engine.hpp"
#include "engine/training.hpp"
#include "train/stopwatch.hpp"
#include "train/thread_pool.hpp"
#include "train/trainer.hpp"

namespace cnnc::bench {

namespace {

struct Outcome {
  Outcome() = default;
  Outcome(std::string name, uint64_t s) : engine(std::move(name)), seed(s) {}
  std::string engine;
  uint64_t seed = 0;
  bool ran = false, reached = false;
  std::string note;  // why it did not run, or how it ended
  double seconds = 0, accuracy = 0;
  double command_seconds = 0;  // from the command to the accuracy (or the end), warm cache
  int64_t epoch = 0, steps = 0;
};

// Seconds since this process was exec'ed (/proc/self/stat's start time, in clock ticks since
// boot, against CLOCK_BOOTTIME): loading cnnc's libraries counts as part of the command.
double seconds_since_process_start() {
  std::ifstream in("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  // Field 22, counted after the command name's closing parenthesis (the name may hold spaces).
  size_t at = stat.rfind(')');
  if (at == std::string::npos) return 0;
  std::istringstream fields(stat.substr(at + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) fields >> field;  // fields 3 to 22, leaving the 22nd
  if (!fields) return 0;
  timespec now{};
  clock_gettime(CLOCK_BOOTTIME, &now);
  double start = std::stod(field) / static_cast<double>(sysconf(_SC_CLK_TCK));
  return std::max(0.0, static_cast<double>(now.tv_sec) + 1e-9 * now.tv_nsec - start);
}

nlohmann::ordered_json outcome_json(const Outcome& o) {
  return {{"engine", o.engine},
          {"seed", o.seed},
          {"ran", o.ran},
          {"reached", o.reached},
          {"train_seconds", o.seconds},
          {"command_seconds", o.command_seconds},
          {"epoch", o.epoch},
          {"steps", o.steps},
          {"accuracy", o.accuracy},
          {"note", o.note}};
}

// The oneDNN network takes batches of exactly its size: the loop drops an epoch's short last
// batch (32 of MNIST's 60,000 images at batch 64), and evaluation pads the test set's last one.
class OnednnLearner final : public rt::Learner {
 public:
  OnednnLearner(const cnnc_model& table, const std::vector<float>& params, int32_t batch,
                int threads)
      : table_(table), net_(table, batch, threads), batch_(batch) {
    net_.set_params(params.data());
  }
  rt::StepResult step(const float* images, const int32_t* labels, int32_t n,
                      const cnnc_optimizer& opt, uint32_t epoch, uint32_t sample_base,
                      uint64_t seed) override {
    if (n != batch_) throw std::logic_error("OnednnLearner: a short batch");
    rt::StepResult r;
    r.loss_sum = net_.train_step(images, labels, opt, epoch, sample_base, seed);
    if (!std::isfinite(r.loss_sum)) r.non_finite = "the loss";
    return r;
  }
  rt::EvalResult evaluate(const rt::LabeledImages& data) override {
    int64_t sample = int64_t{table_.input_h} * table_.input_w * table_.input_c;
    std::vector<float> padded(static_cast<size_t>(batch_ * sample), 0.0f),
        outputs(static_cast<size_t>(batch_) * table_.output_size);
    return rt::evaluate(table_, data, batch_, [&](const float* images, int32_t n, float* out) {
      std::copy(images, images + n * sample, padded.begin());
      net_.forward(padded.data(), outputs.data());
      std::copy(outputs.begin(), outputs.begin() + int64_t{n} * table_.output_size, out);
    });
  }
  int32_t full_batches_only() const override { return batch_; }

 private:
  const cnnc_model& table_;
  OnednnPeer net_;
  int32_t batch_;
};

// One engine that trains through rt::train: cnnc's, or the oneDNN peer.
Outcome train_in_process(const dsl::Graph& g, rt::Learner& learner, const rt::Mnist& data,
                         const AccuracyOptions& a, uint64_t seed, const std::string& engine) {
  Outcome out{engine, seed};
  out.ran = true;
  rt::TrainOptions o = engine::train_options(g.training);
  o.seed = seed;
  o.epochs = static_cast<int32_t>(a.epochs);
  o.schedule_epochs = static_cast<int32_t>(g.training.epochs);
  o.evaluate_epochs = false;  // the hook evaluates
  rt::TrainHooks hooks;
  hooks.after_step = [&](const rt::StepRecord& at) {
    bool due = at.batch == at.batches || (a.eval_every > 0 && at.step % a.eval_every == 0);
    if (!due) return true;
    out.accuracy = learner.evaluate(data.test).accuracy;
    out.epoch = at.epoch;
    out.steps = at.step;
    out.reached = out.accuracy >= a.target;
    return !out.reached;
  };
  rt::TrainResult r = rt::train(learner, data, o, hooks);
  out.seconds = r.train_seconds;
  if (r.diverged) {
    out.steps = r.steps;
    out.note = r.divergence;
  } else if (!out.reached) {
    out.note = fmt::format("not reached after {} epoch{}", a.epochs, a.epochs == 1 ? "" : "s");
  }
  return out;
}

// PyTorch's best setting for this model, from serve-mode calibration windows on the first
// batch of the training set (PytorchPeer::start_best); nullopt and `why` when it cannot run.
std::optional<PeerSetting> best_pytorch_setting(const dsl::Graph& g, const cnnc_model& table,
                                                const AccuracyOptions& a, const rt::Mnist& data,
                                                std::string& why) {
  const int32_t batch = static_cast<int32_t>(g.training.batch);
  const rt::LabeledImages& train = data.train;
  const int32_t n = std::min(batch, train.count);
  std::vector<int32_t> first(static_cast<size_t>(n)), labels(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) first[static_cast<size_t>(i)] = i;
  std::vector<float> images(static_cast<size_t>(n) * train.rows * train.cols);
  rt::prepare_batch(train, first, images.data(), labels.data());
  std::vector<float> params = engine::initial_params(g, table, g.training.seed);
  std::unique_ptr<PytorchPeer> peer = PytorchPeer::start_best(
      a.python, [&](int t) { return peer_config(g, table, batch, t); }, a.threads,
      PeerBatch{params, images, labels}, why);
  if (!peer) return std::nullopt;
  return peer->setting();
}

Outcome train_pytorch(const std::string& name, const dsl::Graph& g, const cnnc_model& table,
                      const AccuracyOptions& a, uint64_t seed,
                      const std::optional<PeerSetting>& setting, const std::string& why) {
  Outcome out{name, seed};
  if (!setting) {
    out.note = "skipped: " + why;
    return out;
  }
  char tmpl[] = "/tmp/cnnc-accuracy.XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("cannot create a temporary directory");
  std::string dir = tmpl;
  dsl::Graph seeded = g;
  seeded.training.seed = seed;
  nlohmann::json cfg =
      peer_config(seeded, table, static_cast<int32_t>(g.training.batch), setting->threads);
  cfg["memory_format"] = setting->memory_format;
  std::string config = cfg.dump();
  write_binary(dir + "/config.json", config.data(), config.size());
  std::vector<float> params = engine::initial_params(g, table, seed);
  write_binary(dir + "/params.f32", params.data(), params.size() * sizeof(float));
  rt::Clock::time_point started = rt::Clock::now();
  {
    LineProcess p(
        {a.python, peers_dir() + "/pytorch_mnist.py", "accuracy", "--config", dir + "/config.json",
         "--data", a.data, "--params", dir + "/params.f32", "--target", fmt::format("{}", a.target),
         "--eval-every", fmt::format("{}", a.eval_every), "--epochs", fmt::format("{}", a.epochs)},
        peer_environment(setting->threads, setting->wait_policy));
    out.note = "the script ended without a result";
    while (std::optional<std::string> line = p.receive()) {
      nlohmann::json r = parse_reply(*line);
      if (r.contains("error")) {
        out.note = "skipped: " + r["error"].get<std::string>();
        break;
      }
      if (!r.value("done", false)) continue;
      out.ran = true;
      out.reached = r.value("reached", false);
      out.seconds = r.value("seconds", 0.0);
      out.accuracy = r.value("accuracy", 0.0);
      out.epoch = r.value("epoch", int64_t{0});
      out.steps = r.value("step", int64_t{0});
      out.command_seconds = rt::seconds_since(started);
      out.note = out.reached ? "" : fmt::format("not reached after {} epochs", a.epochs);
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return out;
}

}  // namespace

int run_to_accuracy(const dsl::Graph& g, const AccuracyOptions& a) {
  std::vector<uint64_t> seeds = a.seeds.empty() ? std::vector{g.training.seed} : a.seeds;
  rt::Mnist data = engine::load_data(g, a.data);
  const int32_t batch = static_cast<int32_t>(g.training.batch);
  const int32_t slice = engine::slice_size(batch, a.threads);
  // The generic engine's model is the layer table, parameter layout and initialisation every
  // engine starts from.
  std::unique_ptr<engine::Engine> reference = engine::make_engine(g, "generic", slice);
  const cnnc_model& table = reference->model();
  rt::ThreadPool pool(a.threads);
  const double startup = seconds_since_process_start();

  // Before the table, whose rows the search's lines would otherwise interrupt.
  std::map<std::string, std::pair<std::optional<PeerSetting>, std::string>> pytorch_settings;
  for (const std::string& name : a.engines)
    if (EngineVariant v = engine_variant(g, name); v.base == "pytorch") {
      auto& [setting, why] = pytorch_settings[name];
      setting = best_pytorch_setting(v.graph, table, a, data, why);
    }
  fmt::print(
      "bench {} to {:.2f}% test accuracy: MNIST from {}, batch {}, {} thread{}, evaluated every "
      "{}, at most {} epochs\n",
      g.name, 100 * a.target, a.data, batch, a.threads, a.threads == 1 ? "" : "s",
      a.eval_every > 0 ? fmt::format("{} steps", a.eval_every) : std::string("epoch"), a.epochs);
  fmt::print("{:<16} {:>6} {:>12} {:>10} {:>8} {:>8} {:>10}  {}\n", "engine", "seed", "train s",
             "command s", "epoch", "steps", "accuracy", "");
  std::vector<Outcome> outcomes;
  for (uint64_t seed : seeds) {
    for (const std::string& name : a.engines) {
      Outcome o;
      rt::Clock::time_point started = rt::Clock::now();
      const EngineVariant v = engine_variant(g, name);
      if (v.base == "pytorch") {
        const auto& [setting, why] = pytorch_settings.at(name);
        o = train_pytorch(name, v.graph, table, a, seed, setting, why);
      } else if (name == "onednn") {
        try {
          OnednnLearner learner(table, engine::initial_params(g, table, seed), batch, a.threads);
          o = train_in_process(g, learner, data, a, seed, name);
        } catch (const OnednnUnsupported& e) {
          o = {name, seed};
          o.note = fmt::format("skipped: {}", e.what());
        }
      } else {
        std::unique_ptr<engine::Engine> e = engine::make_engine(v.graph, v.base, slice);
        std::vector<float> params = engine::initial_params(v.graph, e->model(), seed);
        rt::ModelLearner learner(e->model(), params, pool, batch);
        o = train_in_process(v.graph, learner, data, a, seed, name);
      }
      if (v.base != "pytorch") o.command_seconds = startup + rt::seconds_since(started);
      fmt::print("{:<16} {:>6} {:>12} {:>10} {:>8} {:>8} {:>10}  {}\n", o.engine, o.seed,
                 o.ran ? fmt::format("{:.2f}", o.seconds) : "-",
                 o.ran ? fmt::format("{:.2f}", o.command_seconds) : "-",
                 o.ran ? std::to_string(o.epoch) : "-", o.ran ? std::to_string(o.steps) : "-",
                 o.ran ? fmt::format("{:.2f}%", 100 * o.accuracy) : "-",
                 o.reached ? "reached" : o.note);
      std::fflush(stdout);
      outcomes.push_back(o);
    }
  }
  if (a.json) {
    nlohmann::ordered_json runs = nlohmann::ordered_json::array();
    for (const Outcome& o : outcomes) runs.push_back(outcome_json(o));
    fmt::print("{}\n", dsl::json_line({{"model", g.name},
                                       {"target", a.target},
                                       {"threads", a.threads},
                                       {"batch", batch},
                                       {"eval_every", a.eval_every},
                                       {"epochs", a.epochs},
                                       {"runs", runs}}));
  }
  return 0;
}

}  // namespace cnnc::bench
