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

// Filters in blocks of kblock: a loop over the full blocks, then the rest, each block with
// wk pointing at its first filter's weights (rsc floats per filter).
void emit_filter_blocks(EmitContext& c, int64_t units, int64_t kblock, int64_t rsc,
                        const std::function<void(const std::string& first, int64_t size)>& body) {
  int64_t full = units / kblock, tail = units % kblock;
  if (full > 1) {
    c.w.open("for (int kb = 0; kb < {}; ++kb)", full);
    c.w.line("const float* wk = w + kb * {};", kblock * rsc);
    body(fmt::format("kb * {}", kblock), kblock);
    c.w.close();
  } else if (full == 1) {
    c.w.open("");
    c.w.line("const float* wk = w;");
    body("0", kblock);
    c.w.close();
  }
  if (tail) {
    c.w.open("");
    c.w.line("const float* wk = w + {};", full * kblock * rsc);
    body(std::to_string(full * kblock), tail);
    c.w.close();
  }
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

// One block of filters at output (p, q): the accumulators, the taps, the activation, the stores.
// One register tile at output row p: `cols` output columns from q0 times `size` filters from
// `first`. Each tap loads one input vector per column and broadcasts one weight per filter,
// so a tile of cols x size accumulators costs cols + size loads per cols x size FMAs.
void emit_forward_tile(EmitContext& c, const dsl::Layer& l, const ConvShape& d,
                       const std::string& first, int64_t size, int64_t cols, bool unroll_c) {
  int64_t L = c.L(), RSC = d.R * d.S * d.C, col_step = d.sw * d.C * L;
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < size; ++j)
      c.w.line("V acc_q{}_k{} = vbcast(b + {} + {});", i, j, first, j);
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
      c.w.line("vstore(yo + ({} * {} + {} + {}) * {}, acc_q{}_k{});", i, d.K, first, j, L, i, j);
    }
}

void emit_forward(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  ConvShape d = shape_of(l);
  int64_t L = c.L(), RSC = d.R * d.S * d.C;
  function_comment(
      c, lp, "forward",
      fmt::format(
          "x [{}][{}][{}][L] -> y [{}][{}][{}][L]; register tiles of {} columns x {} filters{}",
          d.Hp, d.Wp, d.C, d.P, d.Q, d.K, lp.qblock, lp.kblock,
          lp.unroll_c ? ", taps unrolled" : ", channel loop"));
  c.w.open("static {} void {}_forward(const float* __restrict params, float* __restrict ws)",
           c.target(), l.name);
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
  // Output columns qblock at a time, then the columns left over.
  int64_t qb = std::min<int64_t>(lp.qblock, d.Q), full = d.Q / qb * qb;
  auto columns = [&](int64_t cols) {
    c.w.line("const float* xw = xp + p * {} + q0 * {};", d.sh * d.Wp * d.C * L, d.sw * d.C * L);
    c.w.line("float* yo = y + (p * {} + q0) * {};", d.Q, d.K * L);
    emit_filter_blocks(c, d.K, lp.kblock, RSC, [&](const std::string& first, int64_t size) {
      emit_forward_tile(c, l, d, first, size, cols, lp.unroll_c);
    });
  };
  c.w.open("for (int q0 = 0; q0 < {}; q0 += {})", full, qb);
  columns(qb);
  c.w.close();
  if (full < d.Q) {
    c.w.open("");
    c.w.line("const int q0 = {};", full);
    columns(d.Q - full);
    c.w.close();
  }
  c.w.close();
  if (l.activation == dsl::Activation::sigmoid || l.activation == dsl::Activation::tanh)
    emit_activation_loop(c, l, "y", l.out.size() * L);
  c.w.close();
  c.w.blank();
}

// The input gradient: every output gradient scattered back through the filters,
//   dx[p*sh + r][q*sw + s][c] += w[k][r][s][c] * dz[p][q][k]
void emit_backward_data_block(EmitContext& c, const ConvShape& d, const std::string& first,
                              int64_t size, bool unroll_c) {
  int64_t L = c.L(), RSC = d.R * d.S * d.C;
  for (int64_t j = 0; j < size; ++j)
    c.w.line("V d{} = vload(dzo + ({} + {}) * {});", j, first, j, L);
  c.w.line("V acc;");
  auto tap = [&](int64_t r, int64_t s, const std::string& cexpr, const std::string& woff) {
    std::string at = fmt::format("dxw + {}{}", (r * d.Wp + s) * d.C * L, cexpr);
    c.w.line("acc = vload({});", at);
    for (int64_t j = 0; j < size; ++j)
      c.w.line("acc = vfma(d{}, vbcast(wk + {}{}), acc);", j, j * RSC, woff);
    c.w.line("vstore({}, acc);", at);
  };
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
}

