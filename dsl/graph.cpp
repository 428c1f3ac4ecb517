// Names and printing for the Graph's types.
#include "dsl/graph.hpp"

#include <fmt/format.h>

namespace cnnc::dsl {

std::string Shape::str() const {
  return flat ? fmt::format("{}", c) : fmt::format("{}x{}x{}", h, w, c);
}

const char* name_of(LayerKind kind) {
  switch (kind) {
    case LayerKind::conv: return "conv";
    case LayerKind::maxpool: return "maxpool";
    case LayerKind::avgpool: return "avgpool";
    case LayerKind::flatten: return "flatten";
    case LayerKind::dense: return "dense";
    case LayerKind::dropout: return "dropout";
    case LayerKind::activation: return "activation";
  }
  return "?";
}

const char* name_of(Activation act) {
  switch (act) {
    case Activation::linear: return "linear";
    case Activation::relu: return "relu";
    case Activation::sigmoid: return "sigmoid";
    case Activation::tanh: return "tanh";
    case Activation::softmax: return "softmax";
  }
  return "?";
}

std::string with_thousands(int64_t n) {
  std::string digits = fmt::format("{}", n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

const char* name_of(Loss loss) {
  return loss == Loss::mse ? "mse" : "cross_entropy";
}
const char* name_of(OptimizerKind kind) {
  return kind == OptimizerKind::adam ? "adam" : "sgd";
}

const char* name_of(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::constant: return "constant";
    case ScheduleKind::step: return "step";
    case ScheduleKind::cosine: return "cosine";
    case ScheduleKind::onecycle: return "onecycle";
  }
  return "?";
}

const char* name_of(Precision precision) {
  return precision == Precision::bf16 ? "bf16" : "fp32";
}

}  // namespace cnnc::dsl
