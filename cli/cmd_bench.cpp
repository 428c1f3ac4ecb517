// cnnc bench FILE: training and inference throughput of each engine, measured interleaved.
//
// The shared machine drifts by up to 1.5x between runs (DESIGN.md), so engines are only ever
// compared within one run: every repetition times every engine in turn, and the report quotes
// medians and each engine's ratio to the first one. The data are synthetic (random pixels and
// labels from the model's seed), so no dataset is needed and every run times the same bits.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <thread>

#include "commands.hpp"
#include "data/batches.hpp"
#include "data/random.hpp"
#include "engines.hpp"
#include "thread_pool.hpp"
#include "trainer.hpp"

namespace cnnc::cli {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct BenchArgs {
  std::string file;
  std::optional<std::string> engines;  // unset: the default list, which may shrink
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::optional<int64_t> batch;
  int reps = 5;
  double seconds = 1.0;
  double peak_gflops = 232.0;
  bool json = false;
  dsl::Limits limits;
};

// The synthetic batch every engine trains and infers on: MNIST-like pixels (bytes scaled as
// the data path scales them) and labels below the output size, all from the model's seed.
struct Batch {
  Batch(const cnnc_model& m, int32_t count, uint64_t seed) : n(count) {
    rt::SplitMix64 rng(seed ^ 0x62656e6368ull);  // "bench": not the stream of the weights
    images.resize(static_cast<size_t>(n) * m.input_h * m.input_w * m.input_c);
    for (float& x : images) x = rt::pixel_to_float(static_cast<uint8_t>(rng.next() >> 56));
    labels.resize(static_cast<size_t>(n));
    for (int32_t& l : labels)
      l = static_cast<int32_t>(rt::below(rng.next(), static_cast<uint64_t>(m.output_size)));
  }
  int32_t n;
  std::vector<float> images;
  std::vector<int32_t> labels;
};

// One engine's model with the training step cnnc train takes (rt::TrainStep, sized as the
// trainer sizes it) and the parameters and optimizer settings each timed window restarts from.
class Runner {
 public:
  Runner(std::string engine_name, std::unique_ptr<Engine> engine, const Batch& batch,
         rt::ThreadPool& pool, uint64_t seed)
      : name(std::move(engine_name)),
        engine_(std::move(engine)),
        m_(engine_->model()),
        batch_(batch),
        pool_(pool),
        seed_(seed),
        step_(m_, pool, batch.n),
        outputs_(static_cast<size_t>(batch.n) * m_.output_size, 0.0f) {}

  const cnnc_model& model() const { return m_; }
  const std::vector<float>& outputs() const { return outputs_; }

  // Back to the given parameters and a zero optimizer state, so that every timed window starts
  // from the same point and random labels cannot walk the weights towards overflow (whose
  // arithmetic may run at another speed) over many repetitions.
  void reset(const std::vector<float>& params, const cnnc_optimizer& opt) {
    params_ = params;
    std::vector<float>& state = step_.optimizer_state();
    std::fill(state.begin(), state.end(), 0.0f);
    opt_ = opt;
    opt_.step = 0;
  }

  // One training step on the whole batch, as the trainer takes it in epoch 0 with the batch at
  // position step * n of the epoch (which keys the dropout masks). False when the loss or a
  // gradient was not finite: the trainer would stop there, and the step skips its update.
  bool train_step() {
    uint32_t base = static_cast<uint32_t>(opt_.step) * static_cast<uint32_t>(batch_.n);
    ++opt_.step;
    return step_
        .run(params_, batch_.images.data(), batch_.labels.data(), batch_.n, opt_, 0, base, seed_)
        .non_finite.empty();
  }

  // Inference on the whole batch, split across the threads as evaluation splits it.
  void forward() {
    rt::forward_batch(m_, params_, batch_.images.data(), batch_.n, outputs_.data(), pool_,
                      step_.workspaces());
  }

  std::string name;
  std::vector<double> train_ips, infer_ips;  // one per repetition
  bool diverged = false;                     // some timed step had a non-finite loss

 private:
  std::unique_ptr<Engine> engine_;
  const cnnc_model& m_;  // engine_'s, which a move of the Runner does not move
  const Batch& batch_;
  rt::ThreadPool& pool_;
  uint64_t seed_;
  rt::TrainStep step_;
  std::vector<float> outputs_, params_;
  cnnc_optimizer opt_{};
};

std::vector<std::string> split_engines(const std::string& list) {
  std::vector<std::string> out;
  // By hand rather than with getline, which drops a trailing empty item ("generic,").
  for (size_t start = 0;;) {
    size_t comma = std::min(list.find(',', start), list.size());
    std::string item = list.substr(start, comma - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item.empty())
      throw std::runtime_error(fmt::format("--engines '{}' has an empty name", list));
    out.push_back(item);
    if (comma == list.size()) return out;
    start = comma + 1;
  }
}

// Runs f until `seconds` have passed (at least `min_calls` times); returns calls per second.
template <class F>
double rate(double seconds, int min_calls, F&& f) {
  Clock::time_point t0 = Clock::now();
  int64_t calls = 0;
  double elapsed = 0;
  do {
    f();
    ++calls;
    elapsed = seconds_since(t0);
  } while (calls < min_calls || elapsed < seconds);
  return static_cast<double>(calls) / elapsed;
}

struct Stats {
  double median, min, max;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v.front(), v.back()};
}

