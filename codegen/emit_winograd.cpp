// Convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016), for one block of L samples in the lanes: the forward,
// and the input gradient as a forward of dz padded by 2 with the filters turned by 180 degrees
// and channels and filters swapped; and the weight gradient by F(3x3, 2x2) (at the end).
//
// Each 2x2 tile of outputs y[2i + a][2j + b][k] comes from the 4x4 tile x_t of x at (2i, 2j):
//   y_t[k] = b[k] + A^T ( sum_c U[k][c] (.) V[c] ) A
//   V[c] = B^T x_t[c] B,  U[k][c] = G w[k][c] G^T
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1]
//   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
// with (.) elementwise over the 16 positions xi of a 4x4 tile: 16 multiply-adds per channel and
// filter where the direct sum takes 36 (4 outputs x 9 taps). At each position the sum over
// channels is a product of the tiles' V (vectors of L samples) with U (broadcast), as a direct
// tap is. U is prepared once per step (winograd_filters); V is made per group of tiles, and the
// group's sums wait in winograd_m for the output transform.
//
// The sums round differently from the direct ones (in fp32 within a few units of the last place
// of the terms; bf16 rounds V and U instead of x and w), so these functions do not give the
// direct ones' bits. FLOPs are still counted as the direct sum's: the work a layer does, so that
// the engines' GFLOP/s compare (docs/codegen.md).
#include <fmt/format.h>

#include <functional>
#include <string>

#include "codegen/emit.hpp"

