// Convolution, forward and backward, for one block of L samples in the lanes.
//
// Layout: x [Hp][Wp][C][L] (zero-padded when the layer pads), y [P][Q][K][L],
// weights [K][R][S][C], bias [K]. Each output vector holds one (p, q, k) for L samples:
//   y[p][q][k] = b[k] + sum_{r,s,c} w[k][r][s][c] * x[p*sh + r][q*sw + s][c]
// Filters are taken kblock at a time so that one input load feeds kblock accumulators.
#include <fmt/format.h>

#include <algorithm>

#include "codegen/emit.hpp"

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

// Copies x [H][W][C][L] into the interior of the padded buffer; the border stays zero
// because nothing else writes it (it is cleared when a slice begins).
void emit_pad_copy(EmitContext& c, const std::string& from, const std::string& to,
                   const ConvShape& d, const dsl::Layer& l) {
  int64_t L = c.L(), row = d.W * d.C * L;
  emit_loop(c.w, "h", d.H, [&](const Expr& h) {
    c.w.line("std::memcpy({}, {}, {} * sizeof(float));",
             at(to, (h + l.pad_top) * (d.Wp * d.C * L) + l.pad_left * d.C * L), at(from, h * row),
             row);
  });
}

// The layout's channels and kernel columns, and the x columns between two of those: bf16's
// channel pairs halve C; its column pairs (odd C) halve S and step two columns of x (each holds
// its right neighbour too).
struct XLayout {
  int64_t C, S, s_step;
};

XLayout x_layout(const LayerPlan& lp, const ConvShape& d) {
  const bool channel_pairs = lp.bf16_forward && !lp.bf16_columns;
  return {channel_pairs ? d.C / 2 : d.C, lp.bf16_columns ? (d.S + 1) / 2 : d.S,
          lp.bf16_columns ? 2 : 1};
}

// An output position of a register tile: its accumulators are acc_<name>_k<j>, and its window
// starts at xw + offset.
struct TilePoint {
  std::string name;
  int64_t offset;
};

// The sums of one register tile: `points` output positions times `size` filters from k0, from
// the bias through every tap. Each tap loads one input vector per point and broadcasts one
// weight per filter, so a tile of points x size accumulators costs points + size loads per
// points x size FMAs. In bf16 a tap is a pair of channels: the loads are pairs and each vdot is
// two multiply-adds per lane. The taps run in the same order whatever the tile, so every tile
// shape sums an output to the same bits.
void emit_tile_sums(EmitContext& c, const LayerPlan& lp, const ConvShape& d, const Expr& k0,
                    int64_t size, const std::vector<TilePoint>& points) {
  const bool bf16 = lp.bf16_forward;
  const XLayout x = x_layout(lp, d);
  int64_t L = c.L(), RSC = d.R * x.S * x.C, n = static_cast<int64_t>(points.size());
  c.w.line("const {}* wk = {};", bf16 ? "uint32_t" : "float", at(bf16 ? "wpairs" : "w", k0 * RSC));
  c.w.line("CNNC_OPAQUE(wk);");  // why: see the macro in the prelude (emit_prelude.cpp)
  for (const TilePoint& point : points)
    for (int64_t j = 0; j < size; ++j)
      c.w.line("V acc_{}_k{} = vbcast({});", point.name, j, at("b", k0 + j));
  auto tap = [&](int64_t r, int64_t s, const Expr& ch) {
    for (int64_t i = 0; i < n; ++i)
      c.w.line("x{} = {}({});", i, bf16 ? "vpload" : "vload",
               at("xw", ch * L + (r * d.Wp + s * x.s_step) * x.C * L + points[i].offset));
    for (int64_t j = 0; j < size; ++j) {
      c.w.line("wv = {}({});", bf16 ? "vpbcast" : "vbcast",
               at("wk", ch + j * RSC + (r * x.S + s) * x.C));
      for (int64_t i = 0; i < n; ++i) {
        const std::string& a = points[i].name;
        if (bf16)
          c.w.line("acc_{}_k{} = vdot(acc_{}_k{}, x{}, wv);", a, j, a, j, i);
        else
          c.w.line("acc_{}_k{} = vfma(x{}, wv, acc_{}_k{});", a, j, i, a, j);
      }
    }
  };
  std::string xs;
  for (int64_t i = 0; i < n; ++i) xs += fmt::format("{}x{}", i ? ", " : "", i);
  c.w.line("{} {}, wv;", bf16 ? "P" : "V", xs);
  if (lp.unroll_c) {
    for (int64_t r = 0; r < d.R; ++r)
      for (int64_t s = 0; s < x.S; ++s)
        for (int64_t ch = 0; ch < x.C; ++ch) tap(r, s, ch);
  } else {
    emit_loop(c.w, "ch", x.C, [&](const Expr& ch) {
      for (int64_t r = 0; r < d.R; ++r)
        for (int64_t s = 0; s < x.S; ++s) tap(r, s, ch);
    });
  }
}

