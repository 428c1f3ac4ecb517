// Convolution, forward and backward, for one block of L samples in the lanes.
//
// Layout: x [Hp][Wp][C][L] (zero-padded when the layer pads), y [P][Q][K][L],
// weights [K][R][S][C], bias [K]. Each output vector holds one (p, q, k) for L samples:
//   y[p][q][k] = b[k] + sum_{r,s,c} w[k][r][s][c] * x[p*sh + r][q*sw + s][c]
// Filters are taken kblock at a time so that one input load feeds kblock accumulators.
#include <fmt/format.h>

#include <algorithm>
#include <functional>

#include "emit.hpp"

namespace cnnc::codegen {

namespace {

struct ConvShape {
  int64_t H, W, C, P, Q, K, R, S, sh, sw, Hp, Wp;
};

ConvShape shape_of(const dsl::Layer& l) {
  return {l.in.h,
          l.in.w,
          l.in.c,
          l.out.h,
          l.out.w,
          l.units,
          l.kernel_h,
          l.kernel_w,
          l.stride_h,
          l.stride_w,
          l.in.h + l.pad_top + l.pad_bottom,
          l.in.w + l.pad_left + l.pad_right};
}

bool pads(const dsl::Layer& l) {
  return l.pad_top + l.pad_bottom + l.pad_left + l.pad_right > 0;
}

// Copies x [H][W][C][L] into the interior of the padded buffer; the border stays zero
// because nothing else writes it (it is cleared when a slice begins).
void emit_pad_copy(EmitContext& c, const std::string& from, const std::string& to,
                   const ConvShape& d, const dsl::Layer& l) {
  int64_t L = c.L(), row = d.W * d.C * L;
  c.w.open("for (int h = 0; h < {}; ++h)", d.H);
  c.w.line("std::memcpy({} + (h + {}) * {} + {}, {} + h * {}, {} * sizeof(float));", to, l.pad_top,
           d.Wp * d.C * L, l.pad_left * d.C * L, from, row, row);
  c.w.close();
}

// One register tile at output row p: `cols` output columns from q0 times `size` filters from
// k0. Each tap loads one input vector per column and broadcasts one weight per filter, so a
// tile of cols x size accumulators costs cols + size loads per cols x size FMAs.
void emit_forward_tile(EmitContext& c, const dsl::Layer& l, const ConvShape& d, int64_t size,
                       int64_t cols, bool unroll_c) {
  int64_t L = c.L(), RSC = d.R * d.S * d.C, col_step = d.sw * d.C * L;
  c.w.line("const float* wk = w + k0 * {};", RSC);
  // Opaque to the optimiser: otherwise it hoists every weight broadcast of the tile out of the
  // pixel loops and spills hundreds of broadcast vectors to the stack, which turns 4-byte
  // broadcast operands into 64-byte reloads.
  c.w.line("CNNC_OPAQUE(wk);");
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < size; ++j) c.w.line("V acc_q{}_k{} = vbcast(b + k0 + {});", i, j, j);
  auto tap = [&](int64_t r, int64_t s, const std::string& cexpr, const std::string& woff) {
    for (int64_t i = 0; i < cols; ++i)
      c.w.line("x{} = vload(xw + {}{});", i, (r * d.Wp + s) * d.C * L + i * col_step, cexpr);
    for (int64_t j = 0; j < size; ++j) {
      c.w.line("wv = vbcast(wk + {}{});", j * RSC, woff);
      for (int64_t i = 0; i < cols; ++i)
        c.w.line("acc_q{}_k{} = vfma(x{}, wv, acc_q{}_k{});", i, j, i, i, j);
    }
  };
  std::string xs;
  for (int64_t i = 0; i < cols; ++i) xs += fmt::format("{}x{}", i ? ", " : "", i);
  c.w.line("V {}, wv;", xs);
  if (unroll_c) {
    for (int64_t r = 0; r < d.R; ++r)
      for (int64_t s = 0; s < d.S; ++s)
        for (int64_t ch = 0; ch < d.C; ++ch)
          tap(r, s, ch ? fmt::format(" + {}", ch * L) : "",
              fmt::format(" + {}", (r * d.S + s) * d.C + ch));
  } else {
    c.w.open("for (int ch = 0; ch < {}; ++ch)", d.C);
    for (int64_t r = 0; r < d.R; ++r)
      for (int64_t s = 0; s < d.S; ++s)
        tap(r, s, fmt::format(" + ch * {}", L), fmt::format(" + {} + ch", (r * d.S + s) * d.C));
    c.w.close();
  }
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < size; ++j) {
      if (l.activation == dsl::Activation::relu)
        c.w.line("acc_q{}_k{} = vmax(acc_q{}_k{}, vzero());", i, j, i, j);
      c.w.line("vstore(yo + ({} * {} + k0 + {}) * {}, acc_q{}_k{});", i, d.K, j, L, i, j);
    }
}

