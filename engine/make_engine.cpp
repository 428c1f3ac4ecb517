// Graph -> ABI layer table -> engine. The one place where the front end's types meet the
// runtime's, so that runtime/ never includes dsl/.
#include "engine.hpp"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>
#include <utility>

#include "compile/build.hpp"  // ModelPtr only: nothing here generates or compiles code
#include "generic_engine.hpp"

namespace cnnc::engine {

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
  GenericEngine(rt::ModelSpec spec, int32_t max_batch) : model_(std::move(spec), max_batch) {}
  const cnnc_model& model() const override { return *model_.abi(); }
  std::string description() const override { return "generic"; }

 private:
  rt::GenericModel model_;
};

// The specialised code of a model linked into the executable: nothing to generate or load.
class LinkedEngine final : public Engine {
 public:
  LinkedEngine(const LinkedModel& linked, int32_t max_batch, const std::string& target)
      : model_(linked.create(max_batch, target.c_str()), codegen::ModelDeleter{linked.destroy}) {
    if (!model_)
      throw std::runtime_error(
          fmt::format("this CPU cannot run the specialised code for target '{}'", target));
    description_ =
        fmt::format("{}: linked into this executable ({})", model_->engine, linked.built_with);
  }
  const cnnc_model& model() const override { return *model_; }
  std::string description() const override { return description_; }
  std::string build() const override { return "linked"; }

 private:
  codegen::ModelPtr model_;
  std::string description_;
};

// Both filled before main's parsing and read afterwards, on one thread.
std::vector<LinkedModel>& linked_models() {
  static std::vector<LinkedModel> models;
  return models;
}
EngineFactory compiled_engine = nullptr;

std::unique_ptr<Engine> make_specialized(const dsl::Graph& g, int32_t max_batch,
                                         const std::string& target) {
  // Slices never exceed the batch, as in the compiled engine.
  max_batch = std::min<int32_t>(max_batch, static_cast<int32_t>(g.training.batch));
  for (const LinkedModel& l : linked_models()) {
    if (l.name != g.name || l.cnn_text != g.source_text) continue;
    // The code takes any slice up to the batch it was generated for, so a smaller --batch
    // still runs it; a larger slice needs other code, and there is no compiler to make it.
    if (max_batch > l.max_batch)
      throw std::runtime_error(fmt::format(
          "the specialised code in this executable takes slices of up to {} samples, but this "
          "run needs {}: use more --threads, a --batch of at most {} per thread, --engine "
          "generic, or rebuild with `cnnc build --max-batch N`",
          l.max_batch, max_batch, l.max_batch));
    return std::make_unique<LinkedEngine>(l, max_batch, target);
  }
  if (compiled_engine) return compiled_engine(g, max_batch, target);
  if (!linked_models().empty())
    throw std::runtime_error(fmt::format(
        "this executable holds no specialised code for model {}; use --engine generic", g.name));
  throw std::logic_error("internal error: no specialised engine (see set_compiled_engine)");
}

}  // namespace

void link_model(LinkedModel model) {
  linked_models().push_back(std::move(model));
}

void set_compiled_engine(EngineFactory factory) {
  compiled_engine = factory;
}

std::unique_ptr<Engine> make_engine(const dsl::Graph& graph, const std::string& name,
                                    int32_t max_batch, const std::string& target) {
  if (name == "generic") return std::make_unique<GenericEngine>(spec_of(graph), max_batch);
  if (name == "specialized") return make_specialized(graph, max_batch, target);
  throw std::runtime_error(
      fmt::format("unknown engine '{}'; expected generic or specialized", name));
}

std::unique_ptr<Engine> make_generic_prefix(const dsl::Graph& graph, size_t layers,
                                            int32_t max_batch) {
  if (layers == 0 || layers > graph.layers.size())
    throw std::invalid_argument(fmt::format("model {} has {} layers, not a prefix of {}",
                                            graph.name, graph.layers.size(), layers));
  rt::ModelSpec spec = spec_of(graph);
  spec.layers.resize(layers);  // offsets and param_count stay the whole model's
  return std::make_unique<GenericEngine>(std::move(spec), max_batch);
}

}  // namespace cnnc::engine