// One register tile at output row p: `cols` output columns from q0 times `size` filters from
// k0, stored with relu applied where the layer has it.
void emit_forward_tile(EmitContext& c, const LayerPlan& lp, const ConvShape& d, const Expr& k0,
                       int64_t size, int64_t cols) {
  const dsl::Layer& l = *lp.layer;
  std::vector<TilePoint> points;
  for (int64_t i = 0; i < cols; ++i)
    points.push_back({fmt::format("q{}", i), i * d.sw * x_layout(lp, d).C * c.L()});
  emit_tile_sums(c, lp, d, k0, size, points);
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < size; ++j) {
      if (l.activation == dsl::Activation::relu)
        c.w.line("acc_q{}_k{} = vmax(acc_q{}_k{}, vzero());", i, j, i, j);
      c.w.line("vstore({}, acc_q{}_k{});", at("yo", (k0 + i * d.K + j) * c.L()), i, j);
    }
}

// The head of a forward function after its signature: w and b, and xp, the input as the
// products read it (padded, and in bf16 as pairs, with the weights' pairs in wpairs).
void emit_forward_input(EmitContext& c, const LayerPlan& lp, const ConvShape& d) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L();
  c.w.line("const float* w = {};", at("params", l.weight_offset));
  c.w.line("const float* b = {};", at("params", l.bias_offset));
  std::string x = c.input_of(lp.index);
  if (pads(l)) {
    // The first layer's input was loaded into the padded buffer already (load_block).
    if (lp.index > 0 || !c.plan.input_padded) emit_pad_copy(c, x, ws(lp.padded), d, l);
    x = ws(lp.padded);
  }
  if (!lp.bf16_forward || lp.winograd) {  // Winograd pairs its transformed tiles instead
    c.w.line("const float* xp = {};", x);
    return;
  }
  c.w.line("uint32_t* xpairs = (uint32_t*)({});", ws(lp.x_pairs));
  if (lp.bf16_columns) {  // x[h][w] with x[h][w + 1], zero past the right edge
    int64_t row = d.Wp * d.C * L;
    emit_loop(c.w, "h", d.Hp, [&](const Expr& h) {
      c.w.line("vpairs({}, {}, {}, 1, {}, {});", at("xpairs", h * row),
               at(std::string("(") + x + ")", h * row), d.Wp * d.C, d.C, (d.Wp - 1) * d.C);
    });
  } else {
    int64_t C = d.C / 2;
    c.w.line("vpairs(xpairs, {}, {}, 2, 1, {});", x, d.Hp * d.Wp * C, d.Hp * d.Wp * C);
  }
  c.w.line("const uint32_t* wpairs = {};", weights(lp.w_pairs));
  c.w.line("(void)w;");
  c.w.line("const uint32_t* xp = xpairs;");
}

void emit_forward(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  ConvShape d = shape_of(l);
  int64_t L = c.L(), C = x_layout(lp, d).C;
  function_comment(
      c, lp, Pass::forward,
      fmt::format("x [{}][{}][{}][L] -> y [{}][{}][{}][L]", d.Hp, d.Wp, d.C, d.P, d.Q, d.K),
      fmt::format("{} x {} in registers, {}", counted(lp.qblock, "column"),
                  counted(lp.kblock, "filter"),
                  lp.unroll_c ? "taps unrolled" : "a loop over the channels"));
  open_layer_function(c, lp, Pass::forward, params_and_ws);
  emit_forward_input(c, lp, d);
  c.w.line("float* y = {};", c.output_of(lp.index));
  emit_loop(c.w, "p", d.P, [&](const Expr& p) {
    // Tiles of qblock output columns x kblock filters; the columns and filters left over make
    // smaller tiles.
    emit_blocks(c.w, "q0", d.Q, std::min<int64_t>(lp.qblock, d.Q),
                [&](int64_t cols, const Expr& q0) {
                  c.w.line("const {}* xw = {};", lp.bf16_forward ? "uint32_t" : "float",
                           at("xp", p * (d.sh * d.Wp * C * L) + q0 * (d.sw * C * L)));
                  c.w.line("float* yo = {};", at("y", (p * d.Q + q0) * (d.K * L)));
                  emit_blocks(c.w, "k0", d.K, lp.kblock, [&](int64_t size, const Expr& k0) {
                    emit_forward_tile(c, lp, d, k0, size, cols);
                  });
                });
  });
  emit_activation_loop(c, l, "y", l.out.size() * L);
  c.w.close();
  c.w.blank();
}

