// Layers that act on each value alone: flatten (a copy: [H][W][C][L] already is [H*W*C][L]),
// dropout, and activations, whether a layer of their own or fused after conv and dense.
//
// relu is vector code; sigmoid and tanh run per value through <cmath>, and dropout hashes per
// value with the ABI's counter-based functions so that every engine drops the same values.
#include <fmt/format.h>

#include "emit.hpp"

namespace cnnc::codegen {

void emit_activation_loop(EmitContext& c, const dsl::Layer& l, const std::string& buffer,
                          int64_t values) {
  if (l.activation == dsl::Activation::sigmoid)
    c.w.line("for (int e = 0; e < {}; ++e) {}[e] = 1.0f / (1.0f + std::exp(-{}[e]));", values,
             buffer, buffer);
  else if (l.activation == dsl::Activation::tanh)
    c.w.line("for (int e = 0; e < {}; ++e) {}[e] = std::tanh({}[e]);", values, buffer, buffer);
}

// dz = dy * f'(z), written over dy, from the layer's output y = f(z). softmax is handled where
// the loss is (emit_model.cpp), so only relu, sigmoid and tanh appear here.
void emit_activation_backward_loop(EmitContext& c, const dsl::Layer& l, const std::string& y,
                                   const std::string& dy, int64_t values) {
  int64_t L = c.L();
  switch (l.activation) {
    case dsl::Activation::relu:
      c.w.line(
          "for (int e = 0; e < {}; e += {}) vstore({} + e, vand(vgt(vload({} + e), vzero()), "
          "vload({} + e)));",
          values, L, dy, y, dy);
      break;
    case dsl::Activation::sigmoid:
      c.w.line("for (int e = 0; e < {}; ++e) {}[e] *= {}[e] * (1.0f - {}[e]);", values, dy, y, y);
      break;
    case dsl::Activation::tanh:
      c.w.line("for (int e = 0; e < {}; ++e) {}[e] *= 1.0f - {}[e] * {}[e];", values, dy, y, y);
      break;
    case dsl::Activation::linear:
    case dsl::Activation::softmax: break;
  }
}

namespace {

// The dropout mask of one block applied from one buffer to another: the forward pass applies
// it to x, the backward pass to dy. The lanes' keys are computed once; the hash then runs on
// all L lanes at once (vkeep), bit for bit the ABI's cnnc_dropout_bits.
void emit_dropout_apply(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L();
  c.w.comment(
      fmt::format("{}'s mask on one block: to = from * scale where kept, else 0; [{}][L] values.",
                  l.name, l.out.size()));
  c.w.function(
      "static {} void {}_apply(const float* __restrict from, float* __restrict to, const "
      "cnnc_pass* pass, int first)",
      c.kernel(), l.name);
  c.w.line("alignas(64) uint32_t keys[{}];", L);
  c.w.line(
      "for (int lane = 0; lane < {}; ++lane) keys[lane] = cnnc_dropout_key(pass->seed, "
      "pass->epoch, pass->sample_base + first + lane, {});",
      L, lp.index);
  c.w.line("const uint32_t threshold = cnnc_dropout_threshold({});",
           float_literal(static_cast<float>(l.rate)));
  c.w.line("const V scale = vset(1.0f / (1.0f - {}));", float_literal(static_cast<float>(l.rate)));
  c.w.line(
      "for (int e = 0; e < {}; ++e) vstore(to + e * {}, vand(vkeep(keys, e, threshold), "
      "vmul(vload(from + e * {}), scale)));",
      l.out.size(), L, L);
  c.w.close();
  c.w.blank();
}

}  // namespace

void emit_elementwise(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), n = l.out.size() * L;
  bool dropout = l.kind == dsl::LayerKind::dropout;
  if (dropout) emit_dropout_apply(c, lp);
  function_comment(c, lp, "forward",
                   fmt::format("x [{}][L] -> y [{}][L]", l.in.size(), l.out.size()));
  c.w.function("static {} void {}_forward(float* __restrict ws{})", c.kernel(), l.name,
               dropout ? ", const cnnc_pass* pass, int first, bool training" : "");
  c.w.line("const float* x = {};", c.input_of(lp.index));
  c.w.line("float* y = {};", c.output_of(lp.index));
  const std::string x = "x", y = "y";
  if (dropout) {
    // The kept values are scaled by 1 / (1 - rate) in training, so inference is a plain copy.
    c.w.open("if (!training)");
    c.w.line("std::memcpy({}, {}, {} * sizeof(float));", y, x, n);
    c.w.line("return;");
    c.w.close();
    c.w.line("{}_apply(x, y, pass, first);", l.name);
  } else {
    c.w.line("std::memcpy({}, {}, {} * sizeof(float));", y, x, n);
    if (l.kind == dsl::LayerKind::activation && l.activation == dsl::Activation::relu)
      c.w.line("for (int e = 0; e < {}; e += {}) vstore({} + e, vmax(vload({} + e), vzero()));", n,
               L, y, y);
    else if (l.kind == dsl::LayerKind::activation)
      emit_activation_loop(c, l, y, n);
  }
  c.w.close();
  c.w.blank();
  if (!lp.needs_dx) return;  // first layer: no gradient to pass on, no parameters

  function_comment(c, lp, "backward",
                   fmt::format("dy [{}][L] -> dx [{}][L]", l.out.size(), l.in.size()));
  c.w.function("static {} void {}_backward(float* __restrict ws{})", c.kernel(), l.name,
               dropout ? ", const cnnc_pass* pass, int first" : "");
  c.w.line("float* dy = {};", c.grad_of(lp.index));
  c.w.line("float* dx = {};", c.grad_of(lp.index - 1));
  const std::string dy = "dy", dx = "dx";
  if (l.kind == dsl::LayerKind::activation) c.w.line("const float* y = {};", c.output_of(lp.index));
  if (dropout) {
    c.w.line("{}_apply(dy, dx, pass, first);", l.name);
  } else {
    if (l.kind == dsl::LayerKind::activation) emit_activation_backward_loop(c, l, y, dy, n);
    c.w.line("std::memcpy({}, {}, {} * sizeof(float));", dx, dy, n);
  }
  c.w.close();
  c.w.blank();
}

}  // namespace cnnc::codegen
