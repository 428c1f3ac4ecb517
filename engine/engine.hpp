// From a checked Graph to a model behind the C ABI, on the engine the user chose.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cnnc_abi.h"
#include "dsl/graph.hpp"
#include "generic/generic_engine.hpp"

namespace cnnc::engine {

// A model ready to run: owns whatever its cnnc_model points into.
class Engine {
 public:
  virtual ~Engine() = default;
  virtual const cnnc_model& model() const = 0;
  // How the engine came to be, for the user: "generic", or what was generated and compiled.
  virtual std::string description() const = 0;
  // How the specialised code was built: "jit", "cache", "subprocess", or "linked" (by cnnc
  // build, ahead of time); empty for generic.
  virtual std::string build() const { return {}; }
  // Seconds the build (or the cache lookup) took; 0 for generic.
  virtual double build_seconds() const { return 0; }
};

// The engine named by --engine, "generic" or "specialized", for slices of up to max_batch
// samples. The specialised code is generated for batches of graph.training.batch, compiled (or
// found in the cache) and run on `target`: "auto" (the best the CPU has), "avx512", "avx2" or
// "portable". Throws std::runtime_error with a user-facing message when the engine is not
// available (codegen::BuildError, a std::runtime_error, when generated code fails to build).
std::unique_ptr<Engine> make_engine(const dsl::Graph& graph, const std::string& name,
                                    int32_t max_batch, const std::string& target = "auto");

// The target named, or for "auto" the best this CPU runs at a precision: "avx512_bf16" (bf16
// only), "avx512", "avx2" or "portable".
std::string resolve_target(const std::string& target, dsl::Precision precision);

// "" when the model runs at the graph's precision; for a bf16 graph on fp32 code (a CPU without
// AVX512_BF16, or a target that names an fp32 variant), what the user should know.
std::string precision_note(const dsl::Graph& graph, const cnnc_model& model);

// Whether the model is the avx512_bf16 variant of generated code, whose products are bf16.
bool bf16_products(const cnnc_model& model);

// The generic engine of the graph's first `layers` layers: its output is that last layer's
// tensor, [H][W][C]. It reads the whole model's parameter vector (offsets are unchanged), so a
// checkpoint of the full model drives it: how cnnc viz shows what every layer computes.
std::unique_ptr<Engine> make_generic_prefix(const dsl::Graph& graph, size_t layers,
                                            int32_t max_batch);

// The generic engine of the whole graph as itself, for what only it computes: the input
// gradient behind cnnc viz's saliency maps; and, with bf16_products, the reference that cnnc
// verify holds the avx512_bf16 variant to (GenericModel).
rt::GenericModel make_generic_model(const dsl::Graph& graph, int32_t max_batch,
                                    bool bf16_products = false);

// Where make_engine's "specialized" gets its code. First, code linked into this executable by
// `cnnc build`, for the model it was generated from (same name, same .cnn text). Otherwise the
// compiled engine: generated now, then compiled or found in the cache (compiled_engine.cpp).
// cnnc's main installs it with set_compiled_engine(&make_compiled_engine); executables of cnnc
// build never do, so they link neither the code generator nor a compiler backend, and an
// executable that carries its model never needs a compiler.
struct LinkedModel {
  std::string name;       // the model's name: cnnc_<name>_create
  std::string cnn_text;   // the .cnn text the code was generated from
  int32_t max_batch = 0;  // the largest slice the code was generated for
  cnnc_model* (*create)(int32_t max_batch, const char* target) = nullptr;
  void (*destroy)(cnnc_model*) = nullptr;
  std::string built_with;  // the compiler, for the engine's description
};
void link_model(LinkedModel model);

using EngineFactory = std::unique_ptr<Engine> (*)(const dsl::Graph& graph, int32_t max_batch,
                                                  const std::string& target);
void set_compiled_engine(EngineFactory factory);
std::unique_ptr<Engine> make_compiled_engine(const dsl::Graph& graph, int32_t max_batch,
                                             const std::string& target);

}  // namespace cnnc::engine