// A conv and the max pool after it in one function (plan_model says when): each register tile
// holds every conv output of pool_qblock pooling windows for pool_kblock filters, and stores
// only their maximum after relu. The conv's output never reaches memory, and the pool's pass
// over it is gone. training: the variant training's forward calls, which also stores the kept
// element of each window for the pool's backward (emit_pool.cpp), where the backward would
// otherwise compare the conv's output with the maximum again.
void emit_forward_pooled(EmitContext& c, const LayerPlan& lp, bool training) {
  const dsl::Layer& l = *lp.layer;
  const LayerPlan& pool_lp = c.plan.layers[static_cast<size_t>(lp.index) + 1];
  const dsl::Layer& pool = *pool_lp.layer;
  ConvShape d = shape_of(l);
  int64_t L = c.L(), C = x_layout(lp, d).C, R = pool.kernel_h, S = pool.kernel_w;
  int64_t P = pool.out.h, Q = pool.out.w, row = d.sh * d.Wp * C * L, col = d.sw * C * L;
  const bool relu = l.activation == dsl::Activation::relu;
  c.w.comment(fmt::format(
      "{} and {} forward, {}: lines {}-{}: {}; {}\n{} -> {}; x [{}][{}][{}][L] -> {}'s y "
      "[{}][{}][{}][L]{}\nFused: {}'s output ({} bytes a block) is never stored, nor read again by "
      "the pool.\nThe sums add the taps in the order an unfused conv forward adds them, and "
      "relu and max are exact:\nthe bits of the two layers run apart.\nTile: {} x {} in "
      "registers ({} outputs each), {}.\nFLOPs: {} per block of {}.",
      l.name, pool.name, training ? "training" : "inference", l.line, pool.line, l.statement,
      pool.statement, l.in.str(), pool.out.str(), d.Hp, d.Wp, d.C, pool.name, P, Q, d.K,
      training
          ? fmt::format(",\nand kept [{}][{}][{}][L], bytes: where in its window, (r, s) in order, "
                        "each maximum\ncame from{}, for {}'s backward.",
                        P, Q, d.K, relu ? fmt::format(" ({} where relu left none)", R * S) : "",
                        pool.name)
          : "",
      l.name, dsl::with_thousands(l.out.size() * L * 4), counted(lp.pool_qblock, "pooling window"),
      counted(lp.pool_kblock, "filter"), R * S,
      lp.unroll_c ? "taps unrolled" : "a loop over the channels",
      dsl::with_thousands(pooled_forward_flops(c.plan, lp) * L), counted(L, "sample")));
  c.w.function("static {} void {}({})", c.kernel(), pooled_forward(c.plan, lp, training),
               params_and_ws);
  emit_forward_input(c, lp, d);
  c.w.line("float* y = {};", c.output_of(pool_lp.index));
  if (training) c.w.line("uint8_t* kept = (uint8_t*)({});", ws(lp.pool_kept));
  emit_loop(c.w, "p", P, [&](const Expr& p) {
    emit_blocks(c.w, "q0", Q, lp.pool_qblock, [&](int64_t windows, const Expr& q0) {
      c.w.line("const {}* xw = {};", lp.bf16_forward ? "uint32_t" : "float",
               at("xp", p * (pool.stride_h * row) + q0 * (pool.stride_w * col)));
      c.w.line("float* yo = {};", at("y", (p * Q + q0) * (d.K * L)));
      if (training) c.w.line("uint8_t* ko = {};", at("kept", (p * Q + q0) * (d.K * L)));
      // Window i's output (r, s) is the conv's at (p*sh + r, (q0 + i)*sw + s).
      std::vector<TilePoint> points;
      for (int64_t i = 0; i < windows; ++i)
        for (int64_t r = 0; r < R; ++r)
          for (int64_t s = 0; s < S; ++s)
            points.push_back(
                {fmt::format("w{}_r{}_s{}", i, r, s), r * row + (i * pool.stride_w + s) * col});
      emit_blocks(c.w, "k0", d.K, lp.pool_kblock, [&](int64_t size, const Expr& k0) {
        emit_tile_sums(c, lp, d, k0, size, points);
        for (int64_t i = 0; i < windows; ++i)
          for (int64_t j = 0; j < size; ++j) {
            std::vector<std::string> outputs;
            for (int64_t t = 0; t < R * S; ++t)
              outputs.push_back(fmt::format("acc_{}_k{}", points[i * R * S + t].name, j));
            emit_window_max(c, training, relu, outputs, fmt::format("{}_k{}", i, j),
                            (k0 + i * d.K + j) * L);
          }
      });
    });
  });
  c.w.close();
  c.w.blank();
}

}  // namespace

void emit_window_max(EmitContext& c, bool training, bool relu,
                     const std::vector<std::string>& outputs, const std::string& suffix,
                     const Expr& at_output) {
  // As <pool>_forward takes the maximum: the window's outputs in (r, s) order. Training starts
  // relu's from 0 with none kept: vmax(0, vmax(acc, 0)) is vmax(acc, 0), bit for bit.
  const int64_t n = static_cast<int64_t>(outputs.size());
  std::string m = "m" + suffix, kept = "kept" + suffix;
  if (training)
    c.w.line("V {} = {}; __m512i {} = vkept({});", m, relu ? "vzero()" : outputs[0], kept,
             relu ? n : 0);
  for (int64_t t = 0; t < n; ++t) {
    std::string y = relu ? fmt::format("vmax({}, vzero())", outputs[t]) : outputs[t];
    if (training) {
      if (relu || t > 0) c.w.line("vmax_keep({}, {}, {}, {});", m, kept, y, t);
    } else if (t == 0) {
      c.w.line("V {} = {};", m, y);
    } else {
      c.w.line("{} = vmax({}, {});", m, m, y);
    }
  }
  c.w.line("vstore({}, {});", at("yo", at_output), m);
  if (training) c.w.line("vstore_kept({}, {});", at("ko", at_output), kept);
}

void emit_conv_forward_input(EmitContext& c, const LayerPlan& lp) {
  emit_forward_input(c, lp, shape_of(*lp.layer));
}

