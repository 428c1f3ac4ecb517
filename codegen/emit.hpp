// What the emitters share: the context of one ISA variant and the names of its buffers.
// Each emit_<kind>.cpp writes the functions of one layer kind for one block of L samples.
#pragma once

#include <functional>
#include <string>

#include "dsl/graph.hpp"
#include "plan.hpp"
#include "writer.hpp"

namespace cnnc::codegen {

struct EmitContext {
  const dsl::Graph& graph;
  const Plan& plan;
  Writer& w;
  int64_t L() const { return plan.lanes; }
  // The attribute that compiles a function for this ISA: CNNC_AVX2, CNNC_AVX512, CNNC_PORTABLE.
  std::string target() const;
  // The attributes of a layer function: target() and noinline, so that each layer stays one
  // function in profiles and the drivers stay small.
  std::string kernel() const { return target() + " CNNC_NOINLINE"; }
  // Where layer i reads its input and writes its output, as "ws + <offset>".
  std::string input_of(int i) const;
  std::string output_of(int i) const;
  // Where the gradient of layer i's output lives (ping-pong between two buffers), and so where
  // layer i writes the gradient of its input: grad_of(i - 1).
  std::string grad_of(int i) const;
};

std::string ws(const Slot& s);  // "ws + 1234"

// Whether a layer has a backward function: it passes a gradient on or has parameters to learn.
bool runs_backward(const LayerPlan& lp);

// Items [0, total) `size` at a time: a loop over the full blocks, then the rest, each block
// with its first item in the int variable `var`; body(count) writes one block of count items.
void emit_blocks(EmitContext& c, const std::string& var, int64_t total, int64_t size,
                 const std::function<void(int64_t count)>& body);

// One comment block per function: the .cnn line, shapes, layout, tiling and FLOPs.
void function_comment(EmitContext& c, const LayerPlan& lp, const std::string& pass,
                      const std::string& detail);

// Per layer kind. forward: y from x for one block. backward: the input gradient (when
// needs_dx) and this block's share of the parameter gradients.
void emit_conv(EmitContext& c, const LayerPlan& lp);
void emit_dense(EmitContext& c, const LayerPlan& lp);
void emit_pool(EmitContext& c, const LayerPlan& lp);
void emit_elementwise(EmitContext& c, const LayerPlan& lp);  // flatten, dropout, activation layers
// The scalar activation of conv/dense outputs that are not relu (sigmoid, tanh), in place.
void emit_activation_loop(EmitContext& c, const dsl::Layer& l, const std::string& buffer,
                          int64_t values);
void emit_activation_backward_loop(EmitContext& c, const dsl::Layer& l, const std::string& y,
                                   const std::string& dy, int64_t values);

}  // namespace cnnc::codegen
