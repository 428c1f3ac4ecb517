// Dense layers, forward and backward, for one block of L samples in the lanes.
//
// Layout: x [I][L] (the input flattened in [H][W][C] order), y [K][L], weights [K][I], bias [K]:
//   y[k] = b[k] + sum_i w[k][i] * x[i]
// The weight gradient is a product over the whole slice, not per block: each block leaves its
// inputs and output gradients as sample-major rows, and the slice's end multiplies them once
// (emit_drivers.cpp), so the K x I weight matrix is written once per slice.
#include <fmt/format.h>

#include <functional>

#include "codegen/emit.hpp"

namespace cnnc::codegen {

namespace {

void emit_forward(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), I = l.in.size(), K = l.units;
  function_comment(
      c, lp, Pass::forward, fmt::format("x [{}][L] -> y [{}][L]", I, K),
      fmt::format(
          "{} in registers{}, each unit's weight row one stream from memory{}",
          counted(lp.kblock, "unit"),
          lp.bf16_forward ? " (two sums each, of even and odd pairs)" : "",
          lp.ichunk > 0
              ? fmt::format(";\nx by chunks of {} vectors, every unit over one before the next",
                            lp.ichunk)
              : ""));
  open_layer_function(c, lp, Pass::forward, params_and_ws);
  const bool bf16 = lp.bf16_forward;
  if (bf16) {
    // bf16: pairs of inputs i and i + 1, of x and of each weight row (w_pairs, prepared once per
    // step or by this call), so that each vdot adds two inputs.
    I = (I + 1) / 2;
    c.w.line("const uint32_t* w = {};", weights(lp.w_pairs));
    c.w.line("uint32_t* x = (uint32_t*)({});", ws(lp.x_pairs));
    c.w.line("vpairs(x, {}, {}, 2, 1, {});", c.input_of(lp.index), I, l.in.size() / 2);
  } else {
    c.w.line("const float* w = {};", at("params", l.weight_offset));
  }
  c.w.line("const float* b = {};", at("params", l.bias_offset));
  if (!bf16) c.w.line("const float* x = {};", c.input_of(lp.index));
  c.w.line("float* y = {};", c.output_of(lp.index));
  const bool relu = l.activation == dsl::Activation::relu;
  const bool chunked = lp.ichunk > 0;
  // Every group of units over `count` vectors of x from `first` (xc, and each row of wk, start
  // there): its sums start as the bias, or, chunked, as what y holds, where the chunks before
  // left them.
  auto units_over = [&](const Expr& first, int64_t count) {
    const char* type = bf16 ? "uint32_t" : "float";
    if (chunked) c.w.line("const {}* xc = {};", type, at("x", first * L));
    const std::string xc = chunked ? "xc" : "x";
    emit_blocks(c.w, "k0", K, lp.kblock, [&](int64_t size, const Expr& k0) {
      c.w.line("const {}* wk = {};", type, at("w", k0 * I + first));
      for (int64_t j = 0; j < size; ++j)
        c.w.line(
            "V acc{} = {};", j,
            chunked ? "vload(" + at("y", (k0 + j) * L) + ")" : "vbcast(" + at("b", k0 + j) + ")");
      if (bf16) {
        // vdpbf16ps waits longer for its sum than an FMA: with one chain per unit, 8 units ran at
        // 58% of the bf16 peak (keras_mnist's dense1). A second set over the odd pairs doubles
        // the chains, while the weight rows stay the kblock streams the prefetchers follow.
        for (int64_t j = 0; j < size; ++j) c.w.line("V odd{} = vzero();", j);
        emit_blocks(c.w, "i", count, 2, [&](int64_t pairs, const Expr& i) {
          for (int64_t h = 0; h < pairs; ++h) {
            c.w.line("P x{} = vpload({});", h, at(xc, (i + h) * L));
            for (int64_t j = 0; j < size; ++j)
              c.w.line("{0}{1} = vdot({0}{1}, x{2}, vpbcast({3}));", h ? "odd" : "acc", j, h,
                       at("wk", i + h + j * I));
          }
        });
        for (int64_t j = 0; j < size; ++j) c.w.line("acc{} = vadd(acc{}, odd{});", j, j, j);
      } else {
        emit_loop(c.w, "i", count, [&](const Expr& i) {
          c.w.line("V xi = vload({});", at(xc, i * L));
          for (int64_t j = 0; j < size; ++j)
            c.w.line("acc{} = vfma(xi, vbcast({}), acc{});", j, at("wk", i + j * I), j);
        });
      }
      for (int64_t j = 0; j < size; ++j) {
        if (relu && !chunked) c.w.line("acc{} = vmax(acc{}, vzero());", j, j);
        c.w.line("vstore({}, acc{});", at("y", (k0 + j) * L), j);
      }
    });
  };
  if (chunked) {
    emit_loop_line(c.w, "", "k", K, [&](const Expr& k) {
      return fmt::format("vstore({}, vbcast({}));", at("y", k * L), at("b", k));
    });
    emit_blocks(c.w, "i0", I, lp.ichunk,
                [&](int64_t count, const Expr& i0) { units_over(i0, count); });
    if (relu)
      emit_loop_line(c.w, "", "k", K, [&](const Expr& k) {
        return fmt::format("vstore({0}, vmax(vload({0}), vzero()));", at("y", k * L));
      });
  } else {
    units_over(0, I);
  }
  emit_activation_loop(c, l, "y", K * L);
  c.w.close();
  c.w.blank();
}

// The input gradient of one block: dx[i] = sum_k w[k][i] * dz[k], inputs dx_tblock at a time.
void emit_backward_data(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), I = l.in.size(), K = l.units;
  function_comment(c, lp, Pass::backward_data, fmt::format("dz [{}][L] -> dx [{}][L]", K, I),
                   fmt::format("{} of dx in registers, every unit added into them",
                               counted(lp.dx_tblock, "input")));
  open_layer_function(c, lp, Pass::backward_data, params_and_ws);
  const bool bf16 = lp.bf16_dx;
  if (bf16) {
    // bf16: pairs of units k and k + 1, of dz and of the weights (wt_pairs, prepared once per
    // step or by this call), so that each vdot adds two units.
    c.w.line("(void)params;");
    c.w.line("const uint32_t* w = {};", weights(lp.wt_pairs));
    c.w.line("uint32_t* dz = (uint32_t*)({});", ws(lp.dz_pairs));
    c.w.line("vpairs(dz, {}, {}, 2, 1, {});", c.grad_of(lp.index), (K + 1) / 2, K / 2);
    K = (K + 1) / 2;
  } else {
    c.w.line("const float* w = {};", at("params", l.weight_offset));
    c.w.line("const float* dz = {};", c.grad_of(lp.index));
  }
  c.w.line("float* dx = {};", c.grad_of(lp.index - 1));
  emit_blocks(c.w, "i0", I, lp.dx_tblock, [&](int64_t size, const Expr& i0) {
    for (int64_t j = 0; j < size; ++j) c.w.line("V acc{} = vzero();", j);
    emit_loop(c.w, "k", K, [&](const Expr& k) {
      c.w.line("{} dk = {}({});", bf16 ? "P" : "V", bf16 ? "vpload" : "vload", at("dz", k * L));
      // bf16: the tile's [K][size] pairs start at i0 * K (wt_pairs, plan.cpp).
      c.w.line("const {}* wk = {};", bf16 ? "uint32_t" : "float",
               bf16 ? at("w", i0 * K + k * size) : at("w", k * I + i0));
      for (int64_t j = 0; j < size; ++j) {
        if (bf16)
          c.w.line("acc{} = vdot(acc{}, dk, vpbcast({}));", j, j, at("wk", j));
        else
          c.w.line("acc{} = vfma(dk, vbcast({}), acc{});", j, at("wk", j), j);
      }
    });
    for (int64_t j = 0; j < size; ++j) c.w.line("vstore({}, acc{});", at("dx", (i0 + j) * L), j);
  });
  c.w.close();
  c.w.blank();
}