namespace {

// bf16's weight gradient reads pairs of output columns q and q + 1 (dz's, and x's at columns
// q*sw + s and (q + 1)*sw + s), so that each vdot adds two terms of the sum over (p, q): the
// pairs are made here, once per block, from the fp32 dz and x.
void emit_column_pairs(EmitContext& c, const LayerPlan& lp, const ConvShape& d) {
  int64_t L = c.L(), row = d.Wp * d.C * L, Q2 = (d.Q + 1) / 2;
  c.w.line("uint32_t* dzq = (uint32_t*)({});", ws(lp.dzq_pairs));
  if (lp.dw_by_taps) {  // x's pairs are made as it is transposed (emit_x_by_sample)
    c.w.comment("dz[p][2j] with dz[p][2j + 1].");
  } else {
    c.w.line("uint32_t* xq = (uint32_t*)({});", ws(lp.xq_pairs));
    c.w.comment(
        "x[h][w] with x[h][w + sw] (zero past the right edge), dz[p][2j] with dz[p][2j + 1].");
    emit_loop(c.w, "h", d.Hp, [&](const Expr& h) {
      c.w.line("vpairs({}, {}, {}, 1, {}, {});", at("xq", h * row), at("xp", h * row), d.Wp * d.C,
               d.sw * d.C, (d.Wp - d.sw) * d.C);
    });
  }
  emit_loop(c.w, "p", d.P, [&](const Expr& p) {
    emit_loop(c.w, "j", Q2, [&](const Expr& j) {
      // The last pair of an odd Q has no second column.
      c.w.line("vpairs({}, {}, {}, 1, {}, {});", at("dzq", (p * Q2 + j) * (d.K * L)),
               at("dz", (p * d.Q + j * 2) * (d.K * L)), d.K, d.K,
               d.Q % 2 ? fmt::format("{} < {} ? {} : 0", j, Q2 - 1, d.K) : std::to_string(d.K));
    });
  });
}

// x (bf16: the column pairs) transposed to xs, one sample after another: what the weight
// gradient by taps, and by Winograd, read.
void emit_x_by_sample(EmitContext& c, const LayerPlan& lp, const ConvShape& d) {
  const bool bf16 = lp.dw_column_pairs();
  int64_t L = c.L(), N = d.Hp * d.Wp * d.C, row = d.Wp * d.C;
  // bf16: x[h][w] paired with x[h][w + sw] (zero past the right edge) as it is transposed.
  const int64_t pair_step = d.sw * d.C, paired = (d.Wp - d.sw) * d.C;
  if (bf16)
    c.w.line("uint32_t* xs = (uint32_t*)({});", ws(lp.x_by_sample));
  else
    c.w.line("float* xs = {};", ws(lp.x_by_sample));
  int64_t squares = N / L;  // blocks of L elements x L samples; the elements left over one by one
  emit_loop_line(
      c.w, "", "e", squares,
      [&](const Expr& e) {
        if (bf16)
          return fmt::format("vpairs_transposed({}, {}, {}, {}, {}, {}, {});", at("xs", e), N,
                             at("xp", e * L), e, row, pair_step, paired);
        return fmt::format("vtranspose({}, {}, {});", at("xs", e), N, at("xp", e * L));
      },
      0, L);
  emit_loop(
      c.w, "e", N - squares * L,
      [&](const Expr& e) {
        emit_loop_line(c.w, "", "lane", L, [&](const Expr& lane) {
          if (bf16)
            return fmt::format("xs[{}] = bf16_pair(xp[{}], ({}) % {} < {} ? xp[{}] : 0.0f);",
                               lane * N + e, e * L + lane, e, row, paired,
                               (e + pair_step) * L + lane);
          return fmt::format("xs[{}] = xp[{}];", lane * N + e, e * L + lane);
        });
      },
      squares * L);
}

// The weight gradient by taps (plan.cpp says when): x is transposed to one sample after
// another, then for each output row p, tiles of dw_kblock filters x dw_tblock vectors of taps of
// one kernel row add
//   dw[k][r][t] += sum_{p,q,lane} dz[p][q][k][lane] * x[lane][p*sh + r][q*sw][t]
// with the taps loaded and dz broadcast, every sample in turn at each position: the position's
// dz lines (one per filter, a sample in each lane) then serve all samples from L1. With the
// samples outermost, a broadcast's line served one sample per tile, and a filter's lines lie
// K * L floats apart (4 KiB for keras_mnist's 64 filters in AVX-512), all in one L1 set, so
// they came from L2 again at every tile: conv2's weight gradient took 1.18-1.19x as long as its
// input gradient (perf samples of the Clang build, 12,800 images on one thread), 1.07-1.11x now;
// bf16 1.30-1.33x, 1.25-1.26x now. One row per pass over the tiles: its x rows and dz row for
// every sample (keras_mnist's conv2: 252 KiB) stay in L2 while every tile passes, and a tile
// reloads its accumulators once per row, for 384 positions and samples; chunks of 2, 4 and 12
// rows took 1.04x, 1.2x and 1.4x as long (they crowd L2).
// bf16 transposes the column pairs of emit_column_pairs instead of x and broadcasts a pair of
// dz, so that each vdot adds the terms of columns 2j and 2j + 1.
void emit_weights_by_taps(EmitContext& c, const LayerPlan& lp, const ConvShape& d) {
  const bool bf16 = lp.bf16_dw;
  const char* type = bf16 ? "uint32_t" : "float";
  int64_t L = c.L(), T = d.S * d.C, N = d.Hp * d.Wp * d.C, row = d.Wp * d.C;
  // bf16: j = q / 2 over pairs of columns, each pair 2*sw columns of x after the previous one.
  const int64_t Q = bf16 ? (d.Q + 1) / 2 : d.Q, q_step = (bf16 ? 2 : 1) * d.sw * d.C;
  emit_loop(c.w, "p", d.P, [&](const Expr& p) {
    emit_blocks(c.w, "k0", d.K, lp.dw_kblock, [&](int64_t filters, const Expr& k0) {
      emit_loop(c.w, "r", d.R, [&](const Expr& r) {
        emit_blocks(c.w, "v0", T / L, lp.dw_tblock, [&](int64_t vectors, const Expr& v0) {
          c.w.line("float* dwt = {};", at("dw", (k0 * d.R + r) * T + v0 * L));
          for (int64_t j = 0; j < filters; ++j)
            for (int64_t i = 0; i < vectors; ++i)
              c.w.line("V acc_k{}_v{} = vload({});", j, i, at("dwt", (j * d.R * T + i * L)));
          c.w.line("const {}* xt = {};", type, at("xs", r * row + v0 * L + p * (d.sh * row)));
          c.w.line("const {}* dzl = {};", type, at(bf16 ? "dzq" : "dz", k0 * L + p * Q * d.K * L));
          emit_loop(c.w, bf16 ? "j" : "q", Q, [&](const Expr& q) {
            emit_loop(c.w, "lane", L, [&](const Expr& lane) {
              c.w.line("const {}* xr = {};", type, at("xt", lane * N + q * q_step));
              c.w.line("const {}* dzo = {};", type, at("dzl", q * (d.K * L) + lane));
              for (int64_t i = 0; i < vectors; ++i)
                c.w.line("{} x{} = {}({});", bf16 ? "P" : "V", i, bf16 ? "vploadu" : "vloadu",
                         at("xr", i * L));
              emit_broadcast_products(c, bf16, filters, vectors,
                                      [&](int64_t j) { return at("dzo", j * L); });
            });
          });
          for (int64_t j = 0; j < filters; ++j)
            for (int64_t i = 0; i < vectors; ++i)
              c.w.line("vstore({}, acc_k{}_v{});", at("dwt", j * d.R * T + i * L), j, i);
        });
      });
    });
  });
}

// Whether the backward pass of a conv sums its bias gradient in the relu's pass over dz rather
// than in backward_weights (which then computes the weights' alone).
bool bias_with_relu(const dsl::Layer& l) {
  return l.trainable() && l.activation == dsl::Activation::relu;
}

// The weight gradient of one block,
//   dw[k][r][t] += sum_{p,q} dz[p][q][k] * x[p*sh + r][q*sw][t],  t = s*C + c in [0, S*C)
// by taps or by Winograd into the slice's sums where plan.cpp says so (emit_weights_by_taps,
// emit_winograd_backward_weights); otherwise here, as per-lane partials (lanes are summed once per
// slice) over tiles of dw_kblock filters x dw_tblock taps held in registers for the whole (p, q)
// loop.
void emit_backward_weights(EmitContext& c, const LayerPlan& lp, const ConvShape& d) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), T = d.S * d.C, row = d.Wp * d.C * L;
  const std::string dw_shape =
      lp.dw_by_taps ? fmt::format("dw [{}][{}][{}] summed over the samples", d.K, d.R, T)
                    : fmt::format("per-lane partials dw [{}][{}][{}][L]", d.K, d.R, T);
  function_comment(c, lp, Pass::backward_weights,
                   fmt::format("dz [{}][{}][{}][L], x [{}][{}][{}][L] -> {} (t = s*C + c){}", d.P,
                               d.Q, d.K, d.Hp, d.Wp, d.C, dw_shape,
                               !bias_with_relu(l) ? fmt::format(", db [{}][L]", d.K)
                               : lp.relu_in_pool  ? "; db in the max pool's backward"
                                                  : "; db in the backward pass"),
                   lp.winograd_dw
                       ? fmt::format("Winograd F(3x3, 2x2){}: {} x {} of channels in registers "
                                     "at each of the 16 positions, groups of {} of a row",
                                     lp.bf16_dw ? ", pairs of samples" : "",
                                     counted(lp.winograd_dw_kblock, "filter"),
                                     counted(lp.winograd_dw_vectors, "vector"),
                                     counted(lp.winograd_dw_tiles, "tile"))
                       : fmt::format("{}{}{} x {} in registers, {} of output at a time",
                                     lp.dw_by_taps ? "every sample at each position: " : "",
                                     lp.dw_by_taps && lp.bf16_dw ? "pairs of output columns, " : "",
                                     counted(lp.dw_kblock, "filter"),
                                     counted(lp.dw_tblock, lp.dw_by_taps ? "vector" : "tap"),
                                     lp.dw_by_taps ? "one row" : counted(lp.dw_prows, "row")));
  open_layer_function(c, lp, Pass::backward_weights, params_and_ws);
  c.w.line("(void)params;");
  c.w.line("const float* dz = {};", c.grad_of(lp.index));
  c.w.line("const float* xp = {};", pads(l) ? ws(lp.padded) : c.input_of(lp.index));
  c.w.line("float* dw = {};", ws(lp.lane_dw));
  if (!bias_with_relu(l)) {
    c.w.line("float* db = {};", ws(lp.lane_db));
    emit_loop(c.w, "k", d.K, [&](const Expr& k) {
      c.w.line("V bias = vload({});", at("db", k * L));
      emit_loop_line(c.w, "", "pq", d.P * d.Q, [&](const Expr& pq) {
        return fmt::format("bias = vadd(bias, vload({}));", at("dz", (pq * d.K + k) * L));
      });
      c.w.line("vstore({}, bias);", at("db", k * L));
    });
  }
  // bf16: pairs of columns, j = q / 2, and vdot for vfma.
  const bool bf16 = lp.bf16_dw;
  if (lp.dw_column_pairs()) emit_column_pairs(c, lp, d);
  if (lp.dw_by_taps) {
    emit_x_by_sample(c, lp, d);
    if (lp.winograd_dw)
      emit_winograd_backward_weights(c, lp);
    else
      emit_weights_by_taps(c, lp, d);
    c.w.close();
    c.w.blank();
    return;
  }
  const int64_t Q = bf16 ? (d.Q + 1) / 2 : d.Q;
  const char* type = bf16 ? "uint32_t" : "float";
  const char* vec = bf16 ? "P" : "V";
  const char* load = bf16 ? "vpload" : "vload";
  // Output rows dw_prows at a time (cache blocking); every tile of the layer passes over them.
  emit_blocks(c.w, "p0", d.P, lp.dw_prows, [&](int64_t prows, const Expr& p0) {
    emit_blocks(c.w, "k0", d.K, lp.dw_kblock, [&](int64_t filters, const Expr& k0) {
      emit_loop(c.w, "r", d.R, [&](const Expr& r) {
        emit_blocks(c.w, "t0", T, lp.dw_tblock, [&](int64_t taps, const Expr& t0) {
          c.w.line("float* dwt = {};", at("dw", ((k0 * d.R + r) * T + t0) * L));
          for (int64_t j = 0; j < filters; ++j)
            for (int64_t i = 0; i < taps; ++i)
              c.w.line("V acc_k{}_t{} = vload({});", j, i, at("dwt", (j * d.R * T + i) * L));
          c.w.line("const {}* xt = {};", type, at(bf16 ? "xq" : "xp", r * row + t0 * L));
          emit_loop(
              c.w, "p", prows,
              [&](const Expr& p) {
                emit_loop(c.w, bf16 ? "j" : "q", Q, [&](const Expr& q) {
                  c.w.line("const {}* xr = {};", type,
                           at("xt", p * (d.sh * row) + q * ((bf16 ? 2 : 1) * d.sw * d.C * L)));
                  c.w.line("const {}* dzo = {};", type,
                           at(bf16 ? "dzq" : "dz", ((p * Q + q) * d.K + k0) * L));
                  for (int64_t j = 0; j < filters; ++j)
                    c.w.line("{} d{} = {}({});", vec, j, load, at("dzo", j * L));
                  for (int64_t i = 0; i < taps; ++i) {
                    c.w.line("{} x{} = {}({});", vec, i, load, at("xr", i * L));
                    for (int64_t j = 0; j < filters; ++j) {
                      if (bf16)
                        c.w.line("acc_k{}_t{} = vdot(acc_k{}_t{}, d{}, x{});", j, i, j, i, j, i);
                      else
                        c.w.line("acc_k{}_t{} = vfma(d{}, x{}, acc_k{}_t{});", j, i, j, i, j, i);
                    }
                  }
                });
              },
              p0);
          for (int64_t j = 0; j < filters; ++j)
            for (int64_t i = 0; i < taps; ++i)
              c.w.line("vstore({}, acc_k{}_t{});", at("dwt", (j * d.R * T + i) * L), j, i);
        });
      });
    });
  });
  c.w.close();
  c.w.blank();
}

