// A model as the C ABI describes it, before any engine runs it: the layer table and the model's
// header. The front end's checked Graph is lowered to it once (codegen/abi_table); the generic
// engine runs it, and generated code prints it as its layer table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cnnc_abi.h"

namespace cnnc::rt {

struct ModelSpec {
  std::string name;
  int32_t input_h = 0, input_w = 0, input_c = 0;
  int32_t loss = CNNC_CROSS_ENTROPY;  // enum cnnc_loss
  std::vector<cnnc_layer> layers;     // one row per layer, in order
  int64_t param_count = 0;            // floats, alignment padding included
};

}  // namespace cnnc::rt
