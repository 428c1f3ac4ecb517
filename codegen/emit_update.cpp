// The optimizer step of one ISA variant (cnnc_model::update and ::update_range).
#include <fmt/format.h>

#include "codegen/emit.hpp"

namespace cnnc::codegen {

namespace {

// The step of L parameters, in the variant's vectors: SGD with momentum or Adam, written as the
// generic engine's (torch.optim's) scalar loops, every product and sum rounded on its own in
// the same order, so that each lane gives the scalar loop's bits.
void emit_optimizer_lanes(EmitContext& c) {
  Writer& w = c.w;
  w.comment(
      "The optimizer's settings in vectors, and whether it is SGD (else Adam); step_size and "
      "sqrt_correction2 are Adam's bias corrections.");
  w.open("struct OptimizerLanes");
  w.line("bool sgd;");
  w.line(
      "V lr, weight_decay, momentum, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, "
      "sqrt_correction2, eps;");
  w.close(";");
  w.blank();
  w.comment(
      fmt::format("One step of {} at w, with their gradients dw and the optimizer's state m "
                  "(momentum, or Adam's first moment) and v (Adam's second).",
                  counted(c.L(), "parameter")));
  w.function(
      "static {} inline void optimizer_lanes(float* w, const float* dw, float* m, float* v, const "
      "OptimizerLanes& o)",
      c.target());
  w.line("const V grad = vadd(vloadu(dw), vmul(o.weight_decay, vloadu(w)));");
  w.open("if (o.sgd)");
  w.line("const V mj = vadd(vmul(o.momentum, vloadu(m)), grad);");
  w.line("vstoreu(m, mj);");
  w.line("vstoreu(w, vsub(vloadu(w), vmul(o.lr, mj)));");
  w.line("return;");
  w.close();
  w.line("const V mj = vadd(vmul(o.beta1, vloadu(m)), vmul(o.one_minus_beta1, grad));");
  w.line("const V vj = vadd(vmul(o.beta2, vloadu(v)), vmul(vmul(o.one_minus_beta2, grad), grad));");
  w.line("vstoreu(m, mj);");
  w.line("vstoreu(v, vj);");
  w.line("const V denom = vadd(vdiv(vsqrt(vj), o.sqrt_correction2), o.eps);");
  w.line("vstoreu(w, vsub(vloadu(w), vdiv(vmul(o.step_size, mj), denom)));");
  w.close();
  w.blank();
}

}  // namespace

// The optimizer step over the trainable layers' ranges. update_range clips every range to the
// caller's, so that threads can share a step; update is update_range over everything. In the
// variant's widest vectors: when the other core has read the parameters (as every step's
// forward does), each store waits for that core to drop the line, and only a store that fills
// the line keeps enough of those waits in flight (the scalar loop took 3-4x as long). Where
// PREFETCHW is (has_prefetchw: the AVX-512 variants), each step also asks for the line
// write_ahead floats ahead, so that many are on their way at once: lenet5's update on 2 threads
// took 17-21 us instead of 31-35. Only while that float is in the range, so the prefetch takes
// no line the loop's own stores would not.
void emit_update(EmitContext& c) {
  constexpr int64_t write_ahead = 256;  // 16 lines of 64 bytes
  Writer& w = c.w;
  const dsl::Graph& g = c.graph;
  const int64_t L = c.L();
  std::vector<std::pair<int64_t, int64_t>> ranges;  // [first, end)
  for (const dsl::Layer& l : g.layers)
    if (l.trainable()) {
      if (l.weight_count) ranges.push_back({l.weight_offset, l.weight_offset + l.weight_count});
      if (l.bias_count) ranges.push_back({l.bias_offset, l.bias_offset + l.bias_count});
    }
  if (!ranges.empty()) emit_optimizer_lanes(c);
  w.comment(
      "cnnc_model::update_range: SGD with momentum or Adam (as torch.optim), trainable ranges "
      "only, clipped to [begin, end); weight decay is L2.");
  w.function(
      "static {} void update_range(const cnnc_model* model, float* params, const float* grads, "
      "float* state, const cnnc_optimizer* opt, int64_t begin, int64_t end)",
      c.target());
  w.line("(void)model;");
  if (ranges.empty()) {
    w.line("(void)params, (void)grads, (void)state, (void)opt, (void)begin, (void)end;");
  } else {
    w.line("static const int64_t ranges[{}][2] = {{", ranges.size());
    for (auto [first, end] : ranges) w.line("    {{{}, {}}},", first, end);
    w.line("}};");
    w.line("float* m = state;");
    w.line("float* v = state + {};", g.param_floats);
    w.line("float step_size = 0.0f, sqrt_correction2 = 0.0f;");
    w.open("if (opt->kind != CNNC_SGD)");
    w.line("const double t = (double)opt->step;");
    w.line("step_size = (float)((double)opt->lr / (1.0 - std::pow((double)opt->beta1, t)));");
    w.line("sqrt_correction2 = (float)std::sqrt(1.0 - std::pow((double)opt->beta2, t));");
    w.close();
    w.line("const OptimizerLanes o = {{");
    w.line("    opt->kind == CNNC_SGD, vset(opt->lr), vset(opt->weight_decay),");
    w.line("    vset(opt->momentum), vset(opt->beta1), vset(1.0f - opt->beta1),");
    w.line("    vset(opt->beta2), vset(1.0f - opt->beta2), vset(step_size),");
    w.line("    vset(sqrt_correction2), vset(opt->eps)}};");
    w.open("for (const auto& range : ranges)");
    w.line("const int64_t first = range[0] > begin ? range[0] : begin;");
    w.line("const int64_t last = range[1] < end ? range[1] : end;");
    w.line("int64_t j = first;");
    w.open("for (; j + {} <= last; j += {})", L, L);
    if (has_prefetchw(c.plan.isa))
      w.line("if (j + {} < last) __builtin_prefetch(params + j + {}, 1, 3);", write_ahead,
             write_ahead);
    w.line("optimizer_lanes(params + j, grads + j, m + j, v + j, o);");
    w.close();
    if (L > 1) {
      w.comment(
          "The range's last parameters, fewer than a vector, through a padded copy: the "
          "parameters beyond\nthe range may be another thread's or a frozen layer's.");
      w.open("if (j < last)");
      w.line("const size_t bytes = (size_t)(last - j) * sizeof(float);");
      w.line("float w_tail[{}] = {{}}, dw_tail[{}] = {{}}, m_tail[{}] = {{}}, v_tail[{}] = {{}};",
             L, L, L, L);
      w.line("std::memcpy(w_tail, params + j, bytes);");
      w.line("std::memcpy(dw_tail, grads + j, bytes);");
      w.line("std::memcpy(m_tail, m + j, bytes);");
      w.line("if (!o.sgd) std::memcpy(v_tail, v + j, bytes);");
      w.line("optimizer_lanes(w_tail, dw_tail, m_tail, v_tail, o);");
      w.line("std::memcpy(params + j, w_tail, bytes);");
      w.line("std::memcpy(m + j, m_tail, bytes);");
      w.line("if (!o.sgd) std::memcpy(v + j, v_tail, bytes);");
      w.close();
    }
    w.close();
  }
  w.close();
  w.blank();
  w.comment("cnnc_model::update: one step over every parameter.");
  w.function(
      "static {} void update(const cnnc_model* model, float* params, const float* grads, float* "
      "state, const cnnc_optimizer* opt)",
      c.target());
  w.line("update_range(model, params, grads, state, opt, 0, {});", g.param_floats);
  w.close();
  w.blank();
}

}  // namespace cnnc::codegen
