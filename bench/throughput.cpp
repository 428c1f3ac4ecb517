// cnnc bench FILE: training and inference throughput of each engine, measured interleaved.
//
// The shared machine drifts by up to 1.5x between runs (docs/design.md), so engines are only ever
// compared within one run: every repetition times every engine in turn, and the report quotes
// medians and each engine's ratio to the first one. The data are synthetic (random pixels and
// labels from the model's seed), so no dataset is needed and every run times the same bits.
//
// Engines: cnnc's own (generic, specialized) through the C ABI and the trainer's TrainStep; the
// peers a user would pick instead: a network of oneDNN primitives (onednn, when cnnc was built
// with oneDNN) and PyTorch (pytorch, a child process running bench/peers/pytorch_mnist.py, at
// the file's precision; pytorch-bf16 and pytorch-fp32 at that one). A peer that is not available
// is skipped with one line, and the others still run.
#include "bench/throughput.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "bench/engine_variant.hpp"
#include "bench/machine.hpp"
#include "bench/onednn_peer_loader.hpp"
#include "bench/peak_fma.hpp"
#include "bench/pytorch_peer.hpp"
#include "bench/timing.hpp"
#include "data/batches.hpp"
#include "data/random.hpp"
#include "dsl/diagnostics.hpp"
#include "engine/engine.hpp"
#include "engine/training.hpp"
#include "engine/verify.hpp"
#include "train/thread_pool.hpp"
#include "train/trainer.hpp"

namespace cnnc::bench {

namespace {

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

// One engine in the race. Every timed window restarts from the same parameters and a zero
// optimizer state, so that random labels cannot walk the weights towards overflow (whose
// arithmetic may run at another speed) over many repetitions.
class Contender {
 public:
  explicit Contender(std::string engine_name) : name(std::move(engine_name)) {}
  virtual ~Contender() = default;

  // Verify before timing: one training step from params must be finite (false otherwise);
  // then `outputs` gets the inference of the batch from params ([n][output_size]).
  virtual bool check(const std::vector<float>& params, const cnnc_optimizer& opt,
                     std::vector<float>& outputs) = 0;
  // Training images/s from params over about `seconds`, after `warmup` seconds untimed.
  virtual double train_rate(const std::vector<float>& params, const cnnc_optimizer& opt,
                            double warmup, double seconds) = 0;
  virtual double infer_rate(double warmup, double seconds) = 0;
  virtual std::string label() const { return name; }

  std::string name;
  std::vector<double> train_ips, infer_ips;  // one per repetition
  bool diverged = false;                     // some timed step had a non-finite loss
  bool bf16 = false;  // its products run in bf16: its share of the bf16 peak is reported too
};

// An engine timed in this process: check and both rates come from its reset, training step and
// forward pass, so that every in-process engine is timed by the same loop.
class InProcessContender : public Contender {
 public:
  InProcessContender(std::string engine_name, const Batch& batch)
      : Contender(std::move(engine_name)), batch_(batch) {}

  bool check(const std::vector<float>& params, const cnnc_optimizer& opt,
             std::vector<float>& outputs) final {
    reset(params, opt);
    if (!train_step()) return false;
    reset(params, opt);
    forward();
    outputs = outputs_;
    return true;
  }
  double train_rate(const std::vector<float>& params, const cnnc_optimizer& opt, double warmup,
                    double seconds) final {
    reset(params, opt);
    bool finite = true;
    auto step = [&] { finite = train_step() && finite; };
    rate(warmup, 2, step);
    double r = rate(seconds, 3, step) * batch_.n;
    diverged = diverged || !finite;
    return r;
  }
  double infer_rate(double warmup, double seconds) final {
    auto infer = [&] { forward(); };
    rate(warmup, 2, infer);
    return rate(seconds, 3, infer) * batch_.n;
  }

 protected:
  // params and a zero optimizer state, step 0.
  virtual void reset(const std::vector<float>& params, const cnnc_optimizer& opt) = 0;
  // One step on the whole batch; false when the loss or a gradient was not finite.
  virtual bool train_step() = 0;
  // Inference of the batch into outputs_.
  virtual void forward() = 0;

