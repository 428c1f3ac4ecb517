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
  c.w.function("static {} void {}_forward(const float* __restrict params, float* __restrict ws)",
               c.kernel(), l.name);
  c.w.line("const float* w = params + {};", l.weight_offset);
  c.w.line("const float* b = params + {};", l.bias_offset);
  c.w.line("const float* x = {};", c.input_of(lp.index));
  c.w.line("float* y = {};", c.output_of(lp.index));
  emit_blocks(c, "k0", K, lp.kblock, [&](int64_t size) {
    c.w.line("const float* wk = w + k0 * {};", I);
    for (int64_t j = 0; j < size; ++j) c.w.line("V acc{} = vbcast(b + k0 + {});", j, j);
    c.w.open("for (int i = 0; i < {}; ++i)", I);
    c.w.line("V xi = vload(x + i * {});", L);
    for (int64_t j = 0; j < size; ++j)
      c.w.line("acc{} = vfma(xi, vbcast(wk + {} + i), acc{});", j, j * I, j);
    c.w.close();
    for (int64_t j = 0; j < size; ++j) {
      if (l.activation == dsl::Activation::relu) c.w.line("acc{} = vmax(acc{}, vzero());", j, j);
      c.w.line("vstore(y + (k0 + {}) * {}, acc{});", j, L, j);
    }
  });
  if (l.activation == dsl::Activation::sigmoid || l.activation == dsl::Activation::tanh)
    emit_activation_loop(c, l, "y", K * L);
  c.w.close();
  c.w.blank();
}

// The input gradient of one block: dx[i] = sum_k w[k][i] * dz[k], inputs dx_tblock at a time.
void emit_backward_data(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), I = l.in.size(), K = l.units;
  function_comment(
      c, lp, "backward_data",
      fmt::format("dz [{}][L] -> dx [{}][L]; inputs {} at a time", K, I, lp.dx_tblock));
  c.w.function(
      "static {} void {}_backward_data(const float* __restrict params, float* __restrict ws)",
      c.kernel(), l.name);
  c.w.line("const float* w = params + {};", l.weight_offset);
  c.w.line("const float* dz = {};", c.grad_of(lp.index));
  c.w.line("float* dx = {};", c.grad_of(lp.index - 1));
  emit_blocks(c, "i0", I, lp.dx_tblock, [&](int64_t size) {
    for (int64_t j = 0; j < size; ++j) c.w.line("V acc{} = vzero();", j);
    c.w.open("for (int k = 0; k < {}; ++k)", K);
    c.w.line("V dk = vload(dz + k * {});", L);
    c.w.line("const float* wk = w + k * {} + i0;", I);
    for (int64_t j = 0; j < size; ++j)
      c.w.line("acc{} = vfma(dk, vbcast(wk + {}), acc{});", j, j, j);
    c.w.close();
    for (int64_t j = 0; j < size; ++j) c.w.line("vstore(dx + (i0 + {}) * {}, acc{});", j, L, j);
  });
  c.w.close();
  c.w.blank();
}