// The input gradient: every output gradient scattered back through the filters,
//   dx[p*sh + r][q*sw][t] += sum_k w[k][r][t] * dz[p][q][k],  t = s*C + c
// A tile takes dx_qblock columns q of dz and the dx columns q*sw + s they reach in one dx row,
// dx_cblock channels of each, in registers while all K filters add into them: per filter it
// loads each dz column once and broadcasts each weight once for all of them.
void emit_backward_data(EmitContext& c, const LayerPlan& lp, const ConvShape& d) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), T = d.S * d.C, RSC = d.R * T, row = d.Wp * d.C * L;
  function_comment(c, lp, Pass::backward_data,
                   fmt::format("dz [{}][{}][{}][L] -> dx [{}][{}][{}][L]{}", d.P, d.Q, d.K, d.H,
                               d.W, d.C, pads(l) ? ", through the padded buffer" : ""),
                   fmt::format("the dx columns that {} of dz reach, {} of each, in registers, "
                               "every filter added into them",
                               counted(lp.dx_qblock, "column"), counted(lp.dx_cblock, "channel")));
  open_layer_function(c, lp, Pass::backward_data, params_and_ws);
  if (!lp.bf16_dx) {
    c.w.line("const float* w = {};", at("params", l.weight_offset));
    c.w.line("const float* dz = {};", c.grad_of(lp.index));
  }
  c.w.line("float* dxp = {};", pads(l) ? ws(lp.dpadded) : c.grad_of(lp.index - 1));
  // When the filters reach every dx position, the first tile to reach one starts its sums from
  // zero instead of from dx, and dx needs no clearing (a pass over a buffer larger than L2).
  const bool covers = d.sh <= d.R && d.sw <= d.S && (d.P - 1) * d.sh + d.R == d.Hp &&
                      (d.Q - 1) * d.sw + d.S == d.Wp;
  if (!covers) c.w.line("std::memset(dxp, 0, {} * sizeof(float));", d.Hp * d.Wp * d.C * L);
  if (lp.bf16_dx) {
    // bf16: pairs of filters k and k + 1, of dz and of the weights (wt_pairs, prepared once per
    // step or by this call), so that each vdot adds two filters.
    int64_t K2 = (d.K + 1) / 2;
    c.w.line("(void)params;");
    c.w.line("uint32_t* dzp = (uint32_t*)({});", ws(lp.dz_pairs));
    c.w.line("const uint32_t* w = {};", weights(lp.wt_pairs));
    emit_loop(c.w, "pq", d.P * d.Q, [&](const Expr& pq) {
      c.w.line("vpairs({}, {}, {}, 2, 1, {});", at("dzp", pq * (K2 * L)),
               at(c.grad_of(lp.index), pq * (d.K * L)), K2, d.K / 2);
    });
    c.w.line("const uint32_t* dz = dzp;");
  }
  const int64_t K = lp.bf16_dx ? (d.K + 1) / 2 : d.K;
  const char* type = lp.bf16_dx ? "uint32_t" : "float";
  emit_loop(c.w, "p", d.P, [&](const Expr& p) {
    emit_blocks(c.w, "q0", d.Q, lp.dx_qblock, [&](int64_t cols, const Expr& q0) {
      c.w.line("const {}* dzo = {};", type, at("dz", (p * d.Q + q0) * (K * L)));
      emit_loop(c.w, "r", d.R, [&](const Expr& r) {
        c.w.line("float* dxr = {};", at("dxp", (p * d.sh + r) * row + q0 * (d.sw * d.C * L)));
        c.w.line("const {}* wr = {};", type, at("w", r * T));
        // Row p*sh + r is new at the first p to reach it: p = 0, or when p - 1 cannot (r + sh
        // >= R); a new row's columns are new but for the S - sw that the tile before this one
        // (q0 - dx_qblock) reached too.
        Condition new_row = constant(false), new_tile = constant(false);
        if (covers) {
          new_row = named(c.w, "new_row", any_of(is_zero(p), at_least(r, d.R - d.sh)),
                          "no earlier p reached this dx row");
          if (d.S > d.sw)  // else no column of a tile was the tile before's too
            new_tile = named(c.w, "new_tile", all_of(new_row, is_zero(q0)), "nor any tile of it");
        }
        emit_blocks(c.w, "c0", d.C, lp.dx_cblock, [&](int64_t chans, const Expr& c0) {
          // acc<x>_<j>: dx column x of the tile (q0*sw + x of the row), channel c0 + j; only the
          // columns some (i, s) reach, i*sw + s = x, when the stride skips some.
          int64_t span = (cols - 1) * d.sw + d.S;
          std::vector<bool> reached(static_cast<size_t>(span), false);
          for (int64_t i = 0; i < cols; ++i)
            for (int64_t s = 0; s < d.S; ++s) reached[static_cast<size_t>(i * d.sw + s)] = true;
          auto dx_at = [&](int64_t x, int64_t j) { return at("dxr", c0 * L + (x * d.C + j) * L); };
          for (int64_t x = 0; x < span; ++x) {
            const Condition& fresh = x >= d.S - d.sw ? new_row : new_tile;
            for (int64_t j = 0; reached[static_cast<size_t>(x)] && j < chans; ++j) {
              std::string load = fmt::format("vload({})", dx_at(x, j));
              c.w.line("V acc{}_{} = {};", x, j,
                       fresh.is(true)    ? "vzero()"
                       : fresh.is(false) ? load
                                         : fmt::format("{} ? vzero() : {}", fresh.text, load));
            }
          }
          emit_loop(c.w, "k", K, [&](const Expr& k) {
            for (int64_t i = 0; i < cols; ++i)
              c.w.line("const {} dz{} = {}({});", lp.bf16_dx ? "P" : "V", i,
                       lp.bf16_dx ? "vpload" : "vload", at("dzo", (k + i * K) * L));
            c.w.line("{} wv;", lp.bf16_dx ? "P" : "V");
            for (int64_t s = 0; s < d.S; ++s)
              for (int64_t j = 0; j < chans; ++j) {
                c.w.line("wv = {}({});", lp.bf16_dx ? "vpbcast" : "vbcast",
                         at("wr", k * RSC + c0 + (s * d.C + j)));
                for (int64_t i = 0; i < cols; ++i) {
                  std::string acc = fmt::format("acc{}_{}", i * d.sw + s, j);
                  if (lp.bf16_dx)
                    c.w.line("{} = vdot({}, dz{}, wv);", acc, acc, i);
                  else
                    c.w.line("{} = vfma(dz{}, wv, {});", acc, i, acc);
                }
              }
          });
          for (int64_t x = 0; x < span; ++x)
            for (int64_t j = 0; reached[static_cast<size_t>(x)] && j < chans; ++j)
              c.w.line("vstore({}, acc{}_{});", dx_at(x, j), x, j);
        });
      });
    });
  });
  if (pads(l)) {  // crop the padding away
    int64_t in_row = d.W * d.C * L;
    emit_loop(c.w, "h", d.H, [&](const Expr& h) {
      c.w.line("std::memcpy({}, {}, {} * sizeof(float));", at(c.grad_of(lp.index - 1), h * in_row),
               at("dxp", (h + l.pad_top) * row + l.pad_left * d.C * L), in_row);
    });
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
  if (lp.needs_dx) {
    if (lp.winograd_dx)
      emit_winograd_backward_data(c, lp);
    else
      emit_backward_data(c, lp, d);
  }
  const std::string through =
      lp.relu_in_pool
          ? fmt::format("dz = dy * f'(z){} from {}'s backward", bias_with_relu(l) ? " and db" : "",
                        c.plan.layers[lp.index + 1].layer->name)
      : bias_with_relu(l)
          ? fmt::format("dy -> dz = dy * f'(z) in place, adding dz into db [{}][L]", d.K)
          : "dy -> dz = dy * f'(z) in place";
  function_comment(c, lp, Pass::backward, through + "; then the gradients",
                   lp.relu_in_pool
                       ? "the gradients as their functions say"
                       : "one vector at a time for f'(z); the gradients as their functions say");
  open_layer_function(c, lp, Pass::backward, params_and_ws);
  if (lp.relu_in_pool) {
    // dz and db were made by the max pool's backward
  } else if (bias_with_relu(l)) {
    // The bias gradient adds each dz as f'(z) makes it, in the (p, q) order the separate sum
    // took, so the bits are the same and dz, larger than L2, is read once rather than twice.
    c.w.line("float* dz = {};", c.grad_of(lp.index));
    c.w.line("const float* y = {};", c.output_of(lp.index));  // f'(z) is read off the output
    c.w.line("float* db = {};", ws(lp.lane_db));
    emit_loop(c.w, "pq", d.P * d.Q, [&](const Expr& pq) {
      emit_loop(c.w, "k", d.K, [&](const Expr& k) {
        const Expr e = (pq * d.K + k) * c.L();
        c.w.line("const V g = {};", relu_backward(fmt::format("vload({})", at("y", e)),
                                                  fmt::format("vload({})", at("dz", e))));
        c.w.line("vstore({}, g);", at("dz", e));
        c.w.line("vstore({}, vadd(vload({}), g));", at("db", k * c.L()), at("db", k * c.L()));
      });
    });
  } else if (has_derivative(l)) {
    c.w.line("float* dz = {};", c.grad_of(lp.index));
    c.w.line("const float* y = {};", c.output_of(lp.index));  // f'(z) is read off the output
    emit_activation_backward_loop(c, l, "y", "dz", l.out.size() * c.L());
  }
  if (l.trainable()) c.w.line("{}_backward_weights(params, ws);", l.name);
  if (lp.needs_dx) c.w.line("{}_backward_data(params, ws);", l.name);
  c.w.close();
  c.w.blank();
}

}  // namespace