  const Batch& batch_;
  std::vector<float> outputs_;
};

// generic and specialized: the training step cnnc train takes (rt::TrainStep, sized as the
// trainer sizes it), inference split across the threads as evaluation splits it.
class AbiContender final : public InProcessContender {
 public:
  AbiContender(std::string engine_name, std::unique_ptr<engine::Engine> engine, const Batch& batch,
               rt::ThreadPool& pool, uint64_t seed)
      : InProcessContender(std::move(engine_name), batch),
        engine_(std::move(engine)),
        m_(engine_->model()),
        pool_(pool),
        seed_(seed),
        step_(m_, pool, batch.n) {
    outputs_.assign(static_cast<size_t>(batch.n) * m_.output_size, 0.0f);
  }

  std::string label() const override {
    return name == m_.engine ? name : fmt::format("{} ({})", name, m_.engine);
  }

 private:
  void reset(const std::vector<float>& params, const cnnc_optimizer& opt) override {
    params_ = params;
    std::vector<float>& state = step_.optimizer_state();
    std::fill(state.begin(), state.end(), 0.0f);
    opt_ = opt;
    opt_.step = 0;
  }
  // One training step on the whole batch, as the trainer takes it in epoch 0 with the batch at
  // position step * n of the epoch (which keys the dropout masks). False when the loss or a
  // gradient was not finite: the trainer would stop there, and the step skips its update.
  bool train_step() override {
    uint32_t base = static_cast<uint32_t>(opt_.step) * static_cast<uint32_t>(batch_.n);
    ++opt_.step;
    return step_
        .run(params_, batch_.images.data(), batch_.labels.data(), batch_.n, opt_, 0, base, seed_)
        .non_finite.empty();
  }
  void forward() override {
    rt::forward_batch(m_, params_, batch_.images.data(), batch_.n, outputs_.data(), pool_,
                      step_.workspaces());
  }

  std::unique_ptr<engine::Engine> engine_;
  const cnnc_model& m_;  // engine_'s, which a move does not move
  rt::ThreadPool& pool_;
  uint64_t seed_;
  rt::TrainStep step_;
  std::vector<float> params_;
  cnnc_optimizer opt_{};
};

// onednn: the whole batch through a network of oneDNN primitives (bench/onednn_net.hpp) in the
// module the loader opens, with oneDNN's OpenMP threads capped at --threads.
class OnednnContender final : public InProcessContender {
 public:
  OnednnContender(const cnnc_model& table, const Batch& batch, int threads, uint64_t seed)
      : InProcessContender("onednn", batch), peer_(table, batch.n, threads), seed_(seed) {
    outputs_.assign(static_cast<size_t>(batch.n) * table.output_size, 0.0f);
  }

  std::vector<OnednnImplementation> implementations() const { return peer_.implementation_rows(); }

 private:
  void reset(const std::vector<float>& params, const cnnc_optimizer& opt) override {
    peer_.set_params(params.data());
    opt_ = opt;
    opt_.step = 0;
  }
  bool train_step() override {
    uint32_t base = static_cast<uint32_t>(opt_.step) * static_cast<uint32_t>(batch_.n);
    ++opt_.step;
    return std::isfinite(
        peer_.train_step(batch_.images.data(), batch_.labels.data(), opt_, 0, base, seed_));
  }
  void forward() override { peer_.forward(batch_.images.data(), outputs_.data()); }

  OnednnPeer peer_;
  uint64_t seed_;
  cnnc_optimizer opt_{};
};

// pytorch: the timing loop runs inside the Python process (a call per step across the pipe
// would time the pipe); cnnc asks for one window at a time, so windows still interleave.
class PytorchContender final : public Contender {
 public:
  PytorchContender(std::string engine_name, std::unique_ptr<PytorchPeer> peer, const Batch& batch)
      : Contender(std::move(engine_name)), peer_(std::move(peer)), batch_(batch) {
    bf16 = peer_->setting().bf16;
  }

  bool check(const std::vector<float>& params, const cnnc_optimizer&,
             std::vector<float>& outputs) override {
    const std::string& d = peer_->dir();
    write_binary(d + "/params.f32", params.data(), params.size() * sizeof(float));
    write_binary(d + "/images.f32", batch_.images.data(), batch_.images.size() * sizeof(float));
    write_binary(d + "/labels.i32", batch_.labels.data(), batch_.labels.size() * sizeof(int32_t));
    peer_->command("load " + d);
    if (!peer_->command("check " + d).value("finite", false)) return false;
    outputs = read_floats(d + "/outputs.f32");
    return true;
  }
  double train_rate(const std::vector<float>&, const cnnc_optimizer&, double warmup,
                    double seconds) override {
    nlohmann::json r = peer_->command(fmt::format("train {} {}", seconds, warmup));
    diverged = diverged || r.value("diverged", false);
    return r.at("images_per_second").get<double>();
  }
  double infer_rate(double warmup, double seconds) override {
    return peer_->command(fmt::format("infer {} {}", seconds, warmup))
        .at("images_per_second")
        .get<double>();
  }
  std::string label() const override {
    return fmt::format("{} ({}, {})", name, peer_->version(), peer_->setting().str());
  }

