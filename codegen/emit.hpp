// What the emitters share: the context of one ISA variant and the names of its buffers, the
// comment every layer function carries, and the parts of a generated file in the order
// emit_model() writes them. Each emit_<kind>.cpp writes the functions of one layer kind for one
// block of L samples.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/abi_table.hpp"
#include "codegen/emit_model.hpp"
#include "codegen/loops.hpp"
#include "codegen/plan.hpp"
#include "codegen/writer.hpp"
#include "dsl/graph.hpp"

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

std::string ws(const Slot& s);       // "ws + conv1_y"
std::string weights(const Slot& s);  // "weights(ws) + conv2_w_pairs": prepared weights

// The preprocessor switch around one ISA's variant: CNNC_HAS_AVX512, ... (see emit_prelude).
std::string variant_macro(Isa isa);

// Whether a layer has a backward function: it passes a gradient on or has parameters to learn.
bool runs_backward(const LayerPlan& lp);

// The conv that runs the forward of this pool fused with its own (LayerPlan::pool_fused), or null.
const LayerPlan* fused_conv_before(const Plan& plan, const LayerPlan& pool);
// "conv1_maxpool1_forward" or, keeping each window's element for training, "..._training": the
// function of a conv fused with its pool.
std::string pooled_forward(const Plan& plan, const LayerPlan& conv, bool training);
// That function's FLOPs for one sample: the conv's forward and the pool's.
int64_t pooled_forward_flops(const Plan& plan, const LayerPlan& conv);

// The functions of a layer. backward is the whole backward pass of a block, the functions it
// calls included; conv and dense split out backward_data and backward_weights.
enum class Pass { forward, backward, backward_data, backward_weights };
const char* name_of(Pass pass);

// FLOPs of one call for one sample, as the front end counts them (2 per multiply-add, 1 per other
// operation), or, for dense backward_weights, for one row of the slice.
int64_t flops_of(const LayerPlan& lp, Pass pass);

// `static <attributes> void <layer>_<pass>(<parameters>) {`: the head of a layer function, most of
// which take the parameters and the workspace (params_and_ws).
void open_layer_function(EmitContext& c, const LayerPlan& lp, Pass pass,
                         std::string_view parameters);
inline constexpr std::string_view params_and_ws =
    "const float* __restrict params, float* __restrict ws";

// The comment above every layer function: its .cnn line, shapes and layout, its tile (what stays
// in registers, or how the work is cut) and its FLOPs per call.
void function_comment(EmitContext& c, const LayerPlan& lp, Pass pass, const std::string& layout,
                      const std::string& tile);

// Per layer kind. forward: y from x for one block. backward: the input gradient (when
// needs_dx) and this block's share of the parameter gradients.
void emit_conv(EmitContext& c, const LayerPlan& lp);
// conv, in emit_conv.cpp: the head of a forward function after its signature, w and b, and xp,
// the input as the products read it (padded; bf16's direct sums read it as channel pairs).
void emit_conv_forward_input(EmitContext& c, const LayerPlan& lp);
// conv by Winograd's F(2x2, 3x3) (LayerPlan::winograd, emit_winograd.cpp): its forward, or with
// pooled the conv and the max pool after it, training's keeping each window's element.
void emit_winograd_forward(EmitContext& c, const LayerPlan& lp, bool pooled, bool training);
// conv input gradient by the same (LayerPlan::winograd_dx).
void emit_winograd_backward_data(EmitContext& c, const LayerPlan& lp);
// One step of a register tile of filters x vectors over a reduction, the vectors x<i> loaded:
// each filter's value (bf16: a pair) broadcast from value_of(j) as d<j> and multiplied into
// acc_k<j>_v<i>. The weight gradients by taps and by Winograd.
void emit_broadcast_products(EmitContext& c, bool bf16, int64_t filters, int64_t vectors,
                             const std::function<std::string(int64_t j)>& value_of);
// conv weight gradient by F(3x3, 2x2) (LayerPlan::winograd_dw): the body of backward_weights
// after x is transposed to xs, one sample after another, adding into dw [K][3][3][C].
void emit_winograd_backward_weights(EmitContext& c, const LayerPlan& lp);
// A conv fused with a max pool: the maximum of one window's conv outputs (the names of their
// vectors, in (r, s) order), relu applied first where the conv has it, stored at
// yo + at_output; training also stores the element it kept at ko + at_output (`m<suffix>` and
// `kept<suffix>` hold them).
void emit_window_max(EmitContext& c, bool training, bool relu,
                     const std::vector<std::string>& outputs, const std::string& suffix,
                     const Expr& at_output);
void emit_dense(EmitContext& c, const LayerPlan& lp);
void emit_pool(EmitContext& c, const LayerPlan& lp);
void emit_elementwise(EmitContext& c, const LayerPlan& lp);  // dropout, activation layers
// sigmoid or tanh over a buffer in place, value by value; nothing for other activations (relu is
// fused into the vector code, softmax into the loss).
void emit_activation_loop(EmitContext& c, const dsl::Layer& l, const std::string& buffer,
                          int64_t values);
// relu's dy * f'(z) for one vector, as an expression of the vectors y (the output) and dy: dy
// where y is above 0.
std::string relu_backward(const std::string& y, const std::string& dy);
// dy *= f'(z), read off the output y; nothing for linear (and softmax, which the loss handles).
void emit_activation_backward_loop(EmitContext& c, const dsl::Layer& l, const std::string& y,
                                   const std::string& dy, int64_t values);
// Whether emit_activation_backward_loop writes anything: relu, sigmoid and tanh.
bool has_derivative(const dsl::Layer& l);

// The parts of the file, in order (emit_model.cpp). The prelude: the banner, includes and macros.
void emit_prelude(Writer& w, const dsl::Graph& graph, const GenOptions& options);
// The ABI's description of every layer, `layer_table`.
void emit_layer_table(Writer& w, const rt::ModelSpec& abi);
// Per ISA, after the layer functions: load_block, the slice's start and end, the output stage,
// train and forward, and the kernel table.
void emit_drivers(EmitContext& c);
// Whether a layer has <layer>_step_weights (a trainable dense layer), and whether the variant
// has any, and so cnnc_model::dense_weights.
bool has_step_weights(const LayerPlan& lp);
bool has_dense_weights(const Plan& plan);
// cnnc_model::update and ::update_range of the variant, in its vectors.
void emit_update(EmitContext& c);
// cnnc_<model>_create, _destroy and _kernels: the C functions that pick a variant at run time.
void emit_entry_points(Writer& w, const dsl::Graph& graph, const rt::ModelSpec& abi,
                       const GenOptions& options);

}  // namespace cnnc::codegen
