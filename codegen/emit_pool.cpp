// Max and average pooling, forward and backward, for one block of L samples in the lanes.
//
// Layout: x [H][W][C][L] -> y [P][Q][C][L], no padding:
//   max: y[p][q][c] = max_{r,s} x[p*sh + r][q*sw + s][c]
//   avg: y[p][q][c] = 1/(R*S) sum_{r,s} x[p*sh + r][q*sw + s][c]
// Max backward sends each gradient to the first window element, in (r, s) order, that equals
// the maximum: the element forward kept. After a conv fused with the pool (AVX-512) the forward
// stored its index, one byte per output (emit_conv.cpp); otherwise it is found again in x.
#include <fmt/format.h>

#include "codegen/emit.hpp"

namespace cnnc::codegen {

namespace {

// For every output (p, q, c) of the block: body(window, output, c), the offsets of the window's
// first input and of the output, in floats, and the channel.
void emit_windows(
    EmitContext& c, const dsl::Layer& l,
    const std::function<void(const Expr& window, const Expr& output, const Expr& ch)>& body) {
  int64_t L = c.L(), W = l.in.w, C = l.in.c, Q = l.out.w;
  emit_loop(c.w, "p", l.out.h, [&](const Expr& p) {
    emit_loop(c.w, "q", Q, [&](const Expr& q) {
      emit_loop(c.w, "ch", C, [&](const Expr& ch) {
        body(p * (l.stride_h * W * C * L) + q * (l.stride_w * C * L) + ch * L,
             ((p * Q + q) * C + ch) * L, ch);
      });
    });
  });
}

}  // namespace

void emit_pool(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), W = l.in.w, C = l.in.c, P = l.out.h, Q = l.out.w, R = l.kernel_h,
          S = l.kernel_w;
  bool max = l.kind == dsl::LayerKind::maxpool;
  // Element (r, s) of a window, from its first element.
  auto tap = [&](int64_t r, int64_t s) { return (r * W + s) * C * L; };
  const LayerPlan* conv = lp.index > 0 ? &c.plan.layers[lp.index - 1] : nullptr;
  const LayerPlan* fused = fused_conv_before(c.plan, lp);

  // A conv fused with this pool runs its forward (emit_conv.cpp).
  if (!fused) {
    function_comment(c, lp, Pass::forward,
                     fmt::format("x [{}][{}][{}][L] -> y [{}][{}][{}][L]", l.in.h, W, C, P, Q, C),
                     "one output vector at a time, the window unrolled");
    open_layer_function(c, lp, Pass::forward, "float* __restrict ws");
    c.w.line("const float* x = {};", c.input_of(lp.index));
    c.w.line("float* y = {};", c.output_of(lp.index));
    emit_windows(c, l, [&](const Expr& window, const Expr& output, const Expr&) {
      c.w.line("const float* xw = {};", at("x", window));
      c.w.line("V m = vload(xw);");
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s)
          if (r + s > 0)
            c.w.line("m = {}(m, vload({}));", max ? "vmax" : "vadd", at("xw", tap(r, s)));
      if (!max) c.w.line("m = vmul(m, vset({}));", float_literal(1.0f / static_cast<float>(R * S)));
      c.w.line("vstore({}, m);", at("y", output));
    });
    c.w.close();
    c.w.blank();
  }
  if (!lp.needs_dx) return;  // first layer: no gradient to pass on, no parameters

  // Windows that tile the input without overlap write each dx value once, so they store
  // instead of adding; only rows and columns that no window covers need clearing then.
  bool tiles = l.stride_h == R && l.stride_w == S;
  bool covers = tiles && P * R == l.in.h && Q * S == W;
  // After a relu conv (relu_in_pool) the gradient routed to a window's kept element is the
  // conv's dz already: relu's derivative there is top > 0, the rest of the window gets 0 either
  // way, and the conv's bias gradient adds the one value each window passes on.
  const bool relu = conv && conv->relu_in_pool;
  const bool bias = relu && conv->layer->trainable();
  const bool by_index = fused && fused->pool_kept.floats;
  std::string becomes;
  if (relu)
    becomes = fmt::format(
        ", {}'s dz (relu's derivative applied{})", conv->layer->name,
        bias ? fmt::format(", adding it into {}'s db [{}][L]", conv->layer->name, C) : "");
  function_comment(
      c, lp, Pass::backward,
      fmt::format("dy [{}][{}][{}][L] -> dx [{}][{}][{}][L]{}", P, Q, C, l.in.h, W, C, becomes),
      fmt::format("one output vector at a time, the window unrolled{}; windows {}",
                  by_index ? fmt::format(", each gradient to the element {}'s forward kept",
                                         conv->layer->name)
                           : "",
                  tiles ? "tile the input, so dx is stored" : "overlap, so dx is added to"));
  open_layer_function(c, lp, Pass::backward, "float* __restrict ws");
  if (by_index) {
    c.w.line("const uint8_t* kept = (const uint8_t*)({});", ws(conv->pool_kept));
  } else if (max) {
    c.w.line("const float* x = {};", c.input_of(lp.index));
    c.w.line("const float* y = {};", c.output_of(lp.index));
  }
  if (bias) c.w.line("float* db = {};", ws(conv->lane_db));
  c.w.line("const float* dy = {};", c.grad_of(lp.index));
  c.w.line("float* dx = {};", c.grad_of(lp.index - 1));
  if (!covers) c.w.line("std::memset(dx, 0, {} * sizeof(float));", l.in.size() * L);
  auto add = [&](int64_t offset, const std::string& value) {
    std::string to = at("dxw", offset);
    if (tiles) return fmt::format("vstore({}, {});", to, value);
    return fmt::format("vstore({}, vadd(vload({}), {}));", to, to, value);
  };
  emit_windows(c, l, [&](const Expr& window, const Expr& output, const Expr& ch) {
    if (max && !by_index) c.w.line("const float* xw = {};", at("x", window));
    c.w.line("float* dxw = {};", at("dx", window));
    if (by_index) {
      // Relu kept none of a window that it zeroed: no element takes its gradient, and the bias
      // gradient adds it only where an element was kept.
      c.w.line("const __m512i k = vload_kept({});", at("kept", output));
      c.w.line("const V g = vload({});", at("dy", output));
      if (bias)
        c.w.line("vstore({}, vadd(vload({}), vif_kept_below(k, {}, g)));", at("db", ch * L),
                 at("db", ch * L), R * S);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s)
          c.w.line("{}", add(tap(r, s), fmt::format("vif_kept(k, {}, g)", r * S + s)));
    } else if (max) {
      c.w.line("const V top = vload({});", at("y", output));
      std::string dy = fmt::format("vload({})", at("dy", output));
      c.w.line("const V g = {};", relu ? relu_backward("top", dy) : dy);
      if (bias) c.w.line("vstore({}, vadd(vload({}), g));", at("db", ch * L), at("db", ch * L));
      c.w.line("V taken = vzero();");
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s) {
          c.w.line("{{ V hit = vandnot(taken, veq(vload({}), top)); taken = vor(taken, hit);",
                   at("xw", tap(r, s)));
          c.w.line("  {} }}", add(tap(r, s), "vand(hit, g)"));
        }
    } else {
      c.w.line("const V g = vmul(vload({}), vset({}));", at("dy", output),
               float_literal(1.0f / static_cast<float>(R * S)));
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s) c.w.line("{}", add(tap(r, s), "g"));
    }
  });
  c.w.close();
  c.w.blank();
}

}  // namespace cnnc::codegen