void emit_forward(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  ConvShape d = shape_of(l);
  int64_t L = c.L();
  function_comment(
      c, lp, "forward",
      fmt::format(
          "x [{}][{}][{}][L] -> y [{}][{}][{}][L]; register tiles of {} columns x {} filters{}",
          d.Hp, d.Wp, d.C, d.P, d.Q, d.K, lp.qblock, lp.kblock,
          lp.unroll_c ? ", taps unrolled" : ", channel loop"));
  c.w.function("static {} void {}_forward(const float* __restrict params, float* __restrict ws)",
               c.kernel(), l.name);
  c.w.line("const float* w = params + {};", l.weight_offset);
  c.w.line("const float* b = params + {};", l.bias_offset);
  std::string x = c.input_of(lp.index);
  if (pads(l)) {
    emit_pad_copy(c, x, ws(lp.padded), d, l);
    x = ws(lp.padded);
  }
  c.w.line("const float* xp = {};", x);
  c.w.line("float* y = {};", c.output_of(lp.index));
  c.w.open("for (int p = 0; p < {}; ++p)", d.P);
  // Tiles of qblock output columns x kblock filters; the columns and filters left over make
  // smaller tiles.
  emit_blocks(c, "q0", d.Q, std::min<int64_t>(lp.qblock, d.Q), [&](int64_t cols) {
    c.w.line("const float* xw = xp + p * {} + q0 * {};", d.sh * d.Wp * d.C * L, d.sw * d.C * L);
    c.w.line("float* yo = y + (p * {} + q0) * {};", d.Q, d.K * L);
    emit_blocks(c, "k0", d.K, lp.kblock,
                [&](int64_t size) { emit_forward_tile(c, l, d, size, cols, lp.unroll_c); });
  });
  c.w.close();
  if (l.activation == dsl::Activation::sigmoid || l.activation == dsl::Activation::tanh)
    emit_activation_loop(c, l, "y", l.out.size() * L);
  c.w.close();
  c.w.blank();
}

