// What the emitters share: the ISA's attributes, where a layer's buffers live in the workspace,
// the function comment, and blocks of items.
#include <fmt/format.h>

#include "emit.hpp"

namespace cnnc::codegen {

std::string EmitContext::target() const {
  switch (plan.isa) {
    case Isa::avx512: return "CNNC_AVX512";
    case Isa::avx2: return "CNNC_AVX2";
    case Isa::portable: return "CNNC_PORTABLE";
  }
  return "";
}

std::string ws(const Slot& s) {
  return "ws + " + s.name;
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

bool runs_backward(const LayerPlan& lp) {
  return lp.needs_dx || lp.layer->trainable();
}

void function_comment(EmitContext& c, const LayerPlan& lp, const std::string& pass,
                      const std::string& detail) {
  const dsl::Layer& l = *lp.layer;
  c.w.comment(fmt::format("{} {}: line {}: {}\n{} -> {}; {}", l.name, pass, l.line, l.statement,
                          l.in.str(), l.out.str(), detail));
}

void emit_blocks(EmitContext& c, const std::string& var, int64_t total, int64_t size,
                 const std::function<void(int64_t count)>& body) {
  int64_t full = total / size, tail = total % size;
  if (full > 1) {
    c.w.open("for (int {} = 0; {} < {}; {} += {})", var, var, full * size, var, size);
    body(size);
    c.w.close();
  } else if (full == 1) {
    c.w.open("");
    c.w.line("const int {} = 0;", var);
    body(size);
    c.w.close();
  }
  if (tail) {
    c.w.open("");
    c.w.line("const int {} = {};", var, full * size);
    body(tail);
    c.w.close();
  }
}

std::string variant_macro(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "CNNC_HAS_AVX512";
    case Isa::avx2: return "CNNC_HAS_AVX2";
    case Isa::portable: return "CNNC_HAS_PORTABLE";
  }
  return "0";
}

}  // namespace cnnc::codegen
