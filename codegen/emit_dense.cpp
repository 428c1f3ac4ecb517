// Dense layers, forward and backward, for one block of L samples in the lanes.
//
// Layout: x [I][L] (the input flattened in [H][W][C] order), y [K][L], weights [K][I], bias [K]:
//   y[k] = b[k] + sum_i w[k][i] * x[i]
// The weight gradient is a product over the whole slice, not per block: each block leaves its
// inputs and output gradients as sample-major rows, and the slice's end multiplies them once
// (emit_model.cpp), so the K x I weight matrix is written once per slice.
#include <fmt/format.h>

#include "emit.hpp"

namespace cnnc::codegen {

namespace {

void emit_forward(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), I = l.in.size(), K = l.units;
  function_comment(c, lp, "forward",
                   fmt::format("x [{}][L] -> y [{}][L]; units {} at a time", I, K, lp.kblock));
  c.w.open("static {} void {}_forward(const float* __restrict params, float* __restrict ws)",
           c.target(), l.name);
  c.w.line("const float* w = params + {};", l.weight_offset);
  c.w.line("const float* b = params + {};", l.bias_offset);
  c.w.line("const float* x = {};", c.input_of(lp.index));
  c.w.line("float* y = {};", c.output_of(lp.index));
  auto block = [&](const std::string& first, int64_t size) {
    c.w.line("const float* wk = w + ({}) * {};", first, I);
    for (int64_t j = 0; j < size; ++j) c.w.line("V acc{} = vbcast(b + {} + {});", j, first, j);
    c.w.open("for (int i = 0; i < {}; ++i)", I);
    c.w.line("V xi = vload(x + i * {});", L);
    for (int64_t j = 0; j < size; ++j)
      c.w.line("acc{} = vfma(xi, vbcast(wk + {} + i), acc{});", j, j * I, j);
    c.w.close();
    for (int64_t j = 0; j < size; ++j) {
      if (l.activation == dsl::Activation::relu) c.w.line("acc{} = vmax(acc{}, vzero());", j, j);
      c.w.line("vstore(y + ({} + {}) * {}, acc{});", first, j, L, j);
    }
  };
  int64_t full = K / lp.kblock, tail = K % lp.kblock;
  if (full > 0) {
    c.w.open("for (int kb = 0; kb < {}; ++kb)", full);
    block(fmt::format("kb * {}", lp.kblock), lp.kblock);
    c.w.close();
  }
  if (tail) {
    c.w.open("");
    block(std::to_string(full * lp.kblock), tail);
    c.w.close();
  }
  if (l.activation == dsl::Activation::sigmoid || l.activation == dsl::Activation::tanh)
    emit_activation_loop(c, l, "y", K * L);
  c.w.close();
  c.w.blank();
}

void emit_backward(EmitContext& c, const LayerPlan& lp) {
  if (!runs_backward(lp)) return;
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), I = l.in.size(), K = l.units;
  function_comment(c, lp, "backward",
                   fmt::format("dy [{}][L] -> {}this block's rows of the slice's inputs [n][{}] "
                               "and output gradients [n][{}]",
                               K, lp.needs_dx ? fmt::format("dx [{}][L], ", I) : "", I, K));
  c.w.open(
      "static {} void {}_backward(const float* __restrict params, float* __restrict ws, int block)",
      c.target(), l.name);
  if (lp.needs_dx) c.w.line("const float* w = params + {};", l.weight_offset);
  c.w.line("const float* x = {};", c.input_of(lp.index));
  c.w.line("float* dz = {};", c.grad_of(lp.index));
  if (l.activation == dsl::Activation::relu || l.activation == dsl::Activation::sigmoid ||
      l.activation == dsl::Activation::tanh)
    c.w.line("const float* y = {};", c.output_of(lp.index));  // f'(z) is read off the output
  emit_activation_backward_loop(c, l, "y", "dz", K * L);
  if (l.trainable()) {
    c.w.line("float* db = {};", ws(lp.lane_db));
    c.w.line(
        "for (int k = 0; k < {}; ++k) vstore(db + k * {}, vadd(vload(db + k * {}), vload(dz + k * "
        "{})));",
        K, L, L, L);
    c.w.line("float* rows_x = {} + block * {};", ws(lp.slice_x), L * I);
    c.w.line("float* rows_dz = {} + block * {};", ws(lp.slice_dz), L * K);
    c.w.open("for (int lane = 0; lane < {}; ++lane)", L);
    c.w.line("for (int i = 0; i < {}; ++i) rows_x[lane * {} + i] = x[i * {} + lane];", I, I, L);
    c.w.line("for (int k = 0; k < {}; ++k) rows_dz[lane * {} + k] = dz[k * {} + lane];", K, K, L);
    c.w.close();
  }
  if (lp.needs_dx) {
    c.w.line("float* dx = {};", c.grad_of(lp.index - 1));
    auto block = [&](const std::string& first, int64_t size) {
      for (int64_t j = 0; j < size; ++j) c.w.line("V acc{} = vzero();", j);
      c.w.open("for (int k = 0; k < {}; ++k)", K);
      c.w.line("V dk = vload(dz + k * {});", L);
      c.w.line("const float* wk = w + k * {} + {};", I, first);
      for (int64_t j = 0; j < size; ++j)
        c.w.line("acc{} = vfma(dk, vbcast(wk + {}), acc{});", j, j, j);
      c.w.close();
      for (int64_t j = 0; j < size; ++j)
        c.w.line("vstore(dx + ({} + {}) * {}, acc{});", first, j, L, j);
    };
    int64_t full = I / lp.kblock, tail = I % lp.kblock;
    if (full > 0) {
      c.w.open("for (int ib = 0; ib < {}; ++ib)", full);
      block(fmt::format("ib * {}", lp.kblock), lp.kblock);
      c.w.close();
    }
    if (tail) {
      c.w.open("");
      block(std::to_string(full * lp.kblock), tail);
      c.w.close();
    }
  }
  c.w.close();
  c.w.blank();
}

}  // namespace

void emit_dense(EmitContext& c, const LayerPlan& lp) {
  emit_forward(c, lp);
  emit_backward(c, lp);
}

}  // namespace cnnc::codegen
