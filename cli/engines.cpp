// Graph -> ABI layer table -> engine. The one place where the front end's types meet the
// runtime's, so that runtime/ never includes dsl/.
#include "engines.hpp"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

#include <chrono>

#include "compile/build.hpp"
#include "emit_model.hpp"
#include "generic_engine.hpp"
#include "params.hpp"

namespace cnnc::cli {

namespace {

int32_t abi_kind(dsl::LayerKind k) {
  switch (k) {
    case dsl::LayerKind::conv: return CNNC_CONV;
    case dsl::LayerKind::maxpool: return CNNC_MAXPOOL;
    case dsl::LayerKind::avgpool: return CNNC_AVGPOOL;
    case dsl::LayerKind::flatten: return CNNC_FLATTEN;
    case dsl::LayerKind::dense: return CNNC_DENSE;
    case dsl::LayerKind::dropout: return CNNC_DROPOUT;
    case dsl::LayerKind::activation: return CNNC_ACTIVATION;
  }
  throw std::logic_error("unknown layer kind");
}

int32_t abi_activation(dsl::Activation a) {
  switch (a) {
    case dsl::Activation::linear: return CNNC_LINEAR;
    case dsl::Activation::relu: return CNNC_RELU;
    case dsl::Activation::sigmoid: return CNNC_SIGMOID;
    case dsl::Activation::tanh: return CNNC_TANH;
    case dsl::Activation::softmax: return CNNC_SOFTMAX;
  }
  throw std::logic_error("unknown activation");
}

rt::ModelSpec spec_of(const dsl::Graph& g) {
  rt::ModelSpec s;
  s.name = g.name;
  s.input_h = static_cast<int32_t>(g.input.h);
  s.input_w = static_cast<int32_t>(g.input.w);
  s.input_c = static_cast<int32_t>(g.input.c);
  s.loss = g.training.loss == dsl::Loss::mse ? CNNC_MSE : CNNC_CROSS_ENTROPY;
  s.param_count = g.param_floats;
  for (const dsl::Layer& l : g.layers) {
    cnnc_layer a{};
    std::strncpy(a.name, l.name.c_str(), sizeof a.name - 1);  // names are short identifiers
    a.kind = abi_kind(l.kind);
    a.activation = abi_activation(l.activation);
    a.in_h = static_cast<int32_t>(l.in.h);
    a.in_w = static_cast<int32_t>(l.in.w);
    a.in_c = static_cast<int32_t>(l.in.c);
    a.out_h = static_cast<int32_t>(l.out.h);
    a.out_w = static_cast<int32_t>(l.out.w);
    a.out_c = static_cast<int32_t>(l.out.c);
    if (l.kind == dsl::LayerKind::conv || l.kind == dsl::LayerKind::maxpool ||
        l.kind == dsl::LayerKind::avgpool) {
      a.kernel_h = static_cast<int32_t>(l.kernel_h);
      a.kernel_w = static_cast<int32_t>(l.kernel_w);
      a.stride_h = static_cast<int32_t>(l.stride_h);
      a.stride_w = static_cast<int32_t>(l.stride_w);
      a.pad_top = static_cast<int32_t>(l.pad_top);
      a.pad_left = static_cast<int32_t>(l.pad_left);
      a.pad_bottom = static_cast<int32_t>(l.pad_bottom);
      a.pad_right = static_cast<int32_t>(l.pad_right);
    }
    a.dropout_rate = static_cast<float>(l.rate);
    a.weight_offset = l.weight_offset;
    a.weight_count = l.weight_count;
    a.bias_offset = l.bias_offset;
    a.bias_count = l.bias_count;
    a.trainable = l.trainable() ? 1 : 0;
    s.layers.push_back(a);
  }
  return s;
}

class GenericEngine final : public Engine {
 public:
  GenericEngine(const dsl::Graph& g, int32_t max_batch) : model_(spec_of(g), max_batch) {}
  const cnnc_model& model() const override { return *model_.abi(); }
  std::string description() const override { return "generic"; }

 private:
  rt::GenericModel model_;
};

class SpecializedEngine final : public Engine {
 public:
  SpecializedEngine(const dsl::Graph& g, int32_t max_batch, const std::string& target) {
    auto start = std::chrono::steady_clock::now();
    codegen::GenOptions options{g.source_path, g.source_text, static_cast<int>(g.training.batch)};
    codegen::Generated gen = codegen::emit_model(g, options);
    double gen_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    library_ =
        std::make_unique<codegen::GeneratedModel>(codegen::build_generated(gen.source, g.name, {}));
    model_ = library_->make(std::min<int32_t>(max_batch, static_cast<int32_t>(g.training.batch)),
                            target);
    if (!model_)
      throw std::runtime_error(
          fmt::format("this CPU cannot run the specialised code for target '{}'", target));
    description_ = fmt::format("{}: generated {} lines in {:.0f} ms; {} in {:.2f} s ({})",
                               model_->engine, dsl::with_thousands(gen.lines), gen_ms,
                               library_->how() == "cache" ? "loaded from the cache" : "compiled",
                               library_->build_seconds(), library_->compiler());
  }
  const cnnc_model& model() const override { return *model_; }
  std::string description() const override { return description_; }

 private:
  std::unique_ptr<codegen::GeneratedModel> library_;  // outlives model_: declared first
  codegen::ModelPtr model_;
  std::string description_;
};

}  // namespace

std::unique_ptr<Engine> make_engine(const dsl::Graph& graph, const std::string& name,
                                    int32_t max_batch, const std::string& target) {
  if (name == "generic") return std::make_unique<GenericEngine>(graph, max_batch);
  if (name == "specialized") return std::make_unique<SpecializedEngine>(graph, max_batch, target);
  throw std::runtime_error(
      fmt::format("unknown engine '{}'; expected generic or specialized", name));
}

cnnc_optimizer optimizer_of(const dsl::Training& t) {
  cnnc_optimizer o{};
  o.kind = t.optimizer.kind == dsl::OptimizerKind::adam ? CNNC_ADAM : CNNC_SGD;
  o.lr = static_cast<float>(t.optimizer.lr);
  o.momentum = static_cast<float>(t.optimizer.momentum);
  o.beta1 = static_cast<float>(t.optimizer.beta1);
  o.beta2 = static_cast<float>(t.optimizer.beta2);
  o.eps = static_cast<float>(t.optimizer.eps);
  o.weight_decay = static_cast<float>(t.optimizer.weight_decay);
  return o;
}

std::vector<float> initial_params(const dsl::Graph& graph, const cnnc_model& model, uint64_t seed) {
  std::vector<float> p = rt::initial_params(model, seed);
  for (const dsl::Layer& l : graph.layers) {
    std::copy(l.initial_weights.begin(), l.initial_weights.end(), p.begin() + l.weight_offset);
    std::copy(l.initial_bias.begin(), l.initial_bias.end(), p.begin() + l.bias_offset);
  }
  return p;
}

}  // namespace cnnc::cli
