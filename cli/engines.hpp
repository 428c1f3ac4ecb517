// From a checked Graph to a model behind the C ABI, on the engine the user chose.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cnnc_abi.h"
#include "dsl/graph.hpp"

namespace cnnc::cli {

// A model ready to run: owns whatever its cnnc_model points into.
class Engine {
 public:
  virtual ~Engine() = default;
  virtual const cnnc_model& model() const = 0;
  // How the engine came to be, for the user: "generic", or what was generated and compiled.
  virtual std::string description() const = 0;
};

// The engine named by --engine, "generic" or "specialized", for slices of up to max_batch
// samples. The specialised code is generated for batches of graph.training.batch, compiled (or
// found in the cache) and run on `target`: "auto" (the best the CPU has), "avx512", "avx2" or
// "portable". Throws std::runtime_error with a user-facing message when the engine is not
// available (codegen::BuildError, a std::runtime_error, when generated code fails to build).
std::unique_ptr<Engine> make_engine(const dsl::Graph& graph, const std::string& name,
                                    int32_t max_batch, const std::string& target = "auto");

// The optimizer of a .cnn file's training block at its base rate, step 0: the one translation
// of dsl::Training into the ABI, shared by cnnc train and cnnc bench. Schedules are the
// trainer's business (rt::LrSchedule), not the optimizer's.
cnnc_optimizer optimizer_of(const dsl::Training& training);

// He/Glorot initial parameters from the seed, with the weights= and bias= of the .cnn file
// written over them.
std::vector<float> initial_params(const dsl::Graph& graph, const cnnc_model& model, uint64_t seed);

}  // namespace cnnc::cli