// rows_x and rows_dz: where the blocks of the slice whose workspace is `ws` left their rows.
void emit_rows(EmitContext& c, const LayerPlan& lp) {
  if (lp.bf16_dw) {
    c.w.line("const uint32_t* rows_x = (const uint32_t*)({});", ws(lp.slice_x));
    c.w.line("const uint32_t* rows_dz = (const uint32_t*)({});", ws(lp.slice_dz));
  } else {
    c.w.line("const float* rows_x = {};", ws(lp.slice_x));
    c.w.line("const float* rows_dz = {};", ws(lp.slice_dz));
  }
}

// One register tile of the weight gradient, dw[k0 + j][v0 * L + lanes], j < units:
//   dw[k][i] = sum_rows dz[row][k] * x[row][i]
// from the `rows` rows at rows_x and rows_dz (emit_rows). `store` writes
// each of the tile's accumulators acc_k<j>_v<u> to `to`; `partial` for a row's last vector
// when I % L lanes of it are the row's. Where `prefetch_next` holds, each row also asks for its
// x of the next column block.
void emit_dw_tile(
    EmitContext& c, const LayerPlan& lp, int64_t units, int64_t vectors, bool partial_last,
    const Expr& v0, const Expr& k0,
    const std::function<void(int64_t j, int64_t u, const std::string& to, bool partial)>& store,
    const Condition& prefetch_next = constant(false)) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), I = l.in.size(), K = l.units, X = lp.x_stride;
  const bool bf16 = lp.bf16_dw;
  const Expr r = Expr::var("r");
  const char* type = bf16 ? "uint32_t" : "float";
  for (int64_t j = 0; j < units; ++j)
    for (int64_t u = 0; u < vectors; ++u) c.w.line("V acc_k{}_v{} = vzero();", j, u);
  // bf16: rows 2r and 2r + 1 in one pair.
  const char* vec = bf16 ? "P" : "V";
  c.w.open("for (int r = 0; r < {}; ++r)", bf16 ? "rows / 2" : "rows");
  c.w.line("const {}* xr = {};", type, at("rows_x", r * X + v0 * L));
  c.w.line("const {}* dzr = {};", type, at("rows_dz", r * K + k0));
  for (int64_t u = 0; u < vectors; ++u)
    c.w.line("{} x{} = {}({});", vec, u, bf16 ? "vpload" : "vload", at("xr", u * L));
  emit_if(c.w, prefetch_next, [&] {
    for (int64_t u = 0; u < vectors; ++u)
      c.w.line("__builtin_prefetch({});", at("xr", (vectors + u) * L));
  });
  for (int64_t j = 0; j < units; ++j) {
    c.w.line("{} d{} = {}({});", vec, j, bf16 ? "vpbcast" : "vbcast", at("dzr", j));
    for (int64_t u = 0; u < vectors; ++u) {
      if (bf16)
        c.w.line("acc_k{}_v{} = vdot(acc_k{}_v{}, d{}, x{});", j, u, j, u, j, u);
      else
        c.w.line("acc_k{}_v{} = vfma(d{}, x{}, acc_k{}_v{});", j, u, j, u, j, u);
    }
  }
  c.w.close();
  for (int64_t j = 0; j < units; ++j)
    for (int64_t u = 0; u < vectors; ++u)
      store(j, u, at("dw", (k0 + j) * I + (v0 + u) * L), partial_last && u == vectors - 1);
}

