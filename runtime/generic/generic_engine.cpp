// The generic engine: plans the workspace once, then sequences the layer kernels per ABI call.
//
// Workspace, in 64-byte aligned regions: GEMM packing | im2col of one sample | the output of
// every layer for max_batch samples | two gradient buffers that backward ping-pongs between.
// Forward keeps every layer's output because each backward reads its layer's input and output
// (never a pre-activation value, never a mask: those are recomputed).
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "generic/gemm.hpp"
#include "generic/generic_engine.hpp"
#include "generic/layers.hpp"

namespace cnnc::rt {
namespace {

constexpr int64_t kAlignFloats = 64 / sizeof(float);

int64_t aligned(int64_t floats) {
  return (floats + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
}

int64_t out_size(const cnnc_layer& l) {
  return int64_t{l.out_h} * l.out_w * l.out_c;
}

bool has_params(const cnnc_layer& l) {
  return l.weight_count + l.bias_count > 0;
}

}  // namespace

struct GenericModel::Engine {
  ModelSpec spec;
  cnnc_model model{};
  // Offsets in floats from the start of the workspace.
  int64_t pack_at = 0, col_at = 0, grad_at[2] = {0, 0};
  std::vector<int64_t> act_at;
  // The lowest layer whose parameters get gradients (layers.size() when none do): backward
  // stops there, so a frozen front end costs no backward work at all.
  size_t first_trained = 0;
  // Cross-entropy after a final softmax: in training the loss owns the softmax and hands back
  // softmax - onehot as the gradient of the logits.
  bool fused_softmax = false;
  bool bf16 = false;  // GenericModel's bf16_products

  Engine(ModelSpec s, int32_t max_batch, bool bf16_products);
  // Runs every layer; returns each layer's output (flatten, and layers that are the identity in
  // this mode, alias their input). With linear_last the last layer's softmax is left out: its
  // output is the logits.
  std::vector<const float*> run_forward(const cnnc_pass& p, bool training, bool linear_last) const;
  // What one backward pass computes, and of which forward pass.
  struct Backward {
    bool training;     // the forward pass dropped out what dropout masks
    bool linear_last;  // the forward pass left out a final softmax (run_forward)
    size_t bottom;     // the lowest layer backward reaches
    bool input_grad;   // the gradient at bottom's input too
    float* grads;      // parameter gradients, or null for none
  };
  // Backpropagates the gradient in grad buffer 0, taken at the last layer's output as forward
  // produced it. Returns the grad buffer that holds the gradient at bottom's input.
  int backward(const cnnc_pass& p, const std::vector<const float*>& outs, const Backward& b) const;
  void forward(const cnnc_pass& p) const;
  float train(const cnnc_pass& p) const;
  void input_gradient(const cnnc_pass& p, const int32_t* classes, float* grad) const;
  // The step for the parameters in [begin, end) (cnnc_model::update_range).
  void update(float* params, const float* grads, float* state, const cnnc_optimizer& opt,
              int64_t begin, int64_t end) const;
  void check(const cnnc_pass& p) const;
};

GenericModel::Engine::Engine(ModelSpec s, int32_t max_batch, bool bf16_products)
    : spec(std::move(s)), bf16(bf16_products) {
  validate(spec);
  if (max_batch < 1)
    throw std::invalid_argument("max_batch is " + std::to_string(max_batch) + ", must be >= 1");
  const std::vector<cnnc_layer>& layers = spec.layers;
  const cnnc_layer& last = layers.back();
  fused_softmax = spec.loss == CNNC_CROSS_ENTROPY && last.activation == CNNC_SOFTMAX;
  first_trained = layers.size();
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i].trainable && has_params(layers[i])) {
      first_trained = i;
      break;
    }

  int64_t at = 0;
  pack_at = at;
  at += aligned(kGemmPackFloats);
  // The gradient buffers also hold the input's gradient (input_gradient).
  int64_t col = 0, widest = int64_t{spec.input_h} * spec.input_w * spec.input_c;
  for (const cnnc_layer& l : layers) {
    if (l.kind == CNNC_CONV) col = std::max(col, conv_col_floats(l));
    widest = std::max(widest, out_size(l));
  }
  col_at = at;
  at += aligned(col);
  for (const cnnc_layer& l : layers) {
    act_at.push_back(at);
    at += l.kind == CNNC_FLATTEN ? 0 : aligned(max_batch * out_size(l));
  }
  for (int64_t& g : grad_at) {
    g = at;
    at += aligned(max_batch * widest);
  }