 private:
  std::unique_ptr<PytorchPeer> peer_;
  const Batch& batch_;
};

std::string group(double x) {
  return dsl::with_thousands(std::llround(x));
}

// The largest |a - b| relative to the scale of a (at least 1, so probabilities compare
// absolutely), over two equally long vectors.
double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double scale = 1, diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::fabs(static_cast<double>(a[i])));
    double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    diff = std::isnan(d) ? INFINITY : std::max(diff, d);
  }
  return diff / scale;
}

}  // namespace

void run_throughput(const dsl::Graph& g, const ThroughputOptions& a) {
  int32_t batch = static_cast<int32_t>(a.batch.value_or(g.training.batch));
  int32_t slice = engine::slice_size(batch, a.threads);  // as cnnc train sizes its engine

  // The generic engine's model is the layer table, parameter layout and initialisation every
  // engine starts from, whichever engines run.
  std::unique_ptr<engine::Engine> reference = engine::make_engine(g, "generic", slice);
  const cnnc_model& table = reference->model();
  Batch data(table, batch, g.training.seed);
  std::vector<float> params = engine::initial_params(g, table, g.training.seed);
  cnnc_optimizer opt = engine::optimizer_of(g.training);  // at its base rate: no schedule here
  rt::ThreadPool pool(a.threads);

  std::vector<std::unique_ptr<Contender>> contenders;
  nlohmann::ordered_json skipped = nlohmann::ordered_json::array();
  auto skip = [&](const std::string& name, const std::string& why) {
    fmt::print("{}: skipped: {}\n", name, why);
    skipped.push_back({{"engine", name}, {"reason", why}});
  };
  std::vector<OnednnImplementation> onednn_impls;
  bool bf16 = false;  // an engine multiplies in bf16: the engines' outputs agree less closely
  for (const std::string& name : a.engines) {
    const EngineVariant v = engine_variant(g, name);
    const dsl::Graph& variant = v.graph;
    if (v.base == "pytorch") {
      std::string why;
      std::unique_ptr<PytorchPeer> peer = PytorchPeer::start_best(
          a.python, [&](int t) { return peer_config(variant, table, batch, t); }, a.threads,
          PeerBatch{params, data.images, data.labels}, why);
      if (!peer) {
        skip(name, why);
        continue;
      }
      bf16 = bf16 || peer->setting().bf16;
      contenders.push_back(std::make_unique<PytorchContender>(name, std::move(peer), data));
    } else if (name == "onednn") {
      try {
        auto c = std::make_unique<OnednnContender>(table, data, a.threads, g.training.seed);
        onednn_impls = c->implementations();
        contenders.push_back(std::move(c));
      } catch (const OnednnUnsupported& e) {
        skip(name, e.what());
      }
    } else {
      std::unique_ptr<engine::Engine> e = engine::make_engine(variant, v.base, slice);
      const bool products_bf16 =
          variant.training.precision == dsl::Precision::bf16 && engine::bf16_products(e->model());
      bf16 = bf16 || products_bf16;
      if (e->model().param_count != table.param_count)
        throw std::logic_error("engines disagree on the parameter count");
      contenders.push_back(
          std::make_unique<AbiContender>(name, std::move(e), data, pool, g.training.seed));
      contenders.back()->bf16 = products_bf16;
    }
  }
  if (contenders.empty()) throw std::runtime_error("no engine left to time");

  // The denominator of "% peak": measured in every repetition alongside the engines, and the
  // best repetition taken (load on a shared machine only ever lowers it), unless given.
  bool peak_measured = !a.peak_gflops;
  std::vector<double> peaks;
  // A bf16 engine's own denominator, vdpbf16ps's peak, measured the same way; FP32's stays the
  // "% peak" of every engine, so that the engines' shares compare.
  std::vector<double> bf16_peaks;
  Cpu cpu = this_cpu();
  fmt::print(
      "bench {} ({}): batch {}, {} thread{}, {} rep{} of ~{:g} s per engine and phase, random "
      "{} inputs\n",
      g.name, g.source_path, batch, a.threads, a.threads == 1 ? "" : "s", a.reps,
      a.reps == 1 ? "" : "s", a.seconds, g.input.str());
  fmt::print("cpu: {}\n", cpu.describe());
  if (!onednn_impls.empty()) {
    fmt::print("onednn implementations (layer, phase, primitive: implementation):\n");
    for (const OnednnImplementation& r : onednn_impls)
      fmt::print("  {:<10} {:<17} {}: {}\n", r.layer, phase_name(r.phase), r.primitive,
                 r.implementation);
  }

  // Verify before timing (as llm.c's benches do): one step from the same parameters on the
  // same batch must give a finite loss, and every engine must infer what the first one does;
  // timing an engine that computes something else would compare nothing.
  std::vector<float> first_outputs;
  for (auto& c : contenders) {
    std::vector<float> outputs;
    if (!c->check(params, opt, outputs))
      throw std::runtime_error(fmt::format(
          "engine '{}': the first training step on random data gives a non-finite loss or "
          "gradient; not timing it",
          c->name));
    if (c == contenders.front()) {
      first_outputs = outputs;
      continue;
    }
    double d = relative_difference(first_outputs, outputs);
    // bf16's tolerance for the forward outputs, as cnnc verify derives it (docs/codegen.md).
    double tolerance = bf16 ? engine::bf16_tolerance(g, false, batch) : 1e-3;
    if (!(d < tolerance))
      throw std::runtime_error(fmt::format(
          "engines '{}' and '{}' disagree on the forward pass (largest relative difference "
          "{:.3g}, tolerance {:.3g}); not timing them (cnnc verify compares them layer by layer)",
          contenders.front()->name, c->name, d, tolerance));
  }

  bool progress = isatty(STDERR_FILENO);
  double warmup = std::min(0.2, a.seconds / 10);
  for (int rep = 0; rep < a.reps; ++rep) {
    if (peak_measured) peaks.push_back(measure_peak_gflops(a.threads, 0.1));
    if (bf16) bf16_peaks.push_back(measure_bf16_peak_gflops(a.threads, 0.1));
    for (auto& c : contenders) {
      if (progress) fmt::print(stderr, "\r  rep {}/{}: {:<16}", rep + 1, a.reps, c->name);
      c->train_ips.push_back(c->train_rate(params, opt, warmup, a.seconds));
      c->infer_ips.push_back(c->infer_rate(warmup, a.seconds));
    }
  }
  if (progress) fmt::print(stderr, "\r{:40}\r", "");
  for (const auto& c : contenders)
    if (c->diverged)
      fmt::print(stderr,
                 "warning: engine '{}' diverged on the random labels during timing; its figures "
                 "include non-finite arithmetic and skipped updates\n",
                 c->name);

  double peak = peak_measured ? stats(peaks).max : *a.peak_gflops * a.threads / 2.0;
  double train_mflop = static_cast<double>(g.training_flops) / 1e6,
         forward_mflop = static_cast<double>(g.forward_flops) / 1e6;
  Stats base = stats(contenders.front()->train_ips);
  Stats base_infer = stats(contenders.front()->infer_ips);
  if (peak_measured)
    fmt::print(
        "training step {:.3f} MFLOP/image, forward {:.3f} MFLOP/image; peak {:.1f} GFLOP/s on "
        "{} thread{} (measured: FP32 FMA chains, the best of AVX-512 and AVX2, and of {} "
        "windows, which ranged over [{:.1f}-{:.1f}])\n",
        train_mflop, forward_mflop, peak, a.threads, a.threads == 1 ? "" : "s", a.reps,
        stats(peaks).min, stats(peaks).max);
  else
    fmt::print(
        "training step {:.3f} MFLOP/image, forward {:.3f} MFLOP/image; peak {:g} GFLOP/s = "
        "{:g} x {}/2 threads (given with --peak-gflops, not measured)\n",
        train_mflop, forward_mflop, peak, *a.peak_gflops, a.threads);
  const double bf16_peak = bf16_peaks.empty() ? 0 : stats(bf16_peaks).max;
  if (bf16_peak > 0)
    fmt::print(
        "bf16 peak {:.1f} GFLOP/s on {} thread{}, {:.2f}x the FP32 peak{} (measured: vdpbf16ps "
        "chains, 2 FLOPs per multiply-add, the best of {} windows, which ranged over "
        "[{:.1f}-{:.1f}]); % bf16: a bf16 engine's GFLOP/s over it\n",
        bf16_peak, a.threads, a.threads == 1 ? "" : "s", bf16_peak / peak,
        peak_measured ? "" : " given", a.reps, stats(bf16_peaks).min, stats(bf16_peaks).max);
  size_t label_width = 6;
  for (const auto& c : contenders) label_width = std::max(label_width, c->label().size());
  fmt::print("{:<{}} {:>30} {:>8} {:>7} {:>30} {:>6} {:>6}{}\n", "engine", label_width,
             "train img/s median [min-max]", "GFLOP/s", "% peak", "infer img/s median [min-max]",
             "ratio", "infer", bf16_peak > 0 ? fmt::format(" {:>7}", "% bf16") : "");
  nlohmann::ordered_json engines = nlohmann::ordered_json::array();
  for (const auto& c : contenders) {
    Stats t = stats(c->train_ips), f = stats(c->infer_ips);
    double gflops = t.median * train_mflop / 1e3, share = gflops / peak;
    double infer_gflops = f.median * forward_mflop / 1e3, infer_share = infer_gflops / peak;
    double ratio = t.median / base.median, infer_ratio = f.median / base_infer.median;
    const bool own_peak = c->bf16 && bf16_peak > 0;
    const double bf16_share = own_peak ? gflops / bf16_peak : 0,
                 infer_bf16_share = own_peak ? infer_gflops / bf16_peak : 0;
    std::string bf16_column;
    if (bf16_peak > 0)
      bf16_column =
          own_peak ? fmt::format(" {:>6.1f}%", 100 * bf16_share) : fmt::format(" {:>7}", "-");
    fmt::print("{:<{}} {:>30} {:>8.1f} {:>6.1f}% {:>30} {:>6.2f} {:>6.2f}{}\n", c->label(),
               label_width, fmt::format("{} [{}-{}]", group(t.median), group(t.min), group(t.max)),
               gflops, 100 * share,
               fmt::format("{} [{}-{}]", group(f.median), group(f.min), group(f.max)), ratio,
               infer_ratio, bf16_column);
    engines.push_back({{"engine", c->name},
                       {"label", c->label()},
                       {"train_images_per_second", t.median},
                       {"train_min", t.min},
                       {"train_max", t.max},
                       {"infer_images_per_second", f.median},
                       {"infer_min", f.min},
                       {"infer_max", f.max},
                       {"gflops", gflops},
                       {"infer_gflops", infer_gflops},
                       {"peak_share", share},
                       {"infer_peak_share", infer_share},
                       {"ratio", ratio},
                       {"infer_ratio", infer_ratio},
                       {"diverged", c->diverged}});
    if (own_peak) {
      engines.back()["bf16_peak_share"] = bf16_share;
      engines.back()["infer_bf16_peak_share"] = infer_bf16_share;
    }
  }
  fmt::print("ratio: median training images/s over {}'s; infer: the same for inference\n",
             contenders.front()->name);
  if (a.json) {
    nlohmann::ordered_json implementations = nlohmann::ordered_json::array();
    for (const OnednnImplementation& r : onednn_impls)
      implementations.push_back({{"layer", r.layer},
                                 {"phase", phase_name(r.phase)},
                                 {"primitive", r.primitive},
                                 {"implementation", r.implementation}});
    nlohmann::ordered_json j = {{"model", g.name},
                                {"cpu", cpu_json(cpu)},
                                {"threads", a.threads},
                                {"batch", batch},
                                {"reps", a.reps},
                                {"seconds", a.seconds},
                                {"train_mflop_per_image", train_mflop},
                                {"forward_mflop_per_image", forward_mflop},
                                {"peak_gflops", peak},
                                {"peak_measured", peak_measured}};
    // Like an engine's bf16_peak_share: present only when measured.
    if (bf16_peak > 0) j["bf16_peak_gflops"] = bf16_peak;
    j["engines"] = engines;
    j["skipped"] = skipped;
    fmt::print("{}\n", dsl::json_line(j));
  }
}

}  // namespace cnnc::bench