// The tiles of the whole K x I matrix, or of units [unit_begin, unit_end) when `units_from_args`.
// Units innermost: a column block of x (rows x dw_vblock vectors) stays in L1 while every unit
// passes over it, and dz (rows x K) is small.
void emit_dw_tiles(EmitContext& c, const LayerPlan& lp, bool units_from_args,
                   const std::function<void(int64_t units, int64_t vectors, bool partial_last,
                                            const Expr& v0, const Expr& k0)>& tile) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), I = l.in.size(), K = l.units, KB = lp.dw_kblock;
  auto unit_blocks = [&](int64_t vectors, bool partial, const Expr& v0) {
    if (!units_from_args) {
      emit_blocks(c.w, "k0", K, KB,
                  [&](int64_t units, const Expr& k0) { tile(units, vectors, partial, v0, k0); });
      return;
    }
    const Expr k0 = Expr::var("k0");
    auto unit_by_unit = [&] {
      c.w.open("for (int k0 = unit_begin; k0 < unit_end; ++k0)");
      tile(1, vectors, partial, v0, k0);
      c.w.close();
    };
    if (KB == 1) {
      unit_by_unit();
      return;
    }
    // A range that tiles do not divide ends in a whole tile that overlaps the one before it,
    // rather than in tiles of one unit: a one-unit tile has too few accumulators to hide the
    // FMA's latency, and keras_mnist's 64 units per thread (10 tiles and 4 single units) took
    // 1.35x as long.
    c.w.open("if (unit_end - unit_begin >= {})", KB);
    c.w.open("for (int k_next = unit_begin; k_next < unit_end; k_next += {})", KB);
    c.w.comment(
        "The last tile ends at unit_end: where it overlaps the tile before, it writes the same "
        "sums again.");
    c.w.line("const int k0 = k_next + {} <= unit_end ? k_next : unit_end - {};", KB, KB);
    tile(KB, vectors, partial, v0, k0);
    c.w.close();
    c.w.close();
    c.w.open("else");
    unit_by_unit();
    c.w.close();
  };
  emit_blocks(c.w, "v0", I / L, lp.dw_vblock,
              [&](int64_t vectors, const Expr& v0) { unit_blocks(vectors, false, v0); });
  // The last vector of a row that I does not fill.
  emit_loop(
      c.w, "v0", I % L ? 1 : 0, [&](const Expr& v0) { unit_blocks(1, true, v0); }, I / L);
}

