// The Graph: a checked model, every layer typed and shaped. The single source of truth that
// codegen and the runtime read after checking; neither re-derives a shape.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dsl/source.hpp"

namespace cnnc::dsl {

// A sample's tensor, channels last. A flat tensor (after flatten or dense) is 1 x 1 x C.
struct Shape {
  int64_t h = 0, w = 0, c = 0;
  bool flat = false;
  int64_t size() const { return h * w * c; }
  std::string str() const;  // "28x28x6", or "120" when flat
  bool operator==(const Shape&) const = default;
};

enum class LayerKind { conv, maxpool, avgpool, flatten, dense, dropout, activation };
enum class Activation { linear, relu, sigmoid, tanh, softmax };
enum class Loss { cross_entropy, mse };
enum class OptimizerKind { sgd, adam };
enum class ScheduleKind { constant, step, cosine, onecycle };
// How conv and dense layers multiply: fp32, or bf16 products with fp32 sums (docs/language.md).
enum class Precision { fp32, bf16 };

const char* name_of(LayerKind kind);
const char* name_of(Activation act);
const char* name_of(Loss loss);
const char* name_of(OptimizerKind kind);
const char* name_of(ScheduleKind kind);
const char* name_of(Precision precision);

// 61706 -> "61,706", as parameter counts are printed everywhere.
std::string with_thousands(int64_t n);

struct Layer {
  LayerKind kind = LayerKind::conv;
  std::string name;       // conv1, maxpool1, dense2: kind and count, a C++ identifier
  std::string statement;  // the .cnn text, "conv 6 5x5 pad=same relu": user text, never code
  uint32_t line = 0;
  Range range;

  Shape in, out;

  int64_t units = 0;  // conv filters (K) or dense units
  int64_t kernel_h = 0, kernel_w = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  Activation activation = Activation::linear;  // fused (conv, dense) or the layer's function
  double rate = 0;                             // dropout

  std::vector<float> initial_weights;  // [K][R][S][C] from weights=; empty: initialise randomly
  std::vector<float> initial_bias;     // [K] from bias=
  bool frozen = false;

  // Offsets into the parameter vector, in floats, each 16-float (64-byte) aligned.
  int64_t weight_offset = 0, weight_count = 0;
  int64_t bias_offset = 0, bias_count = 0;

  // Per sample: 2 FLOPs per multiply-add, 1 per other arithmetic op. The backward pieces are
  // what each job would cost; training_flops counts only the jobs a training step does.
  int64_t forward_flops = 0;
  int64_t backward_data_flops = 0;     // the input gradient
  int64_t backward_weights_flops = 0;  // the weight and bias gradients
  int64_t backward_act_flops = 0;      // the fused activation's derivative
  bool needs_input_grad = false;       // a trainable layer comes before this one: its dx is read
  int64_t training_flops = 0;          // forward + the backward jobs done (see needs_input_grad)

  // The input pixels one output value depends on (rows x columns; dense layers see the whole
  // input), and the jump: input pixels between neighbouring outputs, the product of the strides
  // so far. receptive = previous receptive + (kernel - 1) x previous jump.
  int64_t receptive_h = 1, receptive_w = 1;
  int64_t jump_h = 1, jump_w = 1;

  int64_t params() const { return weight_count + bias_count; }
  bool trainable() const { return !frozen && params() > 0; }
};

struct Optimizer {
  OptimizerKind kind = OptimizerKind::sgd;
  double lr = 0.01;
  double momentum = 0.9;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0;
};

struct Schedule {
  ScheduleKind kind = ScheduleKind::constant;
  int64_t every = 0;   // step: epochs between decays
  double gamma = 0.1;  // step: factor per decay
  double warmup = 0;   // onecycle: the share of the run's steps the rate rises over
};

struct Augment {
  int64_t shift = 0;  // pixels, each axis, uniform in [-shift, shift]
  double rotate = 0;  // degrees, uniform in [-rotate, rotate]
  double scale = 0;   // zoom uniform in [1 - scale, 1 + scale]
  bool enabled() const { return shift > 0 || rotate > 0 || scale > 0; }
};

// The training statements with dsl.md's defaults filled in.
struct Training {
  Loss loss = Loss::cross_entropy;
  Optimizer optimizer;
  int64_t batch = 64;
  int64_t epochs = 10;
  uint64_t seed = 1;
  double validation = 0;  // the last fraction of the training set held out
  Augment augment;
  Schedule schedule;
  Precision precision = Precision::fp32;
};

struct Graph {
  std::string name;         // checked: [a-z_][a-z0-9_]*, at most 64 characters, no C++ keyword
  std::string source_path;  // as given on the command line
  std::string source_text;  // the text it was checked from: generated code records its digest
  Shape input;
  std::vector<Layer> layers;
  Training training;

  int64_t param_count = 0;   // parameters, exactly as a user counts them
  int64_t param_floats = 0;  // length of the parameter vector, alignment padding included
  int64_t trainable_params = 0;
  int64_t forward_flops = 0;  // per sample
  int64_t training_flops = 0;
  int64_t activation_bytes = 0;      // per sample: the input and every layer's output, float32
  int64_t estimated_code_bytes = 0;  // of the specialised source, before it is generated

  const Shape& output() const { return layers.back().out; }
};

}  // namespace cnnc::dsl
