// The whole generated file, in order: the prelude, each ISA's namespace (plan, vector helpers,
// layer functions, drivers, the optimizer step) and the C entry points.
#include "codegen/emit_model.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "codegen/emit.hpp"
#include "codegen/isa_helpers.hpp"

namespace cnnc::codegen {

namespace {

// Text that generated code carries verbatim, line by line (so that the writer counts lines).
void emit_lines(Writer& w, std::string_view text) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    w.line("{}", text.substr(start, end - start));
    start = end + 1;
  }
}

// One named offset per region, aligned in columns, each with what it holds.
void emit_offsets(Writer& w, const std::vector<Slot>& regions) {
  size_t name_width = 0, offset_width = 0;
  for (const Slot& s : regions) {
    name_width = std::max(name_width, s.name.size());
    offset_width = std::max(offset_width, std::to_string(s.offset).size());
  }
  for (const Slot& s : regions)
    w.line("static const int64_t {:<{}} = {:<{}}  // {}", s.name, name_width,
           fmt::format("{};", s.offset), offset_width + 1, s.holds);
  w.blank();
}

// The workspace of one call as named offsets: every region the plan laid out, so that code reads
// `ws + conv1_y`, and the reader finds here what it holds. bf16 also lays out its prepared
// weights so.
void emit_workspace(Writer& w, const Plan& plan) {
  w.comment(fmt::format(
      "The workspace of one call, for slices of up to {}: where each region starts, in floats.\n"
      "The output gradients (_dy) take two buffers in turns: a layer writes its input gradient,\n"
      "the _dy of the layer before it, into the buffer it does not read.",
      counted(plan.max_batch, "sample")));
  w.line("static const int64_t workspace_floats = {};", plan.workspace_floats);
  emit_offsets(w, plan.regions);
  if (plan.weight_regions.empty()) return;
  w.comment(
      "The weights as the products read them, prepared once per step for every slice\n"
      "(cnnc_model::prepare) or by a call for itself: where each starts, in 32-bit words (bf16\n"
      "pairs or floats).");
  w.line("static const int64_t prepared_floats = {};", plan.prepared_floats);
  emit_offsets(w, plan.weight_regions);
  w.comment("The prepared weights this call reads, from weights_at.");
  w.function("static inline const uint32_t* weights(const float* ws)");
  w.line("const uint32_t* at;");
  w.line("std::memcpy(&at, ws + weights_at, sizeof at);");
  w.line("return at;");
  w.close();
  w.blank();
}

// One ISA's complete engine in its own namespace, compiled only when the variant is on.
void emit_isa(Writer& w, const dsl::Graph& g, Isa isa, int max_batch) {
  Plan plan = plan_model(g, isa, max_batch);
  EmitContext c{g, plan, w};
  w.line("#if {}", variant_macro(isa));
  w.open_namespace(name_of(isa));
  // The bf16 variant is AVX-512 with pair products: the AVX-512 helpers (whose target its
  // functions include), then its own.
  if (isa == Isa::avx512_bf16) emit_lines(w, isa_helpers(Isa::avx512));
  emit_lines(w, isa_helpers(isa));
  w.blank();
  emit_workspace(w, plan);
  for (const LayerPlan& lp : plan.layers) {
    if (lp.view) continue;
    switch (lp.layer->kind) {
      case dsl::LayerKind::conv: emit_conv(c, lp); break;
      case dsl::LayerKind::dense: emit_dense(c, lp); break;
      case dsl::LayerKind::maxpool:
      case dsl::LayerKind::avgpool: emit_pool(c, lp); break;
      default: emit_elementwise(c, lp); break;
    }
  }
  emit_drivers(c);
  emit_update(c);
  w.close_namespace(name_of(isa));
  w.line("#endif");
  w.blank();
}

}  // namespace

Generated emit_model(const dsl::Graph& g, const GenOptions& o) {
  Writer w;
  rt::ModelSpec abi = lower_to_abi(g);
  emit_prelude(w, g, o);
  w.open_namespace("cnnc_gen_" + g.name);
  w.blank();
  emit_layer_table(w, abi);
  for (Isa isa : isas_of(g)) emit_isa(w, g, isa, o.max_batch);
  w.close_namespace("cnnc_gen_" + g.name);
  w.blank();
  emit_entry_points(w, g, abi, o);
  return {w.str(), "", w.lines(), w.functions()};
}

}  // namespace cnnc::codegen