// The weight gradient of the slice, once per slice from the rows the blocks left:
//   dw[k][i] = sum_rows dz[row][k] * x[row][i]
// so the K x I matrix is written once per slice rather than once per block. Register tiles of
// dw_kblock units x dw_vblock vectors of inputs; the last, partial vector of a row is stored
// lane by lane.
void emit_backward_weights(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  int64_t I = l.in.size(), K = l.units, X = lp.x_stride;
  function_comment(
      c, lp, Pass::backward_weights,
      fmt::format("rows of x [n][{}] and dz [n][{}] -> dw [{}][{}] in grads", X, K, K, I),
      fmt::format("{} x {} of inputs in registers", counted(lp.dw_kblock, "unit"),
                  counted(lp.dw_vblock, "vector")));
  open_layer_function(c, lp, Pass::backward_weights,
                      "float* __restrict grads, const float* __restrict ws, int rows");
  emit_rows(c, lp);
  c.w.line("float* dw = {};", at("grads", l.weight_offset));
  emit_dw_tiles(c, lp, false,
                [&](int64_t units, int64_t vectors, bool partial, const Expr& v0, const Expr& k0) {
                  emit_dw_tile(
                      c, lp, units, vectors, partial, v0, k0,
                      [&](int64_t j, int64_t u, const std::string& to, bool partial_vector) {
                        if (partial_vector)
                          c.w.line("vstore_first({}, acc_k{}_v{}, {});", to, j, u, I % c.L());
                        else
                          c.w.line("vstoreu({}, acc_k{}_v{});", to, j, u);
                      });
                });
  c.w.close();
  c.w.blank();
}