std::string group(double x) {
  return dsl::with_thousands(std::llround(x));
}

// The largest |a - b| relative to the scale of a (at least 1, so probabilities compare
// absolutely), over two equally long vectors.
double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double scale = 1, diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::fabs(static_cast<double>(a[i])));
    double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    diff = std::isnan(d) ? INFINITY : std::max(diff, d);
  }
  return diff / scale;
}

// The engines to time, in the order given: the first is the one the ratios compare against.
std::vector<std::unique_ptr<Engine>> make_engines(const dsl::Graph& g, const BenchArgs& a,
                                                  int32_t slice, std::vector<std::string>& names) {
  names = split_engines(a.engines.value_or("specialized,generic"));
  std::vector<std::unique_ptr<Engine>> out;
  for (const std::string& name : names) out.push_back(make_engine(g, name, slice));
  return out;
}

int run_bench(BenchArgs& a) {
  std::optional<dsl::Graph> graph = load_model(a.file, a.limits);
  if (!graph) return exit_user_error;
  const dsl::Graph& g = *graph;
  int32_t batch = static_cast<int32_t>(a.batch.value_or(g.training.batch));
  int32_t slice = (batch + a.threads - 1) / a.threads;  // as cnnc train sizes its engine

  std::vector<std::string> names;
  std::vector<std::unique_ptr<Engine>> engines = make_engines(g, a, slice, names);
  const cnnc_model& first = engines.front()->model();
  for (const auto& e : engines)
    if (e->model().param_count != first.param_count)
      throw std::logic_error("engines disagree on the parameter count");

  Batch data(first, batch, g.training.seed);
  std::vector<float> params = initial_params(g, first, g.training.seed);
  cnnc_optimizer opt = optimizer_of(g.training);  // at its base rate: bench runs no schedule
  rt::ThreadPool pool(a.threads);
  std::vector<Runner> runners;
  runners.reserve(engines.size());
  for (size_t i = 0; i < engines.size(); ++i)
    runners.emplace_back(names[i], std::move(engines[i]), data, pool, g.training.seed);

  double peak = a.peak_gflops * a.threads / 2.0;
  fmt::print(
      "bench {} ({}): batch {}, {} thread{}, {} rep{} of ~{:g} s per engine and phase, random "
      "{} inputs\n",
      g.name, a.file, batch, a.threads, a.threads == 1 ? "" : "s", a.reps, a.reps == 1 ? "" : "s",
      a.seconds, g.input.str());

  // Verify before timing (as llm.c's benches do): one step from the same parameters on the
  // same batch must give a finite loss, and every engine must infer what the first one does;
  // timing an engine that computes something else would compare nothing.
  for (Runner& r : runners) {
    r.reset(params, opt);
    if (!r.train_step()) {
      fmt::print(stderr,
                 "cnnc: error: engine '{}': the first training step on random data gives a "
                 "non-finite loss or gradient; not timing it\n",
                 r.name);
      return exit_user_error;
    }
    r.reset(params, opt);
    r.forward();
    if (&r != &runners.front()) {
      double d = relative_difference(runners.front().outputs(), r.outputs());
      if (!(d < 1e-3)) {
        fmt::print(stderr,
                   "cnnc: error: engines '{}' and '{}' disagree on the forward pass (largest "
                   "relative difference {:.3g}, tolerance 1e-3); not timing them (cnnc verify "
                   "compares them layer by layer)\n",
                   runners.front().name, r.name, d);
        return exit_user_error;
      }
    }
  }

  bool progress = isatty(STDERR_FILENO);
  double warmup = std::min(0.2, a.seconds / 10);
  for (int rep = 0; rep < a.reps; ++rep) {
    for (Runner& r : runners) {
      if (progress) fmt::print(stderr, "\r  rep {}/{}: {:<16}", rep + 1, a.reps, r.name);
      r.reset(params, opt);
      bool finite = true;
      auto step = [&] { finite = r.train_step() && finite; };
      rate(warmup, 2, step);
      r.train_ips.push_back(rate(a.seconds, 3, step) * batch);
      r.diverged = r.diverged || !finite;
      auto infer = [&] { r.forward(); };
      rate(warmup, 2, infer);
      r.infer_ips.push_back(rate(a.seconds, 3, infer) * batch);
    }
  }
  if (progress) fmt::print(stderr, "\r{:40}\r", "");
  for (const Runner& r : runners)
    if (r.diverged)
      fmt::print(stderr,
                 "warning: engine '{}' diverged on the random labels during timing; its figures "
                 "include non-finite arithmetic and skipped updates\n",
                 r.name);

  double train_mflop = static_cast<double>(g.training_flops) / 1e6,
         forward_mflop = static_cast<double>(g.forward_flops) / 1e6;
  Stats base = stats(runners.front().train_ips);
  Stats base_infer = stats(runners.front().infer_ips);
  fmt::print(
      "training step {:.3f} MFLOP/image, forward {:.3f} MFLOP/image; peak {:g} GFLOP/s = "
      "{:g} x {}/2 threads (the documented FP32 FMA figure of DESIGN.md, not measured; "
      "--peak-gflops)\n",
      train_mflop, forward_mflop, peak, a.peak_gflops, a.threads);
  fmt::print("{:<12} {:>30} {:>8} {:>7} {:>30} {:>6} {:>6}\n", "engine",
             "train img/s median [min-max]", "GFLOP/s", "% peak", "infer img/s median [min-max]",
             "ratio", "infer");
  std::string json_engines;
  for (const Runner& r : runners) {
    Stats t = stats(r.train_ips), f = stats(r.infer_ips);
    double gflops = t.median * train_mflop / 1e3, share = gflops / peak;
    double infer_gflops = f.median * forward_mflop / 1e3;
    double ratio = t.median / base.median, infer_ratio = f.median / base_infer.median;
    std::string label =
        r.name == r.model().engine ? r.name : fmt::format("{} ({})", r.name, r.model().engine);
    fmt::print("{:<12} {:>30} {:>8.1f} {:>6.1f}% {:>30} {:>6.2f} {:>6.2f}\n", label,
               fmt::format("{} [{}-{}]", group(t.median), group(t.min), group(t.max)), gflops,
               100 * share, fmt::format("{} [{}-{}]", group(f.median), group(f.min), group(f.max)),
               ratio, infer_ratio);
    json_engines += fmt::format(
        R"({}{{"engine":"{}","train_images_per_second":{:.1f},"train_min":{:.1f},"train_max":{:.1f},"infer_images_per_second":{:.1f},"infer_min":{:.1f},"infer_max":{:.1f},"gflops":{:.3f},"infer_gflops":{:.3f},"peak_share":{:.4f},"ratio":{:.4f},"infer_ratio":{:.4f}}})",
        json_engines.empty() ? "" : ",", r.name, t.median, t.min, t.max, f.median, f.min, f.max,
        gflops, infer_gflops, share, ratio, infer_ratio);
  }
  fmt::print("ratio: median training images/s over {}'s; infer: the same for inference\n",
             runners.front().name);
  if (a.json)
    fmt::print(
        R"({{"model":"{}","threads":{},"batch":{},"reps":{},"seconds":{:g},"train_mflop_per_image":{:.4f},"forward_mflop_per_image":{:.4f},"peak_gflops":{:g},"peak_measured":false,"engines":[{}]}})"
        "\n",
        g.name, a.threads, batch, a.reps, a.seconds, train_mflop, forward_mflop, peak,
        json_engines);
  return exit_ok;
}

}  // namespace