  model.abi_version = CNNC_ABI_VERSION;
  model.name = spec.name.c_str();
  model.engine = bf16 ? "generic-bf16" : "generic";
  model.input_h = spec.input_h;
  model.input_w = spec.input_w;
  model.input_c = spec.input_c;
  model.output_size = int32_t(out_size(last));
  model.max_batch = max_batch;
  model.loss = spec.loss;
  model.layer_count = int32_t(layers.size());
  model.layers = layers.data();
  model.param_count = spec.param_count;
  model.workspace_bytes = at * int64_t{sizeof(float)};
  model.forward = [](const cnnc_model* m, const cnnc_pass* p) {
    static_cast<const Engine*>(m->impl)->forward(*p);
  };
  model.train = [](const cnnc_model* m, const cnnc_pass* p) {
    return static_cast<const Engine*>(m->impl)->train(*p);
  };
  model.update = [](const cnnc_model* m, float* params, const float* grads, float* state,
                    const cnnc_optimizer* opt) {
    static_cast<const Engine*>(m->impl)->update(params, grads, state, *opt, 0, m->param_count);
  };
  model.impl = this;
  model.update_range = [](const cnnc_model* m, float* params, const float* grads, float* state,
                          const cnnc_optimizer* opt, int64_t begin, int64_t end) {
    static_cast<const Engine*>(m->impl)->update(params, grads, state, *opt, begin, end);
  };
  model.prepared_bytes = 0;  // the products read params as they are
  model.prepare = nullptr;
  model.dense_weights = nullptr;  // train always writes every gradient
}

void GenericModel::Engine::check(const cnnc_pass& p) const {
  if (p.n < 1 || p.n > model.max_batch)
    throw std::invalid_argument("pass of " + std::to_string(p.n) +
                                " samples; this model takes 1 to " +
                                std::to_string(model.max_batch));
  if (!p.params || !p.input || !p.workspace)
    throw std::invalid_argument("pass without params, input or workspace");
}

std::vector<const float*> GenericModel::Engine::run_forward(const cnnc_pass& p, bool training,
                                                            bool linear_last) const {
  float* ws = static_cast<float*>(p.workspace);
  const std::vector<cnnc_layer>& layers = spec.layers;
  std::vector<const float*> outs(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    cnnc_layer l = layers[i];
    if (linear_last && i + 1 == layers.size() && l.activation == CNNC_SOFTMAX)
      l.activation = CNNC_LINEAR;
    const float* x = i == 0 ? p.input : outs[i - 1];
    float* y = ws + act_at[i];
    const float* w = l.weight_count ? p.params + l.weight_offset : nullptr;
    const float* b = l.bias_count ? p.params + l.bias_offset : nullptr;
    outs[i] = y;
    switch (l.kind) {
      case CNNC_CONV: conv_forward(l, p.n, x, w, b, y, ws + col_at, ws + pack_at, bf16); break;
      case CNNC_DENSE: dense_forward(l, p.n, x, w, b, y, ws + pack_at, bf16); break;
      case CNNC_MAXPOOL: maxpool_forward(l, p.n, x, y); break;
      case CNNC_AVGPOOL: avgpool_forward(l, p.n, x, y); break;
      case CNNC_FLATTEN: outs[i] = x; break;
      case CNNC_DROPOUT:
        if (training)
          dropout_forward(l, p.n, {p.seed, p.epoch, p.sample_base, uint32_t(i)}, x, y);
        else
          outs[i] = x;
        break;
      case CNNC_ACTIVATION:
        if (l.activation == CNNC_LINEAR) {
          outs[i] = x;
          break;
        }
        std::memcpy(y, x, p.n * out_size(l) * sizeof(float));
        activation_forward(l.activation, p.n, out_size(l), y);
        break;
    }
  }
  return outs;
}

void GenericModel::Engine::forward(const cnnc_pass& p) const {
  check(p);
  if (!p.output) throw std::invalid_argument("forward needs pass->output");
  const std::vector<const float*> outs = run_forward(p, false, false);
  std::memcpy(p.output, outs.back(), p.n * int64_t{model.output_size} * sizeof(float));
}

float GenericModel::Engine::train(const cnnc_pass& p) const {
  check(p);
  if (!p.labels || !p.grads) throw std::invalid_argument("train needs pass->labels and grads");
  // In training the loss owns a final softmax (fused_softmax).
  const std::vector<const float*> outs = run_forward(p, true, fused_softmax);
  float* ws = static_cast<float*>(p.workspace);
  const int32_t o = model.output_size;
  const float* last = outs.back();

  // The gradient of the summed loss with respect to the last output (the logits when the
  // softmax is fused) lands in the first gradient buffer.
  float* dy = ws + grad_at[0];
  float loss = 0.0f;
  if (spec.loss == CNNC_CROSS_ENTROPY) {
    loss = softmax_xent(p.n, o, last, p.labels, fused_softmax ? p.output : nullptr, dy);
    if (!fused_softmax && p.output) std::memcpy(p.output, last, p.n * int64_t{o} * sizeof(float));
  } else {
    loss = mse(p.n, o, last, p.labels, dy);
    if (p.output) std::memcpy(p.output, last, p.n * int64_t{o} * sizeof(float));
  }
  backward(p, outs, {true, fused_softmax, first_trained, false, p.grads});
  return loss;
}

