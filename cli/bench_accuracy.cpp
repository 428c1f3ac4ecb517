// cnnc bench --to-accuracy: training seconds to a test accuracy, per engine and seed.
//
// cnnc's engines train as cnnc train does (the same epoch order, learning-rate schedule,
// augmentation and rt::TrainStep), but evaluate the test set every --eval-every steps and stop
// at the first evaluation that reaches the target. Only the steps are timed (batch preparation
// included, as in cnnc train's images/s); evaluations are not. PyTorch runs the same network
// from the same initial parameters in bench/peers/pytorch_mnist.py's accuracy mode, with its
// own shuffling and dropout masks. Runs interleave by seed: seed 1 on every engine, then seed 2.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <span>
#include <stdexcept>

#include "bench_accuracy.hpp"
#include "bench_peers.hpp"
#include "commands.hpp"
#include "data/augment.hpp"
#include "data/batches.hpp"
#include "data/dataset.hpp"
#include "engines.hpp"
#include "stopwatch.hpp"
#include "thread_pool.hpp"
#include "trainer.hpp"
#ifdef CNNC_WITH_ONEDNN
#include "bench/onednn_net.hpp"
#endif

namespace cnnc::cli {

namespace {

using rt::Clock;
using rt::seconds_since;

struct Outcome {
  Outcome() = default;
  Outcome(std::string name, uint64_t s) : engine(std::move(name)), seed(s) {}
  std::string engine;
  uint64_t seed = 0;
  bool ran = false, reached = false;
  std::string note;  // why it did not run, or how it ended
  double seconds = 0, accuracy = 0;
  int64_t epoch = 0, steps = 0;
};

std::vector<uint64_t> parse_seeds(const std::string& list, uint64_t fallback) {
  std::vector<uint64_t> out;
  if (list.empty()) return {fallback};
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = std::min(list.find(',', start), list.size());
    std::string item = list.substr(start, comma - start);
    char* end = nullptr;
    unsigned long long v = std::strtoull(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0')
      throw std::runtime_error(fmt::format("--seeds '{}': '{}' is not a seed", list, item));
    out.push_back(v);
    start = comma + 1;
  }
  return out;
}

rt::LrSchedule schedule_of(const dsl::Training& t) {
  rt::LrSchedule s;
  s.kind = t.schedule.kind == dsl::ScheduleKind::step     ? rt::LrSchedule::Kind::step
           : t.schedule.kind == dsl::ScheduleKind::cosine ? rt::LrSchedule::Kind::cosine
                                                          : rt::LrSchedule::Kind::constant;
  s.every = static_cast<int32_t>(t.schedule.every);
  s.gamma = static_cast<float>(t.schedule.gamma);
  return s;
}

// What the loop needs from an engine: one step on a prepared batch, and the test accuracy.
struct Trainee {
  virtual ~Trainee() = default;
  // False when the loss or a gradient was not finite.
  virtual bool step(const float* images, const int32_t* labels, int32_t n,
                    const cnnc_optimizer& opt, uint32_t epoch, uint32_t base) = 0;
  virtual double test_accuracy(const rt::LabeledImages& test) = 0;
  // Nonzero for an engine that takes batches of exactly this size only.
  virtual int32_t full_batches_only() const { return 0; }
};

class AbiTrainee final : public Trainee {
 public:
  AbiTrainee(std::unique_ptr<Engine> engine, std::vector<float> params, rt::ThreadPool& pool,
             int32_t batch, uint64_t seed)
      : engine_(std::move(engine)),
        m_(engine_->model()),
        params_(std::move(params)),
        pool_(pool),
        step_(m_, pool, batch),
        seed_(seed) {}
  bool step(const float* images, const int32_t* labels, int32_t n, const cnnc_optimizer& opt,
            uint32_t epoch, uint32_t base) override {
    return step_.run(params_, images, labels, n, opt, epoch, base, seed_).non_finite.empty();
  }
  double test_accuracy(const rt::LabeledImages& test) override {
    return rt::evaluate(m_, params_, test, pool_).accuracy;
  }

