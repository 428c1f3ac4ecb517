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
};

// The engine named by --engine ("generic"; "specialized" once the code generator lands) for
// slices of up to max_batch samples. Throws std::runtime_error with a user-facing message for
// an engine that is not available.
std::unique_ptr<Engine> make_engine(const dsl::Graph& graph, const std::string& name,
                                    int32_t max_batch);

// He/Glorot initial parameters from the seed, with the weights= and bias= of the .cnn file
// written over them.
std::vector<float> initial_params(const dsl::Graph& graph, const cnnc_model& model, uint64_t seed);

}  // namespace cnnc::cli