// The weight gradient of one block, as per-lane partials (lanes are summed once per slice):
//   dw[k][r][t] += sum_{p,q} dz[p][q][k] * x[p*sh + r][q*sw][t],  t = s*C + c in [0, S*C)
// over tiles of dw_kblock filters x dw_tblock taps held in registers for the whole (p, q) loop.
void emit_backward_weights(EmitContext& c, const LayerPlan& lp, const ConvShape& d) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), T = d.S * d.C, row = d.Wp * d.C * L;
  function_comment(
      c, lp, "backward_weights",
      fmt::format("dz [{}][{}][{}][L], x [{}][{}][{}][L] -> per-lane partials dw "
                  "[{}][{}][{}][L] (t = s*C + c), db [{}][L]; tiles of {} filters x "
                  "{} taps",
                  d.P, d.Q, d.K, d.Hp, d.Wp, d.C, d.K, d.R, T, d.K, lp.dw_kblock, lp.dw_tblock));
  c.w.function(
      "static {} void {}_backward_weights(const float* __restrict params, float* __restrict ws)",
      c.kernel(), l.name);
  c.w.line("(void)params;");
  c.w.line("const float* dz = {};", c.grad_of(lp.index));
  c.w.line("const float* xp = {};", pads(l) ? ws(lp.padded) : c.input_of(lp.index));
  c.w.line("float* dw = {};", ws(lp.lane_dw));
  c.w.line("float* db = {};", ws(lp.lane_db));
  c.w.open("for (int k = 0; k < {}; ++k)", d.K);
  c.w.line("V bias = vload(db + k * {});", L);
  c.w.line("for (int pq = 0; pq < {}; ++pq) bias = vadd(bias, vload(dz + (pq * {} + k) * {}));",
           d.P * d.Q, d.K, L);
  c.w.line("vstore(db + k * {}, bias);", L);
  c.w.close();
  // Output rows dw_prows at a time (cache blocking); every tile of the layer passes over them.
  emit_blocks(c, "p0", d.P, lp.dw_prows, [&](int64_t prows) {
    emit_blocks(c, "k0", d.K, lp.dw_kblock, [&](int64_t filters) {
      c.w.open("for (int r = 0; r < {}; ++r)", d.R);
      emit_blocks(c, "t0", T, lp.dw_tblock, [&](int64_t taps) {
        c.w.line("float* dwt = dw + ((k0 * {} + r) * {} + t0) * {};", d.R, T, L);
        for (int64_t j = 0; j < filters; ++j)
          for (int64_t i = 0; i < taps; ++i)
            c.w.line("V acc_k{}_t{} = vload(dwt + {});", j, i, (j * d.R * T + i) * L);
        c.w.line("const float* xt = xp + r * {} + t0 * {};", row, L);
        c.w.open("for (int p = p0; p < p0 + {}; ++p)", prows);
        c.w.open("for (int q = 0; q < {}; ++q)", d.Q);
        c.w.line("const float* xr = xt + p * {} + q * {};", d.sh * row, d.sw * d.C * L);
        c.w.line("const float* dzo = dz + ((p * {} + q) * {} + k0) * {};", d.Q, d.K, L);
        for (int64_t j = 0; j < filters; ++j) c.w.line("V d{} = vload(dzo + {});", j, j * L);
        for (int64_t i = 0; i < taps; ++i) {
          c.w.line("V x{} = vload(xr + {});", i, i * L);
          for (int64_t j = 0; j < filters; ++j)
            c.w.line("acc_k{}_t{} = vfma(d{}, x{}, acc_k{}_t{});", j, i, j, i, j, i);
        }
        c.w.close();
        c.w.close();
        for (int64_t j = 0; j < filters; ++j)
          for (int64_t i = 0; i < taps; ++i)
            c.w.line("vstore(dwt + {}, acc_k{}_t{});", (j * d.R * T + i) * L, j, i);
      });
      c.w.close();
    });
  });
  c.w.close();
  c.w.blank();
}