 private:
  std::unique_ptr<Engine> engine_;
  const cnnc_model& m_;
  std::vector<float> params_;
  rt::ThreadPool& pool_;
  rt::TrainStep step_;
  uint64_t seed_;
};

#ifdef CNNC_WITH_ONEDNN
// The oneDNN network takes batches of exactly its size: an epoch's short last batch is dropped
// (32 of MNIST's 60,000 images at batch 64), and the test set's last batch is padded.
class OnednnTrainee final : public Trainee {
 public:
  OnednnTrainee(const cnnc_model& table, const std::vector<float>& params, int32_t batch,
                int threads, uint64_t seed)
      : threads_((bench::onednn_set_threads(threads), threads)),  // before the primitives
        net_(table, batch),
        batch_(batch),
        classes_(table.output_size),
        seed_(seed) {
    net_.set_params(params.data());
  }
  bool step(const float* images, const int32_t* labels, int32_t n, const cnnc_optimizer& opt,
            uint32_t epoch, uint32_t base) override {
    if (n != batch_) throw std::logic_error("OnednnTrainee: a short batch");
    return std::isfinite(net_.train_step(images, labels, opt, epoch, base, seed_));
  }
  double test_accuracy(const rt::LabeledImages& test) override {
    int64_t sample = int64_t{test.rows} * test.cols;
    std::vector<float> images(static_cast<size_t>(batch_ * sample), 0.0f),
        outputs(static_cast<size_t>(batch_) * classes_);
    std::vector<int32_t> labels(static_cast<size_t>(batch_)), idx(static_cast<size_t>(batch_));
    int64_t correct = 0;
    for (int32_t start = 0; start < test.count; start += batch_) {
      int32_t n = std::min(batch_, test.count - start);
      for (int32_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = start + i;
      rt::prepare_batch(test, std::span(idx.data(), static_cast<size_t>(n)), images.data(),
                        labels.data());
      net_.forward(images.data(), outputs.data());
      for (int32_t i = 0; i < n; ++i) {
        const float* y = outputs.data() + static_cast<int64_t>(i) * classes_;
        correct += std::max_element(y, y + classes_) - y == labels[static_cast<size_t>(i)];
      }
    }
    return static_cast<double>(correct) / test.count;
  }
  int32_t full_batches_only() const override { return batch_; }

 private:
  int threads_;
  bench::OnednnNet net_;
  int32_t batch_, classes_;
  uint64_t seed_;
};
#endif

// cnnc's loop: cnnc train's epoch, with evaluations every `every` steps.
Outcome train_cnnc(const dsl::Graph& g, Trainee& t, const rt::Mnist& data, const AccuracyArgs& a,
                   uint64_t seed, const std::string& engine) {
  Outcome out{engine, seed};
  out.ran = true;
  const dsl::Training& tr = g.training;
  const int32_t batch = static_cast<int32_t>(tr.batch);
  const int32_t count = data.train.count, batches = (count + batch - 1) / batch;
  const int64_t every = a.eval_every > 0 ? a.eval_every : batches;
  cnnc_optimizer base = optimizer_of(tr);
  rt::LrSchedule sched = schedule_of(tr);
  rt::AugmentSpec augment{static_cast<int32_t>(tr.augment.shift),
                          static_cast<float>(tr.augment.rotate),
                          static_cast<float>(tr.augment.scale)};
  int64_t sample = int64_t{data.train.rows} * data.train.cols;
  std::vector<float> images(static_cast<size_t>(batch * sample));
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < a.epochs; ++epoch) {
    const uint32_t e = static_cast<uint32_t>(epoch);
    float lr = rt::learning_rate(sched, base.lr, static_cast<int32_t>(epoch),
                                 static_cast<int32_t>(tr.epochs));
    std::vector<int32_t> order = rt::epoch_order(count, seed, e);
    // An engine that takes only full batches drops the epoch's short last one.
    const int32_t usable = t.full_batches_only() ? count / batch : batches;
    for (int32_t b = 0; b < usable; ++b) {
      int32_t n = std::min(batch, count - b * batch);
      Clock::time_point t0 = Clock::now();
      std::span<const int32_t> idx(order.data() + static_cast<size_t>(b) * batch,
                                   static_cast<size_t>(n));
      if (augment.enabled())
        rt::prepare_augmented_batch(data.train, idx, augment, seed, e, images.data(),
                                    labels.data());
      else
        rt::prepare_batch(data.train, idx, images.data(), labels.data());
      cnnc_optimizer opt = base;
      opt.lr = lr;
      opt.step = step + 1;
      bool finite =
          t.step(images.data(), labels.data(), n, opt, e, static_cast<uint32_t>(b * batch));
      out.seconds += seconds_since(t0);
      ++step;
      if (!finite) {
        out.note = fmt::format("diverged at epoch {}, step {}", epoch + 1, step);
        out.epoch = epoch + 1;
        out.steps = step;
        return out;
      }
      if (step % every == 0 || b + 1 == usable) {
        out.accuracy = t.test_accuracy(data.test);
        out.epoch = epoch + 1;
        out.steps = step;
        if (out.accuracy >= a.target) {
          out.reached = true;
          return out;
        }
      }
    }
  }
  out.note = fmt::format("not reached after {} epoch{}", a.epochs, a.epochs == 1 ? "" : "s");
  return out;
}

Outcome train_pytorch(const dsl::Graph& g, const cnnc_model& table, const AccuracyArgs& a,
                      const std::string& data_dir, uint64_t seed) {
  Outcome out{"pytorch", seed};
  if (access(a.python.c_str(), X_OK) != 0) {
    out.note = fmt::format("skipped: {} is not an executable interpreter", a.python);
    return out;
  }
  char tmpl[] = "/tmp/cnnc-accuracy.XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("cannot create a temporary directory");
  std::string dir = tmpl;
  dsl::Graph seeded = g;
  seeded.training.seed = seed;
  std::string config =
      peer_config_json(seeded, table, static_cast<int32_t>(g.training.batch), a.threads);
  write_binary(dir + "/config.json", config.data(), config.size());
  std::vector<float> params = initial_params(g, table, seed);
  write_binary(dir + "/params.f32", params.data(), params.size() * sizeof(float));
  {
    LineProcess p({a.python, peers_dir() + "/pytorch_mnist.py", "accuracy", "--config",
                   dir + "/config.json", "--data", data_dir, "--params", dir + "/params.f32",
                   "--target", fmt::format("{}", a.target), "--eval-every",
                   fmt::format("{}", a.eval_every), "--epochs", fmt::format("{}", a.epochs)},
                  peer_environment(a.threads));
    out.note = "the script ended without a result";
    while (std::optional<std::string> line = p.receive()) {
      if (std::optional<std::string> e = json_string(*line, "error")) {
        out.note = "skipped: " + *e;
        break;
      }
      if (line->find("\"done\"") == std::string::npos) continue;
      out.ran = true;
      out.reached = line->find("\"reached\": true") != std::string::npos;
      out.seconds = json_number(*line, "seconds").value_or(0);
      out.accuracy = json_number(*line, "accuracy").value_or(0);
      out.epoch = static_cast<int64_t>(json_number(*line, "epoch").value_or(0));
      out.steps = static_cast<int64_t>(json_number(*line, "step").value_or(0));
      out.note = out.reached ? "" : fmt::format("not reached after {} epochs", a.epochs);
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return out;
}

}  // namespace

int run_to_accuracy(const dsl::Graph& g, const AccuracyArgs& a) {
  if (g.input.c != 1)
    throw std::runtime_error(fmt::format(
        "MNIST-format images have 1 channel, but the model's input is {}", g.input.str()));
  std::vector<uint64_t> seeds = parse_seeds(a.seeds, g.training.seed);
  std::string dir = a.data;
  if (dir.empty()) {
    const char* env = std::getenv("CNNC_DATA");
    dir = env && *env ? env : "data/mnist";
  }
  rt::InputSpec spec{static_cast<int32_t>(g.input.h), static_cast<int32_t>(g.input.w), 1,
                     static_cast<int32_t>(g.output().size())};
  rt::Mnist data = rt::load_mnist(dir, spec, 0.0);
  const int32_t batch = static_cast<int32_t>(g.training.batch);
  const int32_t slice = (batch + a.threads - 1) / a.threads;
  std::unique_ptr<Engine> reference = make_engine(g, "generic", slice);
  const cnnc_model& table = reference->model();
  rt::ThreadPool pool(a.threads);

  fmt::print(
      "bench {} to {:.2f}% test accuracy: MNIST from {}, batch {}, {} thread{}, evaluated every "
      "{}, at most {} epochs\n",
      g.name, 100 * a.target, dir, batch, a.threads, a.threads == 1 ? "" : "s",
      a.eval_every > 0 ? fmt::format("{} steps", a.eval_every) : std::string("epoch"), a.epochs);
  fmt::print("{:<12} {:>6} {:>12} {:>8} {:>8} {:>10}  {}\n", "engine", "seed", "train s", "epoch",
             "steps", "accuracy", "");
  std::vector<Outcome> outcomes;
  for (uint64_t seed : seeds) {
    for (const std::string& name : a.engines) {
      Outcome o;
      if (name == "pytorch") {
        o = train_pytorch(g, table, a, dir, seed);
      } else if (name == "onednn") {
#ifdef CNNC_WITH_ONEDNN
        try {
          OnednnTrainee t(table, initial_params(g, table, seed), batch, a.threads, seed);
          o = train_cnnc(g, t, data, a, seed, name);
        } catch (const bench::OnednnUnsupported& e) {
          o = {name, seed};
          o.note = fmt::format("skipped: {}", e.what());
        }
#else
        o = {name, seed};
        o.note = "skipped: cnnc was built without oneDNN";
#endif
      } else {
        std::unique_ptr<Engine> e = make_engine(g, name, slice);
        std::vector<float> params = initial_params(g, e->model(), seed);
        AbiTrainee t(std::move(e), std::move(params), pool, batch, seed);
        o = train_cnnc(g, t, data, a, seed, name);
      }
      fmt::print("{:<12} {:>6} {:>12} {:>8} {:>8} {:>10}  {}\n", o.engine, o.seed,
                 o.ran ? fmt::format("{:.2f}", o.seconds) : "-",
                 o.ran ? std::to_string(o.epoch) : "-", o.ran ? std::to_string(o.steps) : "-",
                 o.ran ? fmt::format("{:.2f}%", 100 * o.accuracy) : "-",
                 o.reached ? "reached" : o.note);
      std::fflush(stdout);
      outcomes.push_back(o);
    }
  }
  if (a.json) {
    std::string runs;
    for (const Outcome& o : outcomes)
      runs += fmt::format(
          R"({}{{"engine":"{}","seed":{},"ran":{},"reached":{},"train_seconds":{:.3f},"epoch":{},"steps":{},"accuracy":{:.4f},"note":"{}"}})",
          runs.empty() ? "" : ",", o.engine, o.seed, o.ran, o.reached, o.seconds, o.epoch, o.steps,
          o.accuracy, o.note);
    fmt::print(
        R"({{"model":"{}","target":{},"threads":{},"batch":{},"eval_every":{},"epochs":{},"runs":[{}]}})"
        "\n",
        g.name, a.target, a.threads, batch, a.eval_every, a.epochs, runs);
  }
  return exit_ok;
}

}  // namespace cnnc::cli
