// What the emitters share: the context of one ISA variant and the names of its buffers, and the
// parts of a generated file in the order emit_model() writes them. Each emit_<kind>.cpp writes
// the functions of one layer kind for one block of L samples.
#pragma once

#include <functional>
#include <string>

#include "abi_table.hpp"
#include "dsl/graph.hpp"
#include "emit_model.hpp"
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
  // Where layer i reads its input and writes its output, as "ws + conv1_y".
  std::string input_of(int i) const;
  std::string output_of(int i) const;
  // Where the gradient of layer i's output lives, and so where layer i writes the gradient of
  // its input: grad_of(i - 1).
  std::string grad_of(int i) const;
};

std::string ws(const Slot& s);  // "ws + conv1_y"

// The preprocessor switch around one ISA's variant: CNNC_HAS_AVX512, ... (see emit_prelude).
std::string variant_macro(Isa isa);

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

// The parts of the file, in order (emit_model.cpp). The prelude: the banner, includes and macros.
void emit_prelude(Writer& w, const dsl::Graph& graph, const GenOptions& options);
// The ABI's description of every layer, `layer_table`.
void emit_layer_table(Writer& w, const AbiModel& abi);
// Per ISA, after the layer functions: load_block, the slice's start and end, the output stage,
// train and forward, and the kernel table.
void emit_drivers(EmitContext& c);
// cnnc_model::update, shared by every variant.
void emit_update(Writer& w, const dsl::Graph& graph);
// cnnc_<model>_create, _destroy and _kernels: the C functions that pick a variant at run time.
void emit_entry_points(Writer& w, const dsl::Graph& graph, const AbiModel& abi,
                       const GenOptions& options);

}  // namespace cnnc::codegen