void emit_backward(EmitContext& c, const LayerPlan& lp) {
  if (!runs_backward(lp)) return;
  const dsl::Layer& l = *lp.layer;
  ConvShape d = shape_of(l);
  int64_t L = c.L(), RSC = d.R * d.S * d.C;
  function_comment(
      c, lp, "backward",
      fmt::format("dy [{}][{}][{}][L] -> {}weight and bias gradients as per-lane partials "
                  "[{}][{}][{}][{}][L]",
                  d.P, d.Q, d.K,
                  lp.needs_dx ? fmt::format("dx [{}][{}][{}][L], ", d.H, d.W, d.C) : "", d.K, d.R,
                  d.S, d.C));
  c.w.open("static {} void {}_backward(const float* __restrict params, float* __restrict ws)",
           c.target(), l.name);
  if (lp.needs_dx) c.w.line("const float* w = params + {};", l.weight_offset);
  c.w.line("float* dz = {};", c.grad_of(lp.index));
  if (l.activation == dsl::Activation::relu || l.activation == dsl::Activation::sigmoid ||
      l.activation == dsl::Activation::tanh)
    c.w.line("const float* y = {};", c.output_of(lp.index));  // f'(z) is read off the output
  emit_activation_backward_loop(c, l, "y", "dz", l.out.size() * L);
  c.w.line("const float* xp = {};", pads(l) ? ws(lp.padded) : c.input_of(lp.index));
  if (l.trainable()) {
    // Weight gradients: for each tap, the sum over output positions of dz * x, per lane. A
    // block of filters shares each input load and keeps that many independent FMA chains.
    c.w.line("float* dw = {};", ws(lp.lane_dw));
    c.w.line("float* db = {};", ws(lp.lane_db));
    c.w.open("for (int k = 0; k < {}; ++k)", d.K);
    c.w.line("V bias = vload(db + k * {});", L);
    c.w.line("for (int pq = 0; pq < {}; ++pq) bias = vadd(bias, vload(dz + (pq * {} + k) * {}));",
             d.P * d.Q, d.K, L);
    c.w.line("vstore(db + k * {}, bias);", L);
    c.w.close();
    auto block = [&](const std::string& k0, int64_t size) {
      c.w.open("for (int r = 0; r < {}; ++r)", d.R);
      c.w.open("for (int s = 0; s < {}; ++s)", d.S);
      c.w.open("for (int ch = 0; ch < {}; ++ch)", d.C);
      c.w.line("float* dwt = dw + ((({} * {} + r) * {} + s) * {} + ch) * {};", k0, d.R, d.S, d.C,
               L);
      for (int64_t j = 0; j < size; ++j) c.w.line("V acc{} = vload(dwt + {});", j, j * RSC * L);
      c.w.line("const float* xt = xp + (r * {} + s) * {} + ch * {};", d.Wp, d.C * L, L);
      c.w.open("for (int p = 0; p < {}; ++p)", d.P);
      c.w.open("for (int q = 0; q < {}; ++q)", d.Q);
      c.w.line("V x = vload(xt + p * {} + q * {});", d.sh * d.Wp * d.C * L, d.sw * d.C * L);
      c.w.line("const float* dzo = dz + (p * {} + q) * {} + {} * {};", d.Q, d.K * L, k0, L);
      for (int64_t j = 0; j < size; ++j)
        c.w.line("acc{} = vfma(vload(dzo + {}), x, acc{});", j, j * L, j);
      c.w.close();
      c.w.close();
      for (int64_t j = 0; j < size; ++j) c.w.line("vstore(dwt + {}, acc{});", j * RSC * L, j);
      c.w.close();
      c.w.close();
      c.w.close();
    };
    int64_t full = d.K / lp.kblock, tail = d.K % lp.kblock;
    c.w.open("for (int kb = 0; kb < {}; ++kb)", full);
    c.w.line("const int k0 = kb * {};", lp.kblock);
    block("k0", lp.kblock);
    c.w.close();
    if (tail) {
      c.w.open("");
      block(std::to_string(full * lp.kblock), tail);
      c.w.close();
    }
  }
  if (lp.needs_dx) {
    std::string dx = pads(l) ? ws(lp.dpadded) : c.grad_of(lp.index - 1);
    c.w.line("float* dxp = {};", dx);
    c.w.line("std::memset(dxp, 0, {} * sizeof(float));", d.Hp * d.Wp * d.C * L);
    c.w.open("for (int p = 0; p < {}; ++p)", d.P);
    c.w.open("for (int q = 0; q < {}; ++q)", d.Q);
    c.w.line("const float* dzo = dz + (p * {} + q) * {};", d.Q, d.K * L);
    c.w.line("float* dxw = dxp + p * {} + q * {};", d.sh * d.Wp * d.C * L, d.sw * d.C * L);
    emit_filter_blocks(c, d.K, lp.kblock, RSC, [&](const std::string& first, int64_t size) {
      emit_backward_data_block(c, d, first, size, lp.unroll_c);
    });
    c.w.close();
    c.w.close();
    if (pads(l)) {  // crop the padding away
      int64_t row = d.W * d.C * L;
      c.w.open("for (int h = 0; h < {}; ++h)", d.H);
      c.w.line("std::memcpy({} + h * {}, dxp + (h + {}) * {} + {}, {} * sizeof(float));",
               c.grad_of(lp.index - 1), row, l.pad_top, d.Wp * d.C * L, l.pad_left * d.C * L, row);
      c.w.close();
    }
  }
  c.w.close();
  c.w.blank();
}

}  // namespace

void emit_conv(EmitContext& c, const LayerPlan& lp) {
  emit_forward(c, lp);
  emit_backward(c, lp);
}

}  // namespace cnnc::codegen
