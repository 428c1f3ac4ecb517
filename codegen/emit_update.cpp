// The optimizer step of a generated file (cnnc_model::update and ::update_range), shared by its
// ISA variants.
#include "codegen/emit.hpp"

namespace cnnc::codegen {

// The optimizer step over the trainable layers' ranges, written as the generic engine's
// (torch.optim's) SGD and Adam so that both engines agree. update_range clips every range to
// the caller's, so that threads can share a step; update is update_range over everything.
void emit_update(Writer& w, const dsl::Graph& g) {
  w.comment(
      "cnnc_model::update_range: SGD with momentum or Adam (as torch.optim), trainable ranges "
      "only, clipped to [begin, end); weight decay is L2.");
  w.function(
      "static void update_range(const cnnc_model* model, float* params, const float* grads, "
      "float* state, const cnnc_optimizer* opt, int64_t begin, int64_t end)");
  w.line("(void)model;");
  std::vector<std::pair<int64_t, int64_t>> ranges;  // [first, end)
  for (const dsl::Layer& l : g.layers)
    if (l.trainable()) {
      if (l.weight_count) ranges.push_back({l.weight_offset, l.weight_offset + l.weight_count});
      if (l.bias_count) ranges.push_back({l.bias_offset, l.bias_offset + l.bias_count});
    }
  if (ranges.empty()) {
    w.line("(void)params, (void)grads, (void)state, (void)opt, (void)begin, (void)end;");
  } else {
    w.line("static const int64_t ranges[{}][2] = {{", ranges.size());
    for (auto [first, end] : ranges) w.line("    {{{}, {}}},", first, end);
    w.line("}};");
    // The settings in locals and the arrays restrict: else every store could change them, and
    // the loops reload them and vectorise only behind run-time overlap checks.
    w.line("float* __restrict w = params;");
    w.line("const float* __restrict dw = grads;");
    w.line("float* __restrict m = state;");
    w.line("float* __restrict v = state + {};", g.param_floats);
    w.line("const float lr = opt->lr, weight_decay = opt->weight_decay, momentum = opt->momentum;");
    w.line("const float beta1 = opt->beta1, beta2 = opt->beta2, eps = opt->eps;");
    w.line("float step_size = 0.0f, sqrt_correction2 = 0.0f;");
    w.open("if (opt->kind != CNNC_SGD)");
    w.line("const double t = (double)opt->step;");
    w.line("step_size = (float)((double)opt->lr / (1.0 - std::pow((double)opt->beta1, t)));");
    w.line("sqrt_correction2 = (float)std::sqrt(1.0 - std::pow((double)opt->beta2, t));");
    w.close();
    w.open("for (const auto& range : ranges)");
    w.line("const int64_t first = range[0] > begin ? range[0] : begin;");
    w.line("const int64_t last = range[1] < end ? range[1] : end;");
    w.open("if (opt->kind == CNNC_SGD)");
    w.open("for (int64_t j = first; j < last; ++j)");
    w.line("const float grad = dw[j] + weight_decay * w[j];");
    w.line("const float mj = momentum * m[j] + grad;");
    w.line("m[j] = mj;");
    w.line("w[j] -= lr * mj;");
    w.close();
    w.line("continue;");
    w.close();
    w.open("for (int64_t j = first; j < last; ++j)");
    w.line("const float grad = dw[j] + weight_decay * w[j];");
    w.line("const float mj = beta1 * m[j] + (1.0f - beta1) * grad;");
    w.line("const float vj = beta2 * v[j] + (1.0f - beta2) * grad * grad;");
    w.line("m[j] = mj;");
    w.line("v[j] = vj;");
    w.line("const float denom = std::sqrt(vj) / sqrt_correction2 + eps;");
    w.line("w[j] -= step_size * mj / denom;");
    w.close();
    w.close();
  }
  w.close();
  w.blank();
  w.comment("cnnc_model::update: one step over every parameter.");
  w.function(
      "static void update(const cnnc_model* model, float* params, const float* grads, float* "
      "state, const cnnc_optimizer* opt)");
  w.line("update_range(model, params, grads, state, opt, 0, {});", g.param_floats);
  w.close();
  w.blank();
}

}  // namespace cnnc::codegen