// The input gradient: every output gradient scattered back through the filters,
//   dx[p*sh + r][q*sw][t] += sum_k w[k][r][t] * dz[p][q][k],  t = s*C + c
// A tile of dx_tblock taps of one dx row stays in registers while all K filters add into it.
void emit_backward_data(EmitContext& c, const LayerPlan& lp, const ConvShape& d) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), T = d.S * d.C, RSC = d.R * T, row = d.Wp * d.C * L;
  function_comment(
      c, lp, "backward_data",
      fmt::format("dz [{}][{}][{}][L] -> dx [{}][{}][{}][L]; tiles of {} taps{}", d.P, d.Q, d.K,
                  d.H, d.W, d.C, lp.dx_tblock, pads(l) ? ", through the padded buffer" : ""));
  c.w.function(
      "static {} void {}_backward_data(const float* __restrict params, float* __restrict ws)",
      c.kernel(), l.name);
  c.w.line("const float* w = params + {};", l.weight_offset);
  c.w.line("const float* dz = {};", c.grad_of(lp.index));
  c.w.line("float* dxp = {};", pads(l) ? ws(lp.dpadded) : c.grad_of(lp.index - 1));
  c.w.line("std::memset(dxp, 0, {} * sizeof(float));", d.Hp * d.Wp * d.C * L);
  c.w.open("for (int p = 0; p < {}; ++p)", d.P);
  c.w.open("for (int q = 0; q < {}; ++q)", d.Q);
  c.w.line("const float* dzo = dz + (p * {} + q) * {};", d.Q, d.K * L);
  c.w.open("for (int r = 0; r < {}; ++r)", d.R);
  emit_blocks(c, "t0", T, lp.dx_tblock, [&](int64_t taps) {
    c.w.line("float* dxt = dxp + (p * {} + r) * {} + q * {} + t0 * {};", d.sh, row, d.sw * d.C * L,
             L);
    c.w.line("const float* wt = w + r * {} + t0;", T);
    for (int64_t i = 0; i < taps; ++i) c.w.line("V acc{} = vload(dxt + {});", i, i * L);
    c.w.open("for (int k = 0; k < {}; ++k)", d.K);
    c.w.line("const V dk = vload(dzo + k * {});", L);
    for (int64_t i = 0; i < taps; ++i)
      c.w.line("acc{} = vfma(dk, vbcast(wt + k * {} + {}), acc{});", i, RSC, i, i);
    c.w.close();
    for (int64_t i = 0; i < taps; ++i) c.w.line("vstore(dxt + {}, acc{});", i * L, i);
  });
  c.w.close();
  c.w.close();
  c.w.close();
  if (pads(l)) {  // crop the padding away
    int64_t in_row = d.W * d.C * L;
    c.w.open("for (int h = 0; h < {}; ++h)", d.H);
    c.w.line("std::memcpy({} + h * {}, dxp + (h + {}) * {} + {}, {} * sizeof(float));",
             c.grad_of(lp.index - 1), in_row, l.pad_top, row, l.pad_left * d.C * L, in_row);
    c.w.close();
  }
  c.w.close();
  c.w.blank();
}

// The backward pass of one block: dz through the activation, then the parameter and input
// gradients, each its own function so that benchmarks and profiles see them apart.
void emit_backward(EmitContext& c, const LayerPlan& lp) {
  if (!runs_backward(lp)) return;
  const dsl::Layer& l = *lp.layer;
  ConvShape d = shape_of(l);
  if (l.trainable()) emit_backward_weights(c, lp, d);
  if (lp.needs_dx) emit_backward_data(c, lp, d);
  function_comment(c, lp, "backward", "dy -> dz = dy * f'(z) in place, then the gradients");
  c.w.function("static {} void {}_backward(const float* __restrict params, float* __restrict ws)",
               c.kernel(), l.name);
  c.w.line("float* dz = {};", c.grad_of(lp.index));
  if (l.activation == dsl::Activation::relu || l.activation == dsl::Activation::sigmoid ||
      l.activation == dsl::Activation::tanh)
    c.w.line("const float* y = {};", c.output_of(lp.index));  // f'(z) is read off the output
  else
    c.w.line("(void)dz;");
  emit_activation_backward_loop(c, l, "y", "dz", l.out.size() * c.L());
  if (l.trainable()) c.w.line("{}_backward_weights(params, ws);", l.name);
  if (lp.needs_dx) c.w.line("{}_backward_data(params, ws);", l.name);
  c.w.close();
  c.w.blank();
}

}  // namespace

void emit_conv(EmitContext& c, const LayerPlan& lp) {
  emit_forward(c, lp);
  emit_backward(c, lp);
}

}  // namespace cnnc::codegen