void register_bench(CLI::App& app, int& status) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Training and inference images/s of each engine on random MNIST-shaped data, interleaved");
  cmd->add_option("file", a->file, ".cnn file")->required();
  cmd->add_option("--engines", a->engines,
                  "Comma-separated engines, the first is the reference of the ratios (default "
                  "specialized,generic)");
  cmd->add_option("--threads", a->threads, "Threads that split each batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("--batch", a->batch, "Batch size (default the file's)")
      ->check(CLI::Range(int64_t{1}, int64_t{65536}));
  cmd->add_option("--reps", a->reps, "Repetitions; each times every engine in turn")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--seconds", a->seconds, "Seconds per engine, phase and repetition")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 3600.0));
  cmd->add_option("--peak-gflops", a->peak_gflops,
                  "FP32 peak of 2 cores in GFLOP/s, scaled by threads/2 (default: DESIGN.md's "
                  "documented figure, not measured)")
      ->capture_default_str()
      ->check(CLI::Range(1e-3, 1e9));
  cmd->add_flag("--json", a->json, "End with one JSON object of the results");
  add_limit_flags(*cmd, a->limits);
  cmd->callback([a, &status] {
    // Unknown or unavailable engines are the user's to fix, as in cnnc train.
    try {
      status = run_bench(*a);
    } catch (const std::runtime_error& e) {
      fmt::print(stderr, "cnnc: error: {}\n", e.what());
      status = exit_user_error;
    }
  });
}

}  // namespace cnnc::cli
