// Graph -> ABI layer table -> engine. The one place where the front end's types meet the
// runtime's, so that runtime/ never includes dsl/.
#include "engine/engine.hpp"

#include <fmt/format.h>

#include <stdexcept>
#include <utility>

#include "codegen/abi_table.hpp"
#include "codegen/compile/build.hpp"  // ModelPtr only: nothing here generates or compiles code
#include "generic/generic_engine.hpp"

namespace cnnc::engine {

namespace {

class GenericEngine final : public Engine {
 public:
  GenericEngine(rt::ModelSpec spec, int32_t max_batch) : model_(std::move(spec), max_batch) {}
  const cnnc_model& model() const override { return *model_.abi(); }
  std::string description() const override { return "generic"; }

 private:
  rt::GenericModel model_;
};

// The specialised code of a model linked into the executable: nothing to generate or load. It
// holds the variants of both precisions (cnnc build), so "auto" names the best one of the run's.
class LinkedEngine final : public Engine {
 public:
  LinkedEngine(const dsl::Graph& g, const LinkedModel& linked, int32_t max_batch,
               const std::string& target)
      : model_(linked.create(max_batch, resolve_target(target, g.training.precision).c_str()),
               codegen::ModelDeleter{linked.destroy}) {
    if (!model_)
      throw std::runtime_error(
          fmt::format("this CPU cannot run the specialised code for target '{}'", target));
    description_ = fmt::format("{}: linked into this executable ({}){}", model_->engine,
                               linked.built_with, precision_note(g, *model_));
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
    return std::make_unique<LinkedEngine>(g, l, max_batch, target);
  }
  if (compiled_engine) return compiled_engine(g, max_batch, target);
  if (!linked_models().empty())
    throw std::runtime_error(fmt::format(
        "this executable holds no specialised code for model {}; use --engine generic", g.name));
  throw std::logic_error("internal error: no specialised engine (see set_compiled_engine)");
}

}  // namespace

std::string resolve_target(const std::string& target, dsl::Precision precision) {
  if (target != "auto") return target;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (precision == dsl::Precision::bf16 && __builtin_cpu_supports("avx512bf16") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
    return "avx512_bf16";
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
#endif
  return "portable";
}

bool bf16_products(const cnnc_model& model) {
  return std::string(model.engine) == "specialized-avx512_bf16";
}

std::string precision_note(const dsl::Graph& graph, const cnnc_model& model) {
  if (graph.training.precision != dsl::Precision::bf16 || bf16_products(model)) return {};
  return "; precision bf16 asked for, but this CPU lacks AVX512_BF16 (or the target names an fp32 "
         "variant): fp32 products";
}

void link_model(LinkedModel model) {
  linked_models().push_back(std::move(model));
}

void set_compiled_engine(EngineFactory factory) {
  compiled_engine = factory;
}

std::unique_ptr<Engine> make_engine(const dsl::Graph& graph, const std::string& name,
                                    int32_t max_batch, const std::string& target) {
  if (name == "generic")
    return std::make_unique<GenericEngine>(codegen::lower_to_abi(graph), max_batch);
  if (name == "specialized") return make_specialized(graph, max_batch, target);
  throw std::runtime_error(
      fmt::format("unknown engine '{}'; expected generic or specialized", name));
}

std::unique_ptr<Engine> make_generic_prefix(const dsl::Graph& graph, size_t layers,
                                            int32_t max_batch) {
  if (layers == 0 || layers > graph.layers.size())
    throw std::invalid_argument(fmt::format("model {} has {} layers, not a prefix of {}",
                                            graph.name, graph.layers.size(), layers));
  rt::ModelSpec spec = codegen::lower_to_abi(graph);
  spec.layers.resize(layers);  // offsets and param_count stay the whole model's
  return std::make_unique<GenericEngine>(std::move(spec), max_batch);
}

rt::GenericModel make_generic_model(const dsl::Graph& graph, int32_t max_batch,
                                    bool bf16_products) {
  return rt::GenericModel(codegen::lower_to_abi(graph), max_batch, bf16_products);
}

}  // namespace cnnc::engine
