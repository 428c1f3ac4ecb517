// A checked Graph lowered to the C ABI's description of a model (runtime/cnnc_abi.h): the one
// place that maps the front end's layers to cnnc_layer rows, for the generic engine's model
// (engine/make_engine.cpp) and for the table that generated code prints.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cnnc_abi.h"
#include "dsl/graph.hpp"
#include "model_spec.hpp"

namespace cnnc::codegen {

// The ABI's rows for a checked graph. Window fields (kernel, stride, padding) are set for conv
// and pooling only, zero elsewhere, as the ABI states.
rt::ModelSpec lower_to_abi(const dsl::Graph& graph);

// The enumerators' names, as generated code spells them: "CNNC_CONV", "CNNC_RELU", "CNNC_MSE".
const char* abi_kind_name(int32_t kind);
const char* abi_activation_name(int32_t activation);
const char* abi_loss_name(int32_t loss);

}  // namespace cnnc::codegen
