// Layers that act on each value alone: dropout, and activations, whether a layer of their own or
// fused after conv and dense. (flatten is a view of its input and has no functions: plan.hpp.)
//
// relu is vector code; sigmoid and tanh run per value through <cmath>, and dropout hashes per
// value with the ABI's counter-based functions so that every engine drops the same values.
#include <fmt/format.h>

#include "codegen/emit.hpp"

namespace cnnc::codegen {

void emit_activation_loop(EmitContext& c, const dsl::Layer& l, const std::string& buffer,
                          int64_t values) {
  if (l.activation != dsl::Activation::sigmoid && l.activation != dsl::Activation::tanh) return;
  emit_loop_line(c.w, "", "e", values, [&](const Expr& e) {
    std::string v = fmt::format("{}[{}]", buffer, e);
    return l.activation == dsl::Activation::sigmoid
               ? fmt::format("{} = 1.0f / (1.0f + std::exp(-{}));", v, v)
               : fmt::format("{} = std::tanh({});", v, v);
  });
}

bool has_derivative(const dsl::Layer& l) {
  return l.activation == dsl::Activation::relu || l.activation == dsl::Activation::sigmoid ||
         l.activation == dsl::Activation::tanh;
}

std::string relu_backward(const std::string& y, const std::string& dy) {
  return fmt::format("vand(vgt({}, vzero()), {})", y, dy);
}

// dz = dy * f'(z), written over dy, from the layer's output y = f(z). softmax is handled where
// the loss is (emit_drivers.cpp), so only relu, sigmoid and tanh appear here.
void emit_activation_backward_loop(EmitContext& c, const dsl::Layer& l, const std::string& y,
                                   const std::string& dy, int64_t values) {
  int64_t L = c.L();
  switch (l.activation) {
    case dsl::Activation::relu:
      emit_loop_line(
          c.w, "", "e", values / L,
          [&](const Expr& e) {
            return fmt::format("vstore({}, {});", at(dy, e),
                               relu_backward(fmt::format("vload({})", at(y, e)),
                                             fmt::format("vload({})", at(dy, e))));
          },
          0, L);
      break;
    case dsl::Activation::sigmoid:
      emit_loop_line(c.w, "", "e", values, [&](const Expr& e) {
        return fmt::format("{}[{}] *= {}[{}] * (1.0f - {}[{}]);", dy, e, y, e, y, e);
      });
      break;
    case dsl::Activation::tanh:
      emit_loop_line(c.w, "", "e", values, [&](const Expr& e) {
        return fmt::format("{}[{}] *= 1.0f - {}[{}] * {}[{}];", dy, e, y, e, y, e);
      });
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
  c.w.comment(fmt::format(
      "{}'s mask on one block: to = from * scale where kept, else 0; [{}][L] values.\nTile: one "
      "vector at a time, the lanes' keys hashed once.\nFLOPs: {} per block of {}.",
      l.name, l.out.size(), dsl::with_thousands(flops_of(lp, Pass::forward) * L),
      counted(L, "sample")));
  c.w.function(
      "static {} void {}_apply(const float* __restrict from, float* __restrict to, const "
      "cnnc_pass* pass, int first)",
      c.kernel(), l.name);
  c.w.line("alignas(64) uint32_t keys[{}];", L);
  const Expr sample = Expr::var("pass->sample_base") + Expr::var("first");
  emit_loop_line(c.w, "", "lane", L, [&](const Expr& lane) {
    return fmt::format("keys[{}] = cnnc_dropout_key(pass->seed, pass->epoch, {}, {});", lane,
                       sample + lane, lp.index);
  });
  c.w.line("const uint32_t threshold = cnnc_dropout_threshold({});",
           float_literal(static_cast<float>(l.rate)));
  c.w.line("const V scale = vset(1.0f / (1.0f - {}));", float_literal(static_cast<float>(l.rate)));
  emit_loop_line(c.w, "", "e", l.out.size(), [&](const Expr& e) {
    return fmt::format("vstore({}, vand(vkeep(keys, {}, threshold), vmul(vload({}), scale)));",
                       at("to", e * L), e, at("from", e * L));
  });
  c.w.close();
  c.w.blank();
}

}  // namespace

void emit_elementwise(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), n = l.out.size() * L;
  bool dropout = l.kind == dsl::LayerKind::dropout;
  if (dropout) emit_dropout_apply(c, lp);
  const char* tile = "one vector (a value of every sample) at a time";
  function_comment(c, lp, Pass::forward,
                   fmt::format("x [{}][L] -> y [{}][L]", l.in.size(), l.out.size()), tile);
  open_layer_function(c, lp, Pass::forward,
                      dropout
                          ? "float* __restrict ws, const cnnc_pass* pass, int first, bool training"
                          : "float* __restrict ws");
  c.w.line("const float* x = {};", c.input_of(lp.index));
  c.w.line("float* y = {};", c.output_of(lp.index));
  if (dropout) {
    // The kept values are scaled by 1 / (1 - rate) in training, so inference is a plain copy.
    c.w.open("if (!training)");
    c.w.line("std::memcpy(y, x, {} * sizeof(float));", n);
    c.w.line("return;");
    c.w.close();
    c.w.line("{}_apply(x, y, pass, first);", l.name);
  } else {
    c.w.line("std::memcpy(y, x, {} * sizeof(float));", n);
    // An activation layer: relu as vector code here, sigmoid and tanh value by value.
    if (l.activation == dsl::Activation::relu)
      emit_loop_line(
          c.w, "", "e", n / L,
          [&](const Expr& e) {
            return fmt::format("vstore({}, vmax(vload({}), vzero()));", at("y", e), at("y", e));
          },
          0, L);
    else
      emit_activation_loop(c, l, "y", n);
  }
  c.w.close();
  c.w.blank();
  if (!lp.needs_dx) return;  // first layer: no gradient to pass on, no parameters

  function_comment(c, lp, Pass::backward,
                   fmt::format("dy [{}][L] -> dx [{}][L]", l.out.size(), l.in.size()), tile);
  open_layer_function(
      c, lp, Pass::backward,
      dropout ? "float* __restrict ws, const cnnc_pass* pass, int first" : "float* __restrict ws");
  c.w.line("float* dy = {};", c.grad_of(lp.index));
  c.w.line("float* dx = {};", c.grad_of(lp.index - 1));
  if (dropout) {
    c.w.line("{}_apply(dy, dx, pass, first);", l.name);
  } else {
    if (has_derivative(l)) {
      c.w.line("const float* y = {};", c.output_of(lp.index));
      emit_activation_backward_loop(c, l, "y", "dy", n);
    }
    c.w.line("std::memcpy(dx, dy, {} * sizeof(float));", n);
  }
  c.w.close();
  c.w.blank();
}

}  // namespace cnnc::codegen