void emit_conv(EmitContext& c, const LayerPlan& lp) {
  if (lp.pool_fused) {  // the conv and the pool after it in one function, no other forward
    for (bool training : {false, true}) {
      if (training && !lp.pool_kept.floats) continue;
      if (lp.winograd)
        emit_winograd_forward(c, lp, true, training);
      else
        emit_forward_pooled(c, lp, training);
    }
  } else if (lp.winograd) {
    emit_winograd_forward(c, lp, false, false);
  } else {
    emit_forward(c, lp);
  }
  emit_backward(c, lp);
}

void emit_broadcast_products(EmitContext& c, bool bf16, int64_t filters, int64_t vectors,
                             const std::function<std::string(int64_t j)>& value_of) {
  for (int64_t j = 0; j < filters; ++j) {
    c.w.line("{} d{} = {}({});", bf16 ? "P" : "V", j, bf16 ? "vpbcast" : "vbcast", value_of(j));
    for (int64_t i = 0; i < vectors; ++i) {
      if (bf16)
        c.w.line("acc_k{}_v{} = vdot(acc_k{}_v{}, x{}, d{});", j, i, j, i, i, j);
      else
        c.w.line("acc_k{}_v{} = vfma(x{}, d{}, acc_k{}_v{});", j, i, i, j, j, i);
    }
  }
}

}  // namespace cnnc::codegen
