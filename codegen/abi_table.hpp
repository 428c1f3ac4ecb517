// A checked Graph lowered to the C ABI's description of a model (runtime/cnnc_abi.h): the one
// place that maps the front end's layers to cnnc_layer rows, for the generic engine's model
// (cli/engines.cpp) and for the table that generated code prints.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cnnc_abi.h"
#include "dsl/graph.hpp"

namespace cnnc::codegen {

// What cnnc_model says about a model whatever the engine: the fields of rt::ModelSpec.
struct AbiModel {
  std::string name;
  int32_t input_h = 0, input_w = 0, input_c = 0;
  int32_t loss = CNNC_CROSS_ENTROPY;  // enum cnnc_loss
  std::vector<cnnc_layer> layers;     // one row per layer of the Graph, in order
  int64_t param_count = 0;            // floats, alignment padding included
};

// The ABI's rows for a checked graph. Window fields (kernel, stride, padding) are set for conv
// and pooling only, zero elsewhere, as the ABI states.
AbiModel lower_to_abi(const dsl::Graph& graph);

// The enumerators' names, as generated code spells them: "CNNC_CONV", "CNNC_RELU", "CNNC_MSE".
const char* abi_kind_name(int32_t kind);
const char* abi_activation_name(int32_t activation);
const char* abi_loss_name(int32_t loss);

}  // namespace cnnc::codegen
