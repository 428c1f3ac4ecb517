// Convolution forward by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016), for one block of L samples in the lanes.
//
// Each 2x2 tile of outputs y[2i + a][2j + b][k] comes from the 4x4 tile x_t of x at (2i, 2j):
//   y_t[k] = b[k] + A^T ( sum_c U[k][c] (.) V[c] ) A,   V[c] = B^T x_t[c] B,   U[k][c] = G w[k][c]
//   G^T B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1], G = [1 0 0; 1/2
//   1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
// with (.) elementwise over the 16 positions xi of a 4x4 tile: 16 multiply-adds per channel and
// filter where the direct sum takes 36 (4 outputs x 9 taps). At each position the sum over
// channels is a product of the tiles' V (vectors of L samples) with U (broadcast), as a direct
// tap is. U is prepared once per step (winograd_filters); V is made per group of tiles, and the
// group's sums wait in winograd_m for the output transform.
//
// The sums round differently from the direct ones (in fp32 within a few units of the last place
// of the terms; bf16 rounds V and U instead of x and w), so this forward does not give the
// direct forward's bits. FLOPs are still counted as the direct sum's: the work a layer does, so
// that the engines' GFLOP/s compare (docs/codegen.md).
#include <fmt/format.h>

#include "codegen/emit.hpp"

