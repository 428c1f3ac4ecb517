// Lowering of a checked Graph to the ABI's layer table, and the names of the ABI's enumerators.
#include "codegen/abi_table.hpp"

#include <cstring>
#include <stdexcept>

namespace cnnc::codegen {

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

// Checked shapes and counts fit the ABI's int32 fields; the front end's limits keep them small.
int32_t i32(int64_t v) {
  return static_cast<int32_t>(v);
}

}  // namespace

rt::ModelSpec lower_to_abi(const dsl::Graph& g) {
  rt::ModelSpec m;
  m.name = g.name;
  m.input_h = i32(g.input.h);
  m.input_w = i32(g.input.w);
  m.input_c = i32(g.input.c);
  m.loss = g.training.loss == dsl::Loss::mse ? CNNC_MSE : CNNC_CROSS_ENTROPY;
  m.param_count = g.param_floats;
  for (const dsl::Layer& l : g.layers) {
    cnnc_layer a{};
    std::strncpy(a.name, l.name.c_str(), sizeof a.name - 1);  // names are short identifiers
    a.kind = abi_kind(l.kind);
    a.activation = abi_activation(l.activation);
    a.in_h = i32(l.in.h);
    a.in_w = i32(l.in.w);
    a.in_c = i32(l.in.c);
    a.out_h = i32(l.out.h);
    a.out_w = i32(l.out.w);
    a.out_c = i32(l.out.c);
    if (l.kind == dsl::LayerKind::conv || l.kind == dsl::LayerKind::maxpool ||
        l.kind == dsl::LayerKind::avgpool) {
      a.kernel_h = i32(l.kernel_h);
      a.kernel_w = i32(l.kernel_w);
      a.stride_h = i32(l.stride_h);
      a.stride_w = i32(l.stride_w);
      a.pad_top = i32(l.pad_top);
      a.pad_left = i32(l.pad_left);
      a.pad_bottom = i32(l.pad_bottom);
      a.pad_right = i32(l.pad_right);
    }
    a.dropout_rate = static_cast<float>(l.rate);
    a.weight_offset = l.weight_offset;
    a.weight_count = l.weight_count;
    a.bias_offset = l.bias_offset;
    a.bias_count = l.bias_count;
    a.trainable = l.trainable() ? 1 : 0;
    m.layers.push_back(a);
  }
  return m;
}

// Each enumerator's name is its own spelling, so the two cannot drift apart.
#define CNNC_NAME_OF(enumerator) \
  case enumerator: return #enumerator

const char* abi_kind_name(int32_t kind) {
  switch (kind) {
    CNNC_NAME_OF(CNNC_CONV);
    CNNC_NAME_OF(CNNC_MAXPOOL);
    CNNC_NAME_OF(CNNC_AVGPOOL);
    CNNC_NAME_OF(CNNC_FLATTEN);
    CNNC_NAME_OF(CNNC_DENSE);
    CNNC_NAME_OF(CNNC_DROPOUT);
    CNNC_NAME_OF(CNNC_ACTIVATION);
  }
  throw std::logic_error("unknown cnnc_layer_kind");
}

const char* abi_activation_name(int32_t activation) {
  switch (activation) {
    CNNC_NAME_OF(CNNC_LINEAR);
    CNNC_NAME_OF(CNNC_RELU);
    CNNC_NAME_OF(CNNC_SIGMOID);
    CNNC_NAME_OF(CNNC_TANH);
    CNNC_NAME_OF(CNNC_SOFTMAX);
  }
  throw std::logic_error("unknown cnnc_activation");
}

const char* abi_loss_name(int32_t loss) {
  switch (loss) {
    CNNC_NAME_OF(CNNC_CROSS_ENTROPY);
    CNNC_NAME_OF(CNNC_MSE);
  }
  throw std::logic_error("unknown cnnc_loss");
}

#undef CNNC_NAME_OF

}  // namespace cnnc::codegen