// The weight gradient of a whole step for units [unit_begin, unit_end), from the rows that each
// slice's train left in its workspace (cnnc_pass::defer_dense_weights):
//   dw[k][i] = scale * (0 + dw_0[k][i] + dw_1[k][i] + ...)
// dw_s being what backward_weights writes for slice s, the slices added in order as the runtime
// adds their copies; so the bits are the copies' and no slice writes or reads a K x I copy. Each
// tile runs over the slices in turn and adds into dw, which stays in L1.
void emit_step_weights(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), I = l.in.size();
  c.w.comment(fmt::format(
      "{} weight gradient of the step, units [unit_begin, unit_end) of {}: the slices' "
      "backward_weights\nadded in slice order and scaled, from the rows each slice's train left "
      "in its workspace.",
      l.name, l.units));
  c.w.function(
      "static {} void {}_step_weights(const cnnc_pass* passes, int count, float scale, "
      "int unit_begin, int unit_end, float* __restrict grads)",
      c.kernel(), l.name);
  c.w.line("float* dw = {};", at("grads", l.weight_offset));
  if (I >= L) c.w.line("const V vscale = vset(scale);");  // fewer inputs: only partial vectors
  // Where PREFETCHW is, each tile asks for the lines of its next column block ahead (as
  // emit_update.cpp asks for its parameters'): x's rows are partly other cores' slices and dw's
  // lines come from memory, and the tiles stalled on both. keras_mnist's dense1 on 2 threads took
  // 15% (FP32) and 24% (bf16) less CPU time with them (perf, clang 19 -O2, medians of 4
  // alternations).
  const bool prefetch = has_prefetchw(c.plan.isa);
  emit_dw_tiles(
      c, lp, true,
      [&](int64_t units, int64_t vectors, bool partial, const Expr& v0, const Expr& k0) {
        const Condition next = prefetch && !partial
                                   ? named(c.w, "next_in_row", below(v0 + vectors, I / L),
                                           "the next column block is in the row")
                                   : constant(false);
        c.w.open("for (int s = 0; s < count; ++s)");
        c.w.line("const float* ws = (const float*)passes[s].workspace;");
        c.w.line("const int rows = (passes[s].n + {}) / {} * {};", L - 1, L, L);
        emit_rows(c, lp);
        emit_dw_tile(
            c, lp, units, vectors, partial, v0, k0,
            [&](int64_t j, int64_t u, const std::string& to, bool partial_vector) {
              if (!partial_vector) {
                c.w.line("vstoreu({}, vadd(s ? vloadu({}) : vzero(), acc_k{}_v{}));", to, to, j, u);
                return;
              }
              c.w.line("alignas(64) float part_k{}[{}];", j, L);
              c.w.line("vstore(part_k{}, acc_k{}_v{});", j, j, u);
              c.w.line("for (int e = 0; e < {}; ++e) ({})[e] = (s ? ({})[e] : 0.0f) + part_k{}[e];",
                       I % L, to, to, j);
            },
            next);
        c.w.close();
        for (int64_t j = 0; j < units; ++j)
          for (int64_t u = 0; u < vectors; ++u) {
            std::string to = at("dw", (k0 + j) * I + (v0 + u) * L);
            if (partial && u == vectors - 1)
              c.w.line("for (int e = 0; e < {}; ++e) ({})[e] *= scale;", I % L, to);
            else
              c.w.line("vstoreu({}, vmul(vloadu({}), vscale));", to, to);
          }
        emit_if(c.w, next, [&] {
          for (int64_t j = 0; j < units; ++j)
            for (int64_t u = 0; u < vectors; ++u)
              c.w.line("__builtin_prefetch({}, 1);",
                       at("dw", (k0 + j) * I + (v0 + vectors + u) * L));
        });
      });
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
  if (has_step_weights(lp)) emit_step_weights(c, lp);
  if (lp.needs_dx) emit_backward_data(c, lp);
  function_comment(c, lp, Pass::backward,
                   fmt::format("dy [{}][L] -> dz = dy * f'(z) in place; the block's rows of x "
                               "[n][{}] and dz [n][{}]{}",
                               K, I, K, lp.needs_dx ? "; dx" : ""),
                   "one vector at a time; rows lane by lane");
  open_layer_function(c, lp, Pass::backward, std::string(params_and_ws) + ", int block");
  if (!lp.needs_dx) c.w.line("(void)params;");
  if (!l.trainable()) c.w.line("(void)block;");
  if (l.trainable()) c.w.line("const float* x = {};", c.input_of(lp.index));
  if (l.trainable() || has_derivative(l)) c.w.line("float* dz = {};", c.grad_of(lp.index));
  if (has_derivative(l)) {
    c.w.line("const float* y = {};", c.output_of(lp.index));  // f'(z) is read off the output
    emit_activation_backward_loop(c, l, "y", "dz", K * L);
  }
  if (l.trainable()) {
    c.w.line("float* db = {};", ws(lp.lane_db));
    emit_loop_line(c.w, "", "k", K, [&](const Expr& k) {
      std::string to = at("db", k * L);
      return fmt::format("vstore({}, vadd(vload({}), vload({})));", to, to, at("dz", k * L));
    });
    const Expr block = Expr::var("block");
    if (lp.bf16_dw) {
      // bf16: samples 2m and 2m + 1 of the block as one pair, for the slice's product over rows.
      c.w.line("uint32_t* rows_x = (uint32_t*)({}) + {};", ws(lp.slice_x),
               block * (L / 2 * lp.x_stride));
      c.w.line("uint32_t* rows_dz = (uint32_t*)({}) + {};", ws(lp.slice_dz), block * (L / 2 * K));
      c.w.line("lane_pairs(rows_x, x, {}, {});", I, lp.x_stride);
      c.w.line("lane_pairs(rows_dz, dz, {}, {});", K, K);
      if (lp.needs_dx) c.w.line("{}_backward_data(params, ws);", l.name);
      c.w.close();
      c.w.blank();
      return;
    }
    c.w.line("float* rows_x = {};", at(ws(lp.slice_x), block * (L * lp.x_stride)));
    c.w.line("float* rows_dz = {};", at(ws(lp.slice_dz), block * (L * K)));
    emit_loop(c.w, "lane", L, [&](const Expr& lane) {
      emit_loop_line(c.w, "", "i", I, [&](const Expr& i) {
        return fmt::format("rows_x[{}] = x[{}];", lane * lp.x_stride + i, i * L + lane);
      });
      emit_loop_line(c.w, "", "k", K, [&](const Expr& k) {
        return fmt::format("rows_dz[{}] = dz[{}];", lane * K + k, k * L + lane);
      });
    });
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