namespace cnnc::codegen {

namespace {

// Unrolled products stay a few hundred lines, as the direct forward's taps (plan.cpp, unroll_c).
constexpr int64_t kUnrolledProducts = 512;

// One convolution by F(2x2, 3x3): the forward of x, or the input gradient as a forward of dz
// padded by 2 (cnnc_winograd_dx). The products sum C channels (bf16: pairs) for K filters.
struct WinogradShape {
  bool bf16;
  std::string x;   // the source's pointer in generated code: x (padded) or dz
  int64_t Cs;      // the source's channels, fp32
  int64_t Ws;      // the source's columns
  int64_t origin;  // tile (i, j) reads rows and columns from 2i + origin and 2j + origin
  bool borders;    // edge tiles read past the source, where it is zero (dz's padding)
  int64_t C;       // the channels as the products read them: Cs, or bf16's Cs / 2 pairs
  int64_t K;       // filters
  int64_t rows;    // rows of tiles
  int64_t tiles;   // tiles a row
  int64_t T;       // tiles of a group (LayerPlan::winograd_tiles)
  int64_t KB;      // filters of a group (LayerPlan::winograd_kblock)
};

// V = B^T d B of one 4x4 tile d, whose element (r, q) is the vector d(r, q): as v<h>_<xi> for
// the 16 positions xi = 4a + b, B^T d by rows (e<h>_) then the same on the columns.
void emit_tile_transform(EmitContext& c, int h, const std::function<std::string(int, int)>& d) {
  for (int r = 0; r < 4; ++r)
    c.w.line("const V d{0}_{1}0 = {2}, d{0}_{1}1 = {3}, d{0}_{1}2 = {4}, d{0}_{1}3 = {5};", h, r,
             d(r, 0), d(r, 1), d(r, 2), d(r, 3));
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

// V of `count` tiles of row i from tile j0: v[t][xi][c] = (B^T x_t[c] B)[xi], in bf16 the pairs
// of channels 2c and 2c + 1. B^T d takes the rows of the tile, then the same on the columns.
void emit_input_transform(EmitContext& c, const WinogradShape& s, const Expr& i, const Expr& j0,
                          int64_t count) {
  const int64_t L = c.L(), pair = s.bf16 ? 2 : 1;
  emit_loop(c.w, "t", count, [&](const Expr& t) {
    // Which sides of the tile hang over the source: the rows 0-1 (top) or 2-3 (bottom), the
    // columns 0-1 (left) or 2-3 (right), whose values are zero.
    Condition side[4] = {constant(false), constant(false), constant(false), constant(false)};
    if (s.borders) {
      side[0] = named(c.w, "top", is_zero(i), "rows 0-1 of the tile are padding");
      side[1] = named(c.w, "bottom", at_least(i, s.rows - 1), "rows 2-3 are");
      side[2] = named(c.w, "left", is_zero(j0 + t), "columns 0-1 are");
      side[3] = named(c.w, "right", at_least(j0 + t, s.tiles - 1), "columns 2-3 are");
    }
    const Expr tile = ((i * 2 + s.origin) * s.Ws + (j0 + t) * 2 + s.origin) * (s.Cs * L);
    emit_loop(c.w, "ch", s.C, [&](const Expr& ch) {
      for (int h = 0; h < pair; ++h) {
        // Channel h of the pair: d its tile, e = B^T d, v<h>_ V.
        auto d = [&](int r, int q) {
          const Condition over = any_of(side[r < 2 ? 0 : 1], side[q < 2 ? 2 : 3]);
          // One integer offset in parentheses: added to the pointer term by term, an edge
          // tile's negative origin would first carry it past the end of dz.
          const Expr offset = tile + ch * (pair * L) + h * L + (r * s.Ws + q) * (s.Cs * L);
          const std::string load = s.origin < 0 ? fmt::format("vload({} + ({}))", s.x, offset)
                                                : fmt::format("vload({})", at(s.x, offset));
          return over.is(true)    ? std::string("vzero()")
                 : over.is(false) ? load
                                  : fmt::format("{} ? vzero() : {}", over.text, load);
        };
        emit_tile_transform(c, h, d);
      }
      for (int xi = 0; xi < 16; ++xi) {
        const Expr to = (t * 16 + xi) * winograd_step(s.C * L, L) + ch * L;
        if (s.bf16)
          c.w.line("vpstore({}, vpair(v0_{}, v1_{}));", at("v", to), xi, xi);
        else
          c.w.line("vstore({}, v0_{});", at("v", to), xi);
      }
    });
  });
}

// The sums of `count` tiles x `size` filters from k0 at every position xi, into m[xi][t][j]:
// each channel (bf16: pair) loads one V per tile and broadcasts one U per filter.
void emit_products(EmitContext& c, const WinogradShape& s, const Expr& k0, int64_t count,
                   int64_t size) {
  const bool bf16 = s.bf16;
  const int64_t L = c.L();
  const Expr xi = Expr::var("xi");
  c.w.open("for (int xi = 0; xi < 16; ++xi)");
  c.w.line("const {}* uk = {};", bf16 ? "uint32_t" : "float", at("u", xi * (s.K * s.C) + k0 * s.C));
  c.w.line("CNNC_OPAQUE(uk);");  // why: see the macro in the prelude (emit_prelude.cpp)
  c.w.line("const {}* vx = {};", bf16 ? "uint32_t" : "float",
           at("v", xi * winograd_step(s.C * L, L)));
  for (int64_t t = 0; t < count; ++t)
    for (int64_t j = 0; j < size; ++j) c.w.line("V acc_t{}_k{} = vzero();", t, j);
  std::string names;
  for (int64_t t = 0; t < count; ++t) names += fmt::format("a{}, ", t);
  c.w.line("{} {}wv;", bf16 ? "P" : "V", names);
  auto channel = [&](const Expr& ch) {
    for (int64_t t = 0; t < count; ++t)
      c.w.line("a{} = {}({});", t, bf16 ? "vpload" : "vload",
               at("vx", ch * L + t * (16 * winograd_step(s.C * L, L))));
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

// The loops of one convolution: rows of tiles, groups of T tiles (their V), groups of KB filters
// (their products), then for each tile of the group tile_head(i, j0, t) and, in a scope for each
// filter j of the group, A^T M A by rows then columns as y00, y01, y10, y11, and store(k0, j).
void emit_tiles(EmitContext& c, const WinogradShape& s,
                const std::function<void(const Expr& i, const Expr& j0, const Expr& t)>& tile_head,
                const std::function<void(const Expr& k0, int64_t j)>& store) {
  const int64_t L = c.L();
  emit_loop(c.w, "i", s.rows, [&](const Expr& i) {
    emit_blocks(c.w, "j0", s.tiles, s.T, [&](int64_t count, const Expr& j0) {
      emit_input_transform(c, s, i, j0, count);
      emit_blocks(c.w, "k0", s.K, s.KB, [&](int64_t size, const Expr& k0) {
        emit_products(c, s, k0, count, size);
        emit_loop(c.w, "t", count, [&](const Expr& t) {
          tile_head(i, j0, t);
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
            for (int a = 0; a < 2; ++a)
              c.w.line(
                  "const V y{0}0 = vadd(vadd(r{0}0, r{0}1), r{0}2), y{0}1 = vsub(vsub(r{0}1, "
                  "r{0}2), r{0}3);",
                  a);
            store(k0, j);
            c.w.close();
          }
        });
      });
    });
  });
}

// The function comment's tile: what one group keeps in registers, its outputs named `outputs`.
std::string tile_note(const WinogradShape& s, const char* outputs) {
  return fmt::format("Winograd F(2x2, 3x3): {} x {} in registers at each of the 16 positions",
                     counted(s.T, "tile"), counted(s.KB, outputs));
}

// The buffers of a Winograd function: its V and M in the workspace, its U in the prepared
// weights.
void emit_buffers(EmitContext& c, const LayerPlan& lp, bool bf16, const Slot& u) {
  const std::string word = bf16 ? "uint32_t" : "float";
  c.w.line("{0}* v = ({0}*)({1});", word, ws(lp.winograd_v));
  c.w.line("const {0}* u = (const {0}*)({1});", word, weights(u));
  c.w.line("float* m = {};", ws(lp.winograd_m));
}

}  // namespace

void emit_winograd_forward(EmitContext& c, const LayerPlan& lp, bool pooled, bool training) {
  const dsl::Layer& l = *lp.layer;
  const bool bf16 = lp.bf16_forward;
  const LayerPlan* pool_lp = pooled ? &c.plan.layers[static_cast<size_t>(lp.index) + 1] : nullptr;
  const int64_t L = c.L(), Wp = l.in.w + l.pad_left + l.pad_right;
  const WinogradShape s{bf16,
                        "xp",
                        l.in.c,
                        Wp,
                        0,
                        false,
                        bf16 ? l.in.c / 2 : l.in.c,
                        l.units,
                        l.out.h / 2,
                        l.out.w / 2,
                        lp.winograd_tiles,
                        lp.winograd_kblock};
  const bool relu = l.activation == dsl::Activation::relu;
  const std::string tile = tile_note(s, "filter");
  const std::string layout =
      fmt::format("x [{}][{}][{}][L] -> ", l.in.h + l.pad_top + l.pad_bottom, Wp, l.in.c);
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
  emit_buffers(c, lp, bf16, lp.winograd_u);
  c.w.line("float* y = {};", c.output_of(pooled ? pool_lp->index : lp.index));
  if (training) c.w.line("uint8_t* kept = (uint8_t*)({});", ws(lp.pool_kept));
  emit_tiles(
      c, s,
      [&](const Expr& i, const Expr& j0, const Expr& t) {
        if (pooled) {
          c.w.line("float* yo = {};", at("y", (i * s.tiles + j0 + t) * (s.K * L)));
          if (training)
            c.w.line("uint8_t* ko = {};", at("kept", (i * s.tiles + j0 + t) * (s.K * L)));
        } else {
          c.w.line("float* yo = {};", at("y", (i * (2 * l.out.w) + (j0 + t) * 2) * (s.K * L)));
        }
      },
      [&](const Expr& k0, int64_t j) {
        c.w.line("const V bias = vbcast({});", at("b", k0 + j));
        c.w.line(
            "const V z00 = vadd(y00, bias), z01 = vadd(y01, bias), z10 = vadd(y10, bias), "
            "z11 = vadd(y11, bias);");
        if (pooled) {
          emit_window_max(c, training, relu, {"z00", "z01", "z10", "z11"}, "_window", (k0 + j) * L);
          return;
        }
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b) {
            std::string z = fmt::format("z{}{}", a, b);
            if (relu) z = fmt::format("vmax({}, vzero())", z);
            c.w.line("vstore({}, {});", at("yo", (k0 + j) * L + (a * l.out.w + b) * (s.K * L)), z);
          }
      });
  if (!pooled) emit_activation_loop(c, l, "y", l.out.size() * L);
  c.w.close();
  c.w.blank();
}

void emit_winograd_backward_data(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  const bool bf16 = lp.bf16_dx;
  const int64_t L = c.L(), H = l.in.h, W = l.in.w, C = l.in.c, K = l.units;
  const WinogradShape s{bf16,
                        "dz",
                        K,
                        l.out.w,
                        -2,
                        true,
                        bf16 ? K / 2 : K,
                        C,
                        H / 2,
                        W / 2,
                        lp.winograd_dx_tiles,
                        lp.winograd_dx_kblock};
  function_comment(
      c, lp, Pass::backward_data,
      fmt::format("dz [{}][{}][{}][L] -> dx [{}][{}][{}][L], as a forward of dz padded by 2 with "
                  "the filters turned and transposed",
                  l.out.h, l.out.w, K, H, W, C),
      tile_note(s, "channel"));
  open_layer_function(c, lp, Pass::backward_data, params_and_ws);
  c.w.line("(void)params;");
  c.w.line("const float* dz = {};", c.grad_of(lp.index));
  c.w.line("float* dx = {};", c.grad_of(lp.index - 1));
  emit_buffers(c, lp, bf16, lp.winograd_dx_u);
  emit_tiles(
      c, s,
      [&](const Expr& i, const Expr& j0, const Expr& t) {
        c.w.line("float* dxo = {};", at("dx", (i * (2 * W) + (j0 + t) * 2) * (C * L)));
      },
      [&](const Expr& c0, int64_t j) {
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b)
            c.w.line("vstore({}, y{}{});", at("dxo", (c0 + j) * L + (a * W + b) * (C * L)), a, b);
      });
  c.w.close();
  c.w.blank();
}

// The weight gradient by F(3x3, 2x2): dw is the correlation of x with dz, so the same minimal
// filtering on the same 4x4 tiles of x, with dz's 2x2 tile as the filter and dw's 3x3 the output:
//   dw[k][c] += A^T ( sum_{tiles, samples} Z[k] (.) V[c] ) A,  Z[k] = G dz_t[k] G^T,
//   V[c] = B^T x_t[c] B (the forward's),  G = [1 0; 1 1; 1 -1; 0 1],
//   A^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 -1]
// (Lavin's G' = [1 0; 1/2 1/2; 1/2 -1/2; 0 -1] and A'^T = [1 1 1 0; 0 1 -1 0; 0 1 1 1] with the
// halves and the sign moved into A, so that Z takes adds alone). At each position the sum over
// tiles and samples is a matrix product, as the taps' is (emit_weights_by_taps): channels in the
// lanes, read from x one sample after another, and Z broadcast, every sample in turn. Groups of
// tiles of a row take their V and Z, then their products into M [16][K][C], which is transformed
// back once per block. bf16 pairs samples 2m and 2m + 1 in each word of V and of Z, so that a
// vdot adds both samples' products; V and Z are rounded, not x and dz, as the generic engine
// with bf16 products does (generic/winograd.cpp). FLOPs count as the direct sum's, as at the top
// of this file; the sums round differently from the taps'.
void emit_winograd_backward_weights(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  const bool bf16 = lp.bf16_dw;
  const int64_t L = c.L(), C = l.in.c, K = l.units, Q = l.out.w;
  const int64_t Wp = l.in.w + l.pad_left + l.pad_right;
  const int64_t N = (l.in.h + l.pad_top + l.pad_bottom) * Wp * C;  // one sample of xs
  const int64_t T = lp.winograd_dw_tiles, KB = lp.winograd_dw_kblock;
  const int64_t VB = lp.winograd_dw_vectors;
  // bf16: S = L / 2 pairs of samples, m for samples 2m and 2m + 1, in each word of V and Z.
  const int64_t S = bf16 ? L / 2 : L;
  const int64_t v_xi = winograd_step(T * S * C, L), z_xi = winograd_step(T * K * S, L);
  const char* type = bf16 ? "uint32_t" : "float";
  c.w.line("{0}* v = ({0}*)({1});", type, ws(lp.winograd_dw_vz));
  c.w.line("{}* z = {};", type, at("v", 16 * v_xi));
  c.w.line("float* m = {};", ws(lp.winograd_dw_m));
  c.w.line("std::memset(m, 0, {} * sizeof(float));", 16 * K * C);
  emit_loop(c.w, "i", l.out.h / 2, [&](const Expr& i) {
    emit_blocks(c.w, "j0", Q / 2, T, [&](int64_t count, const Expr& j0) {
      emit_loop(c.w, "t", count, [&](const Expr& t) {
        emit_loop(c.w, bf16 ? "pair" : "n", S, [&](const Expr& n) {
          emit_loop(c.w, "cv", C / L, [&](const Expr& cv) {
            for (int h = 0; h < (bf16 ? 2 : 1); ++h) {
              const Expr tile =
                  (n * (bf16 ? 2 : 1) + h) * N + i * (2 * Wp * C) + (j0 + t) * (2 * C) + cv * L;
              emit_tile_transform(c, h, [&](int r, int q) {
                return fmt::format("vloadu({})", at("xs", tile + (r * Wp + q) * C));
              });
            }
            for (int xi = 0; xi < 16; ++xi) {
              const std::string to = at("v", (t * S + n) * C + cv * L + xi * v_xi);
              if (bf16)
                c.w.line("vpstore({}, vpair(v0_{}, v1_{}));", to, xi, xi);
              else
                c.w.line("vstore({}, v0_{});", to, xi);
            }
          });
        });
        // Z = G dz_t G^T by rows, then columns: e_a<b> of rows (d_0, d_0 + d_1, d_0 - d_1, d_1).
        emit_loop(c.w, "k", K, [&](const Expr& k) {
          const Expr tile = (i * (2 * Q) + (j0 + t) * 2) * (K * L) + k * L;
          c.w.line("const V d00 = vload({}), d01 = vload({}), d10 = vload({}), d11 = vload({});",
                   at("dz", tile), at("dz", tile + K * L), at("dz", tile + Q * K * L),
                   at("dz", tile + (Q + 1) * K * L));
          for (int b = 0; b < 2; ++b)
            c.w.line("const V e1{0} = vadd(d0{0}, d1{0}), e2{0} = vsub(d0{0}, d1{0});", b);
          const char* e[4][2] = {{"d00", "d01"}, {"e10", "e11"}, {"e20", "e21"}, {"d10", "d11"}};
          for (int a = 0; a < 4; ++a)
            for (int b = 0; b < 4; ++b) {
              const std::string value =
                  b == 0   ? e[a][0]
                  : b == 3 ? e[a][1]
                           : fmt::format("{}({}, {})", b == 1 ? "vadd" : "vsub", e[a][0], e[a][1]);
              c.w.line("{}({}, {});", bf16 ? "vpstore_lanes" : "vstore",
                       at("z", (t * K + k) * S + (4 * a + b) * z_xi), value);
            }
        });
      });
      // The products: at each position, winograd_dw_kblock filters x winograd_dw_vectors of
      // channels over every tile of the group and every sample (bf16: pair of samples).
      c.w.open("for (int xi = 0; xi < 16; ++xi)");
      c.w.line("const {}* vx = {};", type, at("v", Expr::var("xi") * v_xi));
      c.w.line("const {}* zx = {};", type, at("z", Expr::var("xi") * z_xi));
      c.w.line("float* mx = {};", at("m", Expr::var("xi") * (K * C)));
      emit_blocks(c.w, "k0", K, KB, [&](int64_t filters, const Expr& k0) {
        emit_blocks(c.w, "v0", C / L, VB, [&](int64_t vectors, const Expr& v0) {
          for (int64_t j = 0; j < filters; ++j)
            for (int64_t b = 0; b < vectors; ++b)
              c.w.line("V acc_k{}_v{} = vload({});", j, b, at("mx", (k0 + j) * C + (v0 + b) * L));
          emit_loop(c.w, "t", count, [&](const Expr& t) {
            emit_loop(c.w, bf16 ? "pair" : "n", S, [&](const Expr& n) {
              for (int64_t b = 0; b < vectors; ++b)
                c.w.line("const {} x{} = {}({});", bf16 ? "P" : "V", b, bf16 ? "vpload" : "vload",
                         at("vx", (t * S + n) * C + (v0 + b) * L));
              emit_broadcast_products(c, bf16, filters, vectors, [&](int64_t j) {
                return at("zx", (t * K + k0 + j) * S + n);
              });
            });
          });
          for (int64_t j = 0; j < filters; ++j)
            for (int64_t b = 0; b < vectors; ++b)
              c.w.line("vstore({}, acc_k{}_v{});", at("mx", (k0 + j) * C + (v0 + b) * L), j, b);
        });
      });
      c.w.close();
    });
  });
  // dw[k][r][s][c] += (A^T M A)[r][s]: by rows (r<a>_<b>), then columns.
  c.w.line("const V half = vset(0.5f);");
  emit_loop(c.w, "k", K, [&](const Expr& k) {
    emit_loop(c.w, "cv", C / L, [&](const Expr& cv) {
      auto m = [&](int a, int b) { return at("m", (k + (4 * a + b) * K) * C + cv * L); };
      for (int a = 0; a < 4; ++a)
        c.w.line(
            "const V m{0}0 = vload({1}), m{0}1 = vload({2}), m{0}2 = vload({3}), m{0}3 = "
            "vload({4});",
            a, m(a, 0), m(a, 1), m(a, 2), m(a, 3));
      for (int b = 0; b < 4; ++b)
        c.w.line(
            "const V s{0} = vmul(half, vadd(m1{0}, m2{0})), r0_{0} = vadd(m0{0}, s{0}), "
            "r1_{0} = vmul(half, vsub(m1{0}, m2{0})), r2_{0} = vsub(s{0}, m3{0});",
            b);
      for (int r = 0; r < 3; ++r) {
        c.w.line("const V s_{0} = vmul(half, vadd(r{0}_1, r{0}_2));", r);
        const std::string row[3] = {fmt::format("vadd(r{0}_0, s_{0})", r),
                                    fmt::format("vmul(half, vsub(r{0}_1, r{0}_2))", r),
                                    fmt::format("vsub(s_{0}, r{0}_3)", r)};
        for (int q = 0; q < 3; ++q) {
          const std::string to = at("dw", (k * 3 + r) * (3 * C) + q * C + cv * L);
          c.w.line("vstore({0}, vadd(vload({0}), {1}));", to, row[q]);
        }
      }
    });
  });
}

}  // namespace cnnc::codegen
