// Running both engines on one random problem and comparing every tensor they produce.
#include "engine/verify.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>

#include "codegen/compile/build.hpp"
#include "codegen/emit_model.hpp"
#include "data/random.hpp"
#include "engine/engine.hpp"
#include "engine/training.hpp"
#include "train/trainer.hpp"

namespace cnnc::engine {

namespace {

// What one engine computed on the shared inputs.
struct Outcome {
  std::vector<float> inference, train_output, grads, updated;
  float loss = 0;
};

Outcome run(const cnnc_model& m, const std::vector<float>& params, const std::vector<float>& input,
            const std::vector<int32_t>& labels, int32_t n, const cnnc_optimizer& opt,
            uint64_t seed) {
  Outcome o;
  rt::Workspaces ws(m, 1);
  o.inference.assign(static_cast<size_t>(n) * m.output_size, 0.0f);
  o.train_output = o.inference;
  o.grads.assign(static_cast<size_t>(m.param_count), 0.0f);
  cnnc_pass pass{};
  pass.params = params.data();
  pass.input = input.data();
  pass.labels = labels.data();
  pass.output = o.inference.data();
  pass.workspace = ws[0];
  pass.n = n;
  pass.epoch = 3;  // dropout masks keyed away from zero
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

TensorCheck compare(std::string tensor, const float* got, const float* want, int64_t count) {
  TensorCheck t{std::move(tensor)};
  for (int64_t i = 0; i < count; ++i) {
    t.max_abs = std::max(t.max_abs, static_cast<double>(std::fabs(got[i] - want[i])));
    if (std::isnan(got[i]) != std::isnan(want[i])) t.max_abs = INFINITY;
    t.max_ref = std::max(t.max_ref, static_cast<double>(std::fabs(want[i])));
  }
  return t;
}

// Every tensor of got against want: inference output, training output and loss, each within
// `outputs` x its largest value; each trainable layer's weight and bias gradient and the updated
// parameters, within `gradients` x theirs.
std::vector<TensorCheck> compare_all(const dsl::Graph& g, const Outcome& got, const Outcome& want,
                                     double outputs, double gradients) {
  auto all = [](const std::vector<float>& v) { return static_cast<int64_t>(v.size()); };
  std::vector<TensorCheck> t;
  t.push_back(
      compare("forward output", got.inference.data(), want.inference.data(), all(want.inference)));
  t.push_back(compare("training output", got.train_output.data(), want.train_output.data(),
                      all(want.train_output)));
  t.push_back(compare("loss", &got.loss, &want.loss, 1));
  for (TensorCheck& c : t) c.rel_tolerance = outputs;
  const size_t first_gradient = t.size();
  for (const dsl::Layer& l : g.layers) {
    if (!l.trainable()) continue;
    t.push_back(compare(l.name + " weight grad", got.grads.data() + l.weight_offset,
                        want.grads.data() + l.weight_offset, l.weight_count));
    t.push_back(compare(l.name + " bias grad", got.grads.data() + l.bias_offset,
                        want.grads.data() + l.bias_offset, l.bias_count));
  }
  t.push_back(
      compare("updated parameters", got.updated.data(), want.updated.data(), all(want.updated)));
  for (size_t i = first_gradient; i < t.size(); ++i) t[i].rel_tolerance = gradients;
  return t;
}

}  // namespace

double bf16_tolerance(const dsl::Graph& graph, bool gradient, int32_t n) {
  double forward = bf16_products_tolerance(graph);
  return gradient ? 2 * forward * std::sqrt(static_cast<double>(n)) : forward;
}

double bf16_products_tolerance(const dsl::Graph& graph) {
  int layers = 0;
  for (const dsl::Layer& l : graph.layers)
    layers += l.kind == dsl::LayerKind::conv || l.kind == dsl::LayerKind::dense;
  return std::ldexp(1.0, -7) * layers;
}

bool TargetCheck::ok() const {
  return std::all_of(tensors.begin(), tensors.end(), [](const TensorCheck& t) { return t.ok(); });
}

bool VerifyReport::ran() const {
  return std::any_of(targets.begin(), targets.end(),
                     [](const TargetCheck& t) { return !t.engine.empty(); });
}

bool VerifyReport::ok() const {
  return ran() &&
         std::all_of(targets.begin(), targets.end(), [](const TargetCheck& t) { return t.ok(); });
}

VerifyReport verify_specialized(const dsl::Graph& graph, int32_t n, uint64_t seed,
                                const std::vector<std::string>& targets) {
  dsl::Graph g = graph;
  g.training.batch = n;
  auto generic = make_engine(g, "generic", n);
  const cnnc_model& ref = generic->model();
  codegen::Generated gen = codegen::emit_model(g, {g.source_path, g.source_text, n});
  codegen::GeneratedModel lib = codegen::build_generated(gen.source, g.name, {});
  VerifyReport report;
  report.lines = gen.lines;
  report.build = lib.how() == "cache" ? fmt::format("loaded from the cache ({})", lib.compiler())
                                      : fmt::format("compiled in {:.2f} s ({})",
                                                    lib.build_seconds(), lib.compiler());

  // Inputs in [0, 1), labels in range, parameters from the initialiser with every bias made
  // non-zero, so that no gradient is trivially zero.
  rt::SplitMix64 rng(seed);
  std::vector<float> input(static_cast<size_t>(n) * ref.input_h * ref.input_w * ref.input_c);
  for (float& x : input) x = static_cast<float>(rt::unit_double(rng.next()));
  std::vector<int32_t> labels(static_cast<size_t>(n));
  for (int32_t& y : labels)
    y = static_cast<int32_t>(rt::below(rng.next(), static_cast<uint64_t>(ref.output_size)));
  std::vector<float> params = initial_params(g, ref, seed);
  for (const dsl::Layer& l : g.layers)
    if (l.initial_bias.empty())
      for (int64_t k = 0; k < l.bias_count; ++k)
        params[static_cast<size_t>(l.bias_offset + k)] =
            static_cast<float>(rt::unit_double(rng.next()) * 0.2 - 0.1);
  cnnc_optimizer optim = optimizer_of(g.training);
  optim.step = 1;
  Outcome want = run(ref, params, input, labels, n, optim, seed);
  // The avx512_bf16 variant's reference, the generic engine with bf16 products: run once, when
  // a target (perhaps "auto") turns out to be that variant.
  std::optional<Outcome> want_bf16;

  for (const std::string& target : targets) {
    TargetCheck t{target, {}, {}, {}};
    codegen::ModelPtr m = lib.make(n, target);
    if (m) {
      t.engine = m->engine;
      Outcome got = run(*m, params, input, labels, n, optim, seed);
      if (!bf16_products(*m)) {
        t.tensors = compare_all(g, got, want, 1e-3, 1e-3);
      } else {
        if (!want_bf16) {
          rt::GenericModel bf16 = make_generic_model(g, n, /*bf16_products=*/true);
          want_bf16 = run(*bf16.abi(), params, input, labels, n, optim, seed);
        }
        double tolerance = bf16_products_tolerance(g);
        t.tensors = compare_all(g, got, *want_bf16, tolerance, tolerance);
        t.against_fp32 =
            compare_all(g, got, want, bf16_tolerance(g, false, n), bf16_tolerance(g, true, n));
      }
    }
    report.targets.push_back(std::move(t));
  }
  return report;
}

}  // namespace cnnc::engine