int GenericModel::Engine::backward(const cnnc_pass& p, const std::vector<const float*>& outs,
                                   const Backward& b) const {
  const std::vector<cnnc_layer>& layers = spec.layers;
  float* ws = static_cast<float*>(p.workspace);
  int cur = 0;
  for (size_t i = layers.size(); i-- > b.bottom;) {
    const cnnc_layer& l = layers[i];
    const bool softmax_left_out =
        b.linear_last && i + 1 == layers.size() && l.activation == CNNC_SOFTMAX;
    const bool need_dx = i > b.bottom || b.input_grad;
    float* dy = ws + grad_at[cur];
    float* dx = need_dx ? ws + grad_at[1 - cur] : nullptr;
    const float* x = i == 0 ? p.input : outs[i - 1];
    const float* w = l.weight_count ? p.params + l.weight_offset : nullptr;
    float* dw = b.grads && l.trainable && l.weight_count ? b.grads + l.weight_offset : nullptr;
    float* db = b.grads && l.trainable && l.bias_count ? b.grads + l.bias_offset : nullptr;
    // Layers that act elementwise work in place and leave the gradient where it is.
    bool swap = dx != nullptr;
    switch (l.kind) {
      case CNNC_CONV:
      case CNNC_DENSE:
        if (!softmax_left_out) activation_backward(l.activation, p.n, out_size(l), outs[i], dy, dy);
        if (l.kind == CNNC_CONV)
          conv_backward(l, p.n, x, w, dy, dx, dw, db, ws + col_at, ws + pack_at, bf16);
        else
          dense_backward(l, p.n, x, w, dy, dx, dw, db, ws + pack_at, bf16);
        break;
      case CNNC_MAXPOOL: maxpool_backward(l, p.n, x, dy, dx); break;
      case CNNC_AVGPOOL: avgpool_backward(l, p.n, dy, dx); break;
      case CNNC_FLATTEN: swap = false; break;
      case CNNC_DROPOUT:
        if (b.training)
          dropout_backward(l, p.n, {p.seed, p.epoch, p.sample_base, uint32_t(i)}, dy, dy);
        swap = false;
        break;
      case CNNC_ACTIVATION:
        if (!softmax_left_out) activation_backward(l.activation, p.n, out_size(l), outs[i], dy, dy);
        swap = false;
        break;
    }
    if (swap) cur = 1 - cur;
    if ((dw || db) && p.gradients_ready) p.gradients_ready(&p, static_cast<int32_t>(i));
  }
  return cur;
}

void GenericModel::Engine::input_gradient(const cnnc_pass& p, const int32_t* classes,
                                          float* grad) const {
  check(p);
  if (!classes || !grad) throw std::invalid_argument("input_gradient needs classes and grad");
  const int32_t o = model.output_size;
  for (int32_t i = 0; i < p.n; ++i)
    if (classes[i] < 0 || classes[i] >= o)
      throw std::invalid_argument("class " + std::to_string(classes[i]) + " of sample " +
                                  std::to_string(i) + " is not one of the " + std::to_string(o) +
                                  " outputs");
  // Inference mode (no dropout), the score before any final softmax.
  const std::vector<const float*> outs = run_forward(p, false, true);
  float* ws = static_cast<float*>(p.workspace);
  float* dy = ws + grad_at[0];
  std::fill(dy, dy + p.n * int64_t{o}, 0.0f);
  for (int32_t i = 0; i < p.n; ++i) dy[i * int64_t{o} + classes[i]] = 1.0f;
  const int at = backward(p, outs, {false, true, 0, true, nullptr});
  const int64_t size = int64_t{model.input_h} * model.input_w * model.input_c;
  std::memcpy(grad, ws + grad_at[at], p.n * size * sizeof(float));
}

void GenericModel::Engine::update(float* params, const float* grads, float* state,
                                  const cnnc_optimizer& opt, int64_t begin, int64_t end) const {
  if (opt.kind != CNNC_SGD && opt.kind != CNNC_ADAM)
    throw std::invalid_argument("optimizer kind " + std::to_string(opt.kind) +
                                " is not a cnnc_optimizer_kind");
  float* m = state;
  float* v = state + spec.param_count;
  for (const cnnc_layer& l : spec.layers) {
    if (!l.trainable) continue;
    for (auto [offset, n] :
         {std::pair{l.weight_offset, l.weight_count}, std::pair{l.bias_offset, l.bias_count}}) {
      const int64_t at = std::max(offset, begin), count = std::min(offset + n, end) - at;
      if (count <= 0) continue;
      if (opt.kind == CNNC_SGD)
        sgd_step(opt, count, params + at, grads + at, m + at);
      else
        adam_step(opt, count, params + at, grads + at, m + at, v + at);
    }
  }
}

GenericModel::GenericModel(ModelSpec spec, int32_t max_batch, bool bf16_products)
    : engine_(std::make_unique<Engine>(std::move(spec), max_batch, bf16_products)) {}
GenericModel::~GenericModel() = default;
GenericModel::GenericModel(GenericModel&&) noexcept = default;
GenericModel& GenericModel::operator=(GenericModel&&) noexcept = default;

const cnnc_model* GenericModel::abi() const {
  return &engine_->model;
}
const ModelSpec& GenericModel::spec() const {
  return engine_->spec;
}

void GenericModel::input_gradient(const cnnc_pass& pass, const int32_t* classes,
                                  float* grad) const {
  engine_->input_gradient(pass, classes, grad);
}

}  // namespace cnnc::rt
