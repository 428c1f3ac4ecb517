// cnnc verify FILE: the specialised code beside the generic engine, the oracle, on random
// inputs and parameters: forward output, loss, every parameter gradient, the updated parameters.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "build/build.hpp"
#include "commands.hpp"
#include "data/random.hpp"
#include "emit_model.hpp"
#include "engines.hpp"

namespace cnnc::cli {

namespace {

struct Aligned {
  explicit Aligned(int64_t bytes)
      : p(std::aligned_alloc(64,
                             static_cast<size_t>((std::max<int64_t>(bytes, 64) + 63) / 64 * 64)),
          &std::free) {}
  std::unique_ptr<void, decltype(&std::free)> p;
};

// What one engine computed on the shared inputs.
struct Outcome {
  std::vector<float> inference, train_output, grads, updated;
  float loss = 0;
};

Outcome run(const cnnc_model& m, const std::vector<float>& params, const std::vector<float>& input,
            const std::vector<int32_t>& labels, int32_t n, const cnnc_optimizer& opt,
            uint64_t seed) {
  Outcome o;
  Aligned ws(m.workspace_bytes);
  o.inference.assign(static_cast<size_t>(n) * m.output_size, 0.0f);
  o.train_output = o.inference;
  o.grads.assign(static_cast<size_t>(m.param_count), 0.0f);
  cnnc_pass pass{};
  pass.params = params.data();
  pass.input = input.data();
  pass.labels = labels.data();
  pass.output = o.inference.data();
  pass.workspace = ws.p.get();
  pass.n = n;
  pass.epoch = 3;
  pass.sample_base = 17;
  pass.seed = seed;
  m.forward(&m, &pass);
  pass.output = o.train_output.data();
  pass.grads = o.grads.data();
  o.loss = m.train(&m, &pass);
  o.updated = params;
  std::vector<float> state(static_cast<size_t>(m.param_count) * 2, 0.0f);
  m.update(&m, o.updated.data(), o.grads.data(), state.data(), &opt);
  return o;
}

struct Error {
  double abs = 0, ref = 0;
  void add(float got, float want) {
    abs = std::max(abs, static_cast<double>(std::fabs(got - want)));
    ref = std::max(ref, static_cast<double>(std::fabs(want)));
  }
  double rel() const { return abs / std::max(ref, 1e-12); }
  // Float sums in another order differ by rounding: a tensor passes when its largest error is
  // small next to its largest value.
  bool ok() const { return abs <= 1e-5 + 1e-3 * ref; }
};

Error compare(const float* got, const float* want, int64_t count) {
  Error e;
  for (int64_t i = 0; i < count; ++i) e.add(got[i], want[i]);
  return e;
}

}  // namespace

void register_verify(CLI::App& app, int& status) {
  struct Options {
    std::string file, target = "all";
    std::optional<int64_t> batch;
    uint64_t seed = 1;
    dsl::Limits limits;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "verify", "Check the specialised code against the generic engine on random data");
  cmd->add_option("file", opt->file, ".cnn file")->required();
  cmd->add_option("--target", opt->target,
                  "all (every ISA this CPU runs), auto, avx512, avx2 or portable")
      ->capture_default_str()
      ->check(CLI::IsMember({"all", "auto", "avx512", "avx2", "portable"}));
  cmd->add_option("--batch", opt->batch, "Samples per call (default: the file's batch)")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  cmd->add_option("--seed", opt->seed, "Seed of the random inputs and parameters")
      ->capture_default_str();
  add_limit_flags(*cmd, opt->limits);
  cmd->callback([opt, &status] {
    std::optional<dsl::Graph> g = load_model(opt->file, opt->limits);
    if (!g) {
      status = exit_user_error;
      return;
    }
    if (opt->batch) g->training.batch = *opt->batch;
    const int32_t n = static_cast<int32_t>(g->training.batch);
    auto generic = make_engine(*g, "generic", n);
    const cnnc_model& ref = generic->model();
    codegen::Generated gen = codegen::emit_model(*g, {g->source_path, g->source_text, n});
    codegen::GeneratedModel lib = codegen::build_generated(gen.source, g->name, {});

    // Inputs in [0, 1), labels in range, parameters from the initialiser with every bias
    // non-zero too, so that no gradient is trivially zero.
    rt::SplitMix64 rng(opt->seed);
    std::vector<float> input(static_cast<size_t>(n) * ref.input_h * ref.input_w * ref.input_c);
    for (float& x : input) x = static_cast<float>(rt::unit_double(rng.next()));
    std::vector<int32_t> labels(static_cast<size_t>(n));
    for (int32_t& y : labels)
      y = static_cast<int32_t>(rt::below(rng.next(), static_cast<uint64_t>(ref.output_size)));
    std::vector<float> params = initial_params(*g, ref, opt->seed);
    for (const dsl::Layer& l : g->layers)
      if (l.initial_bias.empty())
        for (int64_t k = 0; k < l.bias_count; ++k)
          params[static_cast<size_t>(l.bias_offset + k)] =
              static_cast<float>(rt::unit_double(rng.next()) * 0.2 - 0.1);
    const dsl::Optimizer& o = g->training.optimizer;
    cnnc_optimizer optim{o.kind == dsl::OptimizerKind::adam ? CNNC_ADAM : CNNC_SGD,
                         static_cast<float>(o.lr),
                         static_cast<float>(o.momentum),
                         static_cast<float>(o.beta1),
                         static_cast<float>(o.beta2),
                         static_cast<float>(o.eps),
                         static_cast<float>(o.weight_decay),
                         1};
    Outcome want = run(ref, params, input, labels, n, optim, opt->seed);

    std::vector<std::string> targets = opt->target == "all"
                                           ? std::vector<std::string>{"avx512", "avx2", "portable"}
                                           : std::vector<std::string>{opt->target};
    bool all_ok = true;
    int ran = 0;
    fmt::print("{}: {} lines generated, {} ({:.2f} s, {}); batch {}, seed {}\n", g->name,
               dsl::with_thousands(gen.lines),
               lib.how() == "cache" ? "loaded from the cache" : "compiled", lib.build_seconds(),
               lib.compiler(), n, opt->seed);
    for (const std::string& t : targets) {
      codegen::ModelPtr m = lib.make(n, t);
      if (!m) {
        fmt::print("{:<9} skipped: this CPU cannot run it\n", t);
        continue;
      }
      ++ran;
      Outcome got = run(*m, params, input, labels, n, optim, opt->seed);
      fmt::print("{} ({})\n", t, m->engine);
      fmt::print("  {:<22} {:>12} {:>12}\n", "tensor", "max abs err", "max rel err");
      auto row = [&](const std::string& what, Error e) {
        fmt::print("  {:<22} {:>12.3e} {:>12.3e}{}\n", what, e.abs, e.rel(),
                   e.ok() ? "" : "  MISMATCH");
        all_ok = all_ok && e.ok();
      };
      row("forward output", compare(got.inference.data(), want.inference.data(),
                                    static_cast<int64_t>(want.inference.size())));
      row("training output", compare(got.train_output.data(), want.train_output.data(),
                                     static_cast<int64_t>(want.train_output.size())));
      Error loss;
      loss.add(got.loss, want.loss);
      row("loss", loss);
      for (const dsl::Layer& l : g->layers) {
        if (!l.trainable()) continue;
        row(l.name + " weight grad", compare(got.grads.data() + l.weight_offset,
                                             want.grads.data() + l.weight_offset, l.weight_count));
        row(l.name + " bias grad", compare(got.grads.data() + l.bias_offset,
                                           want.grads.data() + l.bias_offset, l.bias_count));
      }
      row("updated parameters", compare(got.updated.data(), want.updated.data(),
                                        static_cast<int64_t>(want.updated.size())));
    }
    if (ran == 0) {
      fmt::print(stderr, "cnnc: error: this CPU runs none of the targets asked for\n");
      status = exit_user_error;
      return;
    }
    fmt::print("{}\n", all_ok ? "verify: the specialised code agrees with the generic engine"
                              : "verify: MISMATCH");
    status = all_ok ? exit_ok : exit_user_error;
  });
}

}  // namespace cnnc::cli