namespace cnnc::codegen {

namespace {

// Unrolled products stay a few hundred lines, as the direct forward's taps (plan.cpp, unroll_c).
constexpr int64_t kUnrolledProducts = 512;

struct WinogradShape {
  int64_t C;      // the channels as the products read them: C, or bf16's C / 2 pairs
  int64_t K;      // filters
  int64_t Wp;     // x's columns (padded)
  int64_t rows;   // rows of tiles
  int64_t tiles;  // tiles a row
  int64_t T;      // tiles of a group (LayerPlan::winograd_tiles)
  int64_t KB;     // filters of a group (LayerPlan::winograd_kblock)
};

// V of `count` tiles of row i from tile j0: v[t][xi][c] = (B^T x_t[c] B)[xi], in bf16 the pairs
// of channels 2c and 2c + 1. B^T d takes the rows of the tile, then the same on the columns.
void emit_input_transform(EmitContext& c, const LayerPlan& lp, const WinogradShape& s,
                          const Expr& i, const Expr& j0, int64_t count) {
  const bool bf16 = lp.bf16_forward;
  const int64_t L = c.L(), C = lp.layer->in.c;
  emit_loop(c.w, "t", count, [&](const Expr& t) {
    c.w.line("const float* xt = {};", at("xp", (i * (2 * s.Wp) + (j0 + t) * 2) * (C * L)));
    emit_loop(c.w, "ch", s.C, [&](const Expr& ch) {
      for (int h = 0; h < (bf16 ? 2 : 1); ++h) {
        // Channel h of the pair: x<h> its tile's first row, d its rows, e = B^T d, v<h>_ V.
        const std::string x = fmt::format("x{}", h);
        c.w.line("const float* {} = {};", x, at("xt", ch * ((bf16 ? 2 : 1) * L) + h * L));
        for (int r = 0; r < 4; ++r)
          c.w.line(
              "const V d{0}_{1}0 = vload({2}), d{0}_{1}1 = vload({3}), d{0}_{1}2 = vload({4}), "
              "d{0}_{1}3 = vload({5});",
              h, r, at(x, (r * s.Wp) * C * L), at(x, (r * s.Wp + 1) * C * L),
              at(x, (r * s.Wp + 2) * C * L), at(x, (r * s.Wp + 3) * C * L));
        for (int q = 0; q < 4; ++q)
          c.w.line(
              "const V e{0}_0{1} = vsub(d{0}_0{1}, d{0}_2{1}), e{0}_1{1} = vadd(d{0}_1{1}, "
              "d{0}_2{1}), e{0}_2{1} = vsub(d{0}_2{1}, d{0}_1{1}), e{0}_3{1} = vsub(d{0}_1{1}, "
              "d{0}_3{1});",
              h, q);
        for (int r = 0; r < 4; ++r)
          c.w.line(
              "const V v{0}_{1} = vsub(e{0}_{2}0, e{0}_{2}2), v{0}_{3} = vadd(e{0}_{2}1, "
              "e{0}_{2}2), v{0}_{4} = vsub(e{0}_{2}2, e{0}_{2}1), v{0}_{5} = vsub(e{0}_{2}1, "
              "e{0}_{2}3);",
              h, 4 * r, r, 4 * r + 1, 4 * r + 2, 4 * r + 3);
      }
      for (int xi = 0; xi < 16; ++xi) {
        const Expr to = ((t * 16 + xi) * s.C + ch) * L;
        if (bf16)
          c.w.line("vpstore({}, vpair(v0_{}, v1_{}));", at("v", to), xi, xi);
        else
          c.w.line("vstore({}, v0_{});", at("v", to), xi);
      }
    });
  });
}

// The sums of `count` tiles x `size` filters from k0 at every position xi, into m[xi][t][j]:
// each channel (bf16: pair) loads one V per tile and broadcasts one U per filter.
void emit_products(EmitContext& c, const LayerPlan& lp, const WinogradShape& s, const Expr& k0,
                   int64_t count, int64_t size) {
  const bool bf16 = lp.bf16_forward;
  const int64_t L = c.L();
  const Expr xi = Expr::var("xi");
  c.w.open("for (int xi = 0; xi < 16; ++xi)");
  c.w.line("const {}* uk = {};", bf16 ? "uint32_t" : "float", at("u", xi * (s.K * s.C) + k0 * s.C));
  c.w.line("CNNC_OPAQUE(uk);");  // why: see the macro in the prelude (emit_prelude.cpp)
  c.w.line("const {}* vx = {};", bf16 ? "uint32_t" : "float", at("v", xi * (s.C * L)));
  for (int64_t t = 0; t < count; ++t)
    for (int64_t j = 0; j < size; ++j) c.w.line("V acc_t{}_k{} = vzero();", t, j);
  std::string names;
  for (int64_t t = 0; t < count; ++t) names += fmt::format("a{}, ", t);
  c.w.line("{} {}wv;", bf16 ? "P" : "V", names);
  auto channel = [&](const Expr& ch) {
    for (int64_t t = 0; t < count; ++t)
      c.w.line("a{} = {}({});", t, bf16 ? "vpload" : "vload",
               at("vx", ch * L + t * (16 * s.C * L)));
    for (int64_t j = 0; j < size; ++j) {
      c.w.line("wv = {}({});", bf16 ? "vpbcast" : "vbcast", at("uk", ch + j * s.C));
      for (int64_t t = 0; t < count; ++t) {
        if (bf16)
          c.w.line("acc_t{}_k{} = vdot(acc_t{}_k{}, a{}, wv);", t, j, t, j, t);
        else
          c.w.line("acc_t{}_k{} = vfma(a{}, wv, acc_t{}_k{});", t, j, t, t, j);
      }
    }
  };
  if (s.C * count * size <= kUnrolledProducts) {
    for (int64_t ch = 0; ch < s.C; ++ch) channel(ch);
  } else {
    c.w.open("for (int ch = 0; ch < {}; ++ch)", s.C);
    channel(Expr::var("ch"));
    c.w.close();
  }
  for (int64_t t = 0; t < count; ++t)
    for (int64_t j = 0; j < size; ++j)
      c.w.line("vstore({}, acc_t{}_k{});", at("m", xi * (s.T * s.KB * L) + (t * s.KB + j) * L), t,
               j);
  c.w.close();
}

}  // namespace

void emit_winograd_forward(EmitContext& c, const LayerPlan& lp, bool pooled, bool training) {
  const dsl::Layer& l = *lp.layer;
  const bool bf16 = lp.bf16_forward;
  const LayerPlan* pool_lp = pooled ? &c.plan.layers[static_cast<size_t>(lp.index) + 1] : nullptr;
  const int64_t L = c.L();
  WinogradShape s{bf16 ? l.in.c / 2 : l.in.c,
                  l.units,
                  l.in.w + l.pad_left + l.pad_right,
                  pooled ? pool_lp->layer->out.h : l.out.h / 2,
                  pooled ? pool_lp->layer->out.w : l.out.w / 2,
                  lp.winograd_tiles,
                  lp.winograd_kblock};
  const bool relu = l.activation == dsl::Activation::relu;
  const std::string tile =
      fmt::format("Winograd F(2x2, 3x3): {} x {} in registers at each of the 16 positions",
                  counted(s.T, "tile"), counted(s.KB, "filter"));
  const std::string layout =
      fmt::format("x [{}][{}][{}][L] -> ", l.in.h + l.pad_top + l.pad_bottom, s.Wp, l.in.c);
  if (pooled) {
    const dsl::Layer& pool = *pool_lp->layer;
    c.w.comment(fmt::format(
        "{} and {} forward, {}: lines {}-{}: {}; {}\n{}{}'s y [{}][{}][{}][L]{}\nFused: a tile of "
        "2x2 outputs is a pooling window; {}'s output is never stored.\n{}.\nFLOPs: {} per "
        "block of {}, counted as the direct sum's (emit_winograd.cpp).",
        l.name, pool.name, training ? "training" : "inference", l.line, pool.line, l.statement,
        pool.statement, layout, pool.name, pool.out.h, pool.out.w, l.units,
        training ? fmt::format(",\nand kept [{}][{}][{}][L], bytes: where in its window, (r, s) in "
                               "order, each maximum\ncame from{}, for {}'s backward.",
                               pool.out.h, pool.out.w, l.units,
                               relu ? " (4 where relu left none)" : "", pool.name)
                 : "",
        l.name, tile, dsl::with_thousands(pooled_forward_flops(c.plan, lp) * L),
        counted(L, "sample")));
    c.w.function("static {} void {}({})", c.kernel(), pooled_forward(c.plan, lp, training),
                 params_and_ws);
  } else {
    function_comment(c, lp, Pass::forward,
                     layout + fmt::format("y [{}][{}][{}][L]", l.out.h, l.out.w, l.units), tile);
    open_layer_function(c, lp, Pass::forward, params_and_ws);
  }
  emit_conv_forward_input(c, lp);
  c.w.line("(void)w;");
  const std::string word = bf16 ? "uint32_t" : "float";
  c.w.line("{0}* v = ({0}*)({1});", word, ws(lp.winograd_v));
  c.w.line("const {0}* u = (const {0}*)({1});", word, weights(lp.winograd_u));
  c.w.line("float* m = {};", ws(lp.winograd_m));
  c.w.line("float* y = {};", c.output_of(pooled ? pool_lp->index : lp.index));
  if (training) c.w.line("uint8_t* kept = (uint8_t*)({});", ws(lp.pool_kept));
  emit_loop(c.w, "i", s.rows, [&](const Expr& i) {
    emit_blocks(c.w, "j0", s.tiles, s.T, [&](int64_t count, const Expr& j0) {
      emit_input_transform(c, lp, s, i, j0, count);
      emit_blocks(c.w, "k0", s.K, s.KB, [&](int64_t size, const Expr& k0) {
        emit_products(c, lp, s, k0, count, size);
        // A^T M A by rows then columns, and the bias, for each tile and filter.
        emit_loop(c.w, "t", count, [&](const Expr& t) {
          if (pooled) {
            c.w.line("float* yo = {};", at("y", (i * s.tiles + j0 + t) * (s.K * L)));
            if (training)
              c.w.line("uint8_t* ko = {};", at("kept", (i * s.tiles + j0 + t) * (s.K * L)));
          } else {
            c.w.line("float* yo = {};", at("y", (i * (2 * l.out.w) + (j0 + t) * 2) * (s.K * L)));
          }
          for (int64_t j = 0; j < size; ++j) {
            c.w.open_scope("one filter's tile");
            const Expr mt = (t * s.KB + j) * L;
            for (int xi = 0; xi < 16; ++xi)
              c.w.line("const V m{} = vload({});", xi, at("m", mt + xi * (s.T * s.KB * L)));
            for (int q = 0; q < 4; ++q)
              c.w.line(
                  "const V r0{0} = vadd(vadd(m{0}, m{1}), m{2}), r1{0} = vsub(vsub(m{1}, "
                  "m{2}), m{3});",
                  q, q + 4, q + 8, q + 12);
            c.w.line("const V bias = vbcast({});", at("b", k0 + j));
            for (int a = 0; a < 2; ++a)
              c.w.line(
                  "const V y{0}0 = vadd(vadd(vadd(r{0}0, r{0}1), r{0}2), bias), y{0}1 = "
                  "vadd(vsub(vsub(r{0}1, r{0}2), r{0}3), bias);",
                  a);
            if (pooled) {
              emit_window_max(c, training, relu, {"y00", "y01", "y10", "y11"}, "_window",
                              (k0 + j) * L);
            } else {
              for (int a = 0; a < 2; ++a)
                for (int b = 0; b < 2; ++b) {
                  std::string y = fmt::format("y{}{}", a, b);
                  if (relu) y = fmt::format("vmax({}, vzero())", y);
                  c.w.line("vstore({}, {});",
                           at("yo", (k0 + j) * L + (a * l.out.w + b) * (s.K * L)), y);
                }
            }
            c.w.close();
          }
        });
      });
    });
  });
  if (!pooled) emit_activation_loop(c, l, "y", l.out.size() * L);
  c.w.close();
  c.w.blank();
}

}  // namespace cnnc::codegen
