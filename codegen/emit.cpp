// What the emitters share: the ISA's attributes, where a layer's buffers live in the workspace,
// and the comment and FLOPs of every layer function.
#include "codegen/emit.hpp"

#include <fmt/format.h>

namespace cnnc::codegen {

std::string EmitContext::target() const {
  switch (plan.isa) {
    case Isa::avx512: return "CNNC_AVX512";
    case Isa::avx512_bf16: return "CNNC_AVX512_BF16";
    case Isa::avx2: return "CNNC_AVX2";
    case Isa::portable: return "CNNC_PORTABLE";
  }
  return "";
}

std::string ws(const Slot& s) {
  return "ws + " + s.name;
}

std::string weights(const Slot& s) {
  return "weights(ws) + " + s.name;
}

std::string EmitContext::output_of(int i) const {
  return ws(plan.layers[static_cast<size_t>(i)].out);
}
std::string EmitContext::input_of(int i) const {
  return i == 0 ? ws(plan.input) : output_of(i - 1);
}
std::string EmitContext::grad_of(int i) const {
  return ws(plan.layers[static_cast<size_t>(i)].dy);
}

std::string variant_macro(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "CNNC_HAS_AVX512";
    case Isa::avx512_bf16: return "CNNC_HAS_AVX512_BF16";
    case Isa::avx2: return "CNNC_HAS_AVX2";
    case Isa::portable: return "CNNC_HAS_PORTABLE";
  }
  return "0";
}

bool runs_backward(const LayerPlan& lp) {
  return !lp.view && (lp.needs_dx || lp.layer->trainable());
}

const LayerPlan* fused_conv_before(const Plan& plan, const LayerPlan& pool) {
  const LayerPlan* conv = pool.index > 0 ? &plan.layers[pool.index - 1] : nullptr;
  return conv && conv->pool_fused ? conv : nullptr;
}

std::string pooled_forward(const Plan& plan, const LayerPlan& conv, bool training) {
  return fmt::format("{}_{}_forward{}", conv.layer->name, plan.layers[conv.index + 1].layer->name,
                     training && conv.pool_kept.floats ? "_training" : "");
}

int64_t pooled_forward_flops(const Plan& plan, const LayerPlan& conv) {
  return flops_of(conv, Pass::forward) + flops_of(plan.layers[conv.index + 1], Pass::forward);
}

const char* name_of(Pass pass) {
  switch (pass) {
    case Pass::forward: return "forward";
    case Pass::backward: return "backward";
    case Pass::backward_data: return "backward_data";
    case Pass::backward_weights: return "backward_weights";
  }
  return "?";
}

int64_t flops_of(const LayerPlan& lp, Pass pass) {
  const dsl::Layer& l = *lp.layer;
  bool conv = l.kind == dsl::LayerKind::conv, dense = l.kind == dsl::LayerKind::dense;
  if (pass == Pass::forward) return l.forward_flops;
  // Pooling and value-wise layers: their backward is the input gradient alone.
  if (!conv && !dense) return l.training_flops - l.forward_flops;
  int64_t product = 2 * l.weight_count * (conv ? l.out.h * l.out.w : 1);  // 2 per multiply-add
  if (pass != Pass::backward) return product;
  // The whole backward pass of a block: f'(z) and the bias (what forward adds per output), the
  // input gradient, and for conv the weight gradient (dense leaves it to the slice's end).
  int64_t per_output = l.forward_flops - product;
  return per_output + (lp.needs_dx ? product : 0) + (conv && l.trainable() ? product : 0);
}

void open_layer_function(EmitContext& c, const LayerPlan& lp, Pass pass,
                         std::string_view parameters) {
  c.w.function("static {} void {}_{}({})", c.kernel(), lp.layer->name, name_of(pass), parameters);
}

void function_comment(EmitContext& c, const LayerPlan& lp, Pass pass, const std::string& layout,
                      const std::string& tile) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), flops = flops_of(lp, pass);
  std::string cost;
  if (pass == Pass::backward_weights && l.kind == dsl::LayerKind::dense) {
    int64_t rows = (c.plan.max_batch + L - 1) / L * L;
    cost = fmt::format("{} per row of the slice, {} for a full slice of {}",
                       dsl::with_thousands(flops), dsl::with_thousands(flops * rows),
                       counted(rows, "row"));
  } else {
    bool calls = pass == Pass::backward &&
                 (l.kind == dsl::LayerKind::conv || l.kind == dsl::LayerKind::dense);
    cost = fmt::format("{} per block of {}{}", dsl::with_thousands(flops * L), counted(L, "sample"),
                       calls ? ", the functions it calls included" : "");
  }
  c.w.comment(fmt::format("{} {}: line {}: {}\n{} -> {}; {}\nTile: {}.\nFLOPs: {}.", l.name,
                          name_of(pass), l.line, l.statement, l.in.str(), l.out.str(), layout, tile,
                          cost));
}

}  // namespace cnnc::codegen