// The weight gradient of the slice, once per slice from the rows the blocks left:
//   dw[k][i] = sum_rows dz[row][k] * x[row][i]
// so the K x I matrix is written once per slice rather than once per block. Register tiles of
// dw_kblock units x dw_vblock vectors of inputs; the last, partial vector of a row is stored
// lane by lane.
void emit_backward_weights(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), I = l.in.size(), K = l.units, X = lp.x_stride;
  function_comment(c, lp, "backward_weights",
                   fmt::format("rows of x [n][{}] and dz [n][{}] -> dw [{}][{}] in grads; tiles "
                               "of {} units x {} vectors",
                               X, K, K, I, lp.dw_kblock, lp.dw_vblock));
  c.w.function(
      "static {} void {}_backward_weights(float* __restrict grads, const float* __restrict ws, int "
      "rows)",
      c.kernel(), l.name);
  c.w.line("const float* rows_x = {};", ws(lp.slice_x));
  c.w.line("const float* rows_dz = {};", ws(lp.slice_dz));
  c.w.line("float* dw = grads + {};", l.weight_offset);
  auto tile = [&](int64_t units, int64_t vectors, bool partial_last) {
    for (int64_t j = 0; j < units; ++j)
      for (int64_t u = 0; u < vectors; ++u) c.w.line("V acc_k{}_v{} = vzero();", j, u);
    c.w.open("for (int r = 0; r < rows; ++r)");
    c.w.line("const float* xr = rows_x + r * {} + v0 * {};", X, L);
    c.w.line("const float* dzr = rows_dz + r * {} + k0;", K);
    for (int64_t u = 0; u < vectors; ++u) c.w.line("V x{} = vload(xr + {});", u, u * L);
    for (int64_t j = 0; j < units; ++j) {
      c.w.line("V d{} = vbcast(dzr + {});", j, j);
      for (int64_t u = 0; u < vectors; ++u)
        c.w.line("acc_k{}_v{} = vfma(d{}, x{}, acc_k{}_v{});", j, u, j, u, j, u);
    }
    c.w.close();
    for (int64_t j = 0; j < units; ++j)
      for (int64_t u = 0; u < vectors; ++u) {
        if (partial_last && u == vectors - 1)
          c.w.line("vstore_first(dw + (k0 + {}) * {} + (v0 + {}) * {}, acc_k{}_v{}, {});", j, I, u,
                   L, j, u, I % L);
        else
          c.w.line("vstoreu(dw + (k0 + {}) * {} + (v0 + {}) * {}, acc_k{}_v{});", j, I, u, L, j, u);
      }
  };
  // Units innermost: a column block of x (rows x dw_vblock vectors) stays in L1 while every
  // unit passes over it, and dz (rows x K) is small.
  emit_blocks(c, "v0", I / L, lp.dw_vblock, [&](int64_t vectors) {
    emit_blocks(c, "k0", K, lp.dw_kblock, [&](int64_t units) { tile(units, vectors, false); });
  });
  if (I % L) {
    c.w.open("");
    c.w.line("const int v0 = {};", I / L);
    emit_blocks(c, "k0", K, lp.dw_kblock, [&](int64_t units) { tile(units, 1, true); });
    c.w.close();
  }
  c.w.close();
  c.w.blank();
}

// The backward pass of one block: dz through the activation, the bias partials, this block's
// rows for the slice's weight gradient, and the input gradient.
void emit_backward(EmitContext& c, const LayerPlan& lp) {
  if (!runs_backward(lp)) return;
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), I = l.in.size(), K = l.units;
  if (l.trainable()) emit_backward_weights(c, lp);
  if (lp.needs_dx) emit_backward_data(c, lp);
  function_comment(c, lp, "backward",
                   fmt::format("dy [{}][L] -> dz = dy * f'(z) in place; this block's rows of the "
                               "slice's inputs [n][{}] and output gradients [n][{}]{}",
                               K, I, K, lp.needs_dx ? "; dx" : ""));
  c.w.function(
      "static {} void {}_backward(const float* __restrict params, float* __restrict ws, int block)",
      c.kernel(), l.name);
  c.w.line("const float* x = {};", c.input_of(lp.index));
  c.w.line("float* dz = {};", c.grad_of(lp.index));
  c.w.line("(void)params, (void)x, (void)block;");
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
    c.w.line("float* rows_x = {} + block * {};", ws(lp.slice_x), L * lp.x_stride);
    c.w.line("float* rows_dz = {} + block * {};", ws(lp.slice_dz), L * K);
    c.w.open("for (int lane = 0; lane < {}; ++lane)", L);
    c.w.line("for (int i = 0; i < {}; ++i) rows_x[lane * {} + i] = x[i * {} + lane];", I,
             lp.x_stride, L);
    c.w.line("for (int k = 0; k < {}; ++k) rows_dz[lane * {} + k] = dz[k * {} + lane];", K, K, L);
    c.w.close();
  }
  if (lp.needs_dx) c.w.line("{}_backward_data(params, ws);", l.name);
  c.w.close();
  c.w.blank();
}

}  // namespace

void emit_dense(EmitContext& c, const LayerPlan& lp) {
  emit_forward(c, lp);
  emit_backward(c, lp);
}

}  // namespace cnnc::codegen
