// Max and average pooling, forward and backward, for one block of L samples in the lanes.
//
// Layout: x [H][W][C][L] -> y [P][Q][C][L], no padding:
//   max: y[p][q][c] = max_{r,s} x[p*sh + r][q*sw + s][c]
//   avg: y[p][q][c] = 1/(R*S) sum_{r,s} x[p*sh + r][q*sw + s][c]
// Max backward sends each gradient to the first window element, in (r, s) order, that equals
// the maximum: the element forward kept, found again instead of stored.
#include <fmt/format.h>

#include "emit.hpp"

namespace cnnc::codegen {

void emit_pool(EmitContext& c, const LayerPlan& lp) {
  const dsl::Layer& l = *lp.layer;
  int64_t L = c.L(), W = l.in.w, C = l.in.c, P = l.out.h, Q = l.out.w, R = l.kernel_h,
          S = l.kernel_w;
  bool max = l.kind == dsl::LayerKind::maxpool;
  auto at = [&](int64_t r, int64_t s) { return fmt::format("xw + {}", (r * W + s) * C * L); };

  function_comment(c, lp, "forward",
                   fmt::format("x [{}][{}][{}][L] -> y [{}][{}][{}][L]", l.in.h, W, C, P, Q, C));
  c.w.function("static {} void {}_forward(float* __restrict ws)", c.kernel(), l.name);
  c.w.line("const float* x = {};", c.input_of(lp.index));
  c.w.line("float* y = {};", c.output_of(lp.index));
  c.w.open("for (int p = 0; p < {}; ++p)", P);
  c.w.open("for (int q = 0; q < {}; ++q)", Q);
  c.w.open("for (int ch = 0; ch < {}; ++ch)", C);
  c.w.line("const float* xw = x + p * {} + q * {} + ch * {};", l.stride_h * W * C * L,
           l.stride_w * C * L, L);
  c.w.line("V m = vload(xw);");
  for (int64_t r = 0; r < R; ++r)
    for (int64_t s = 0; s < S; ++s)
      if (r + s > 0) c.w.line("m = {}(m, vload({}));", max ? "vmax" : "vadd", at(r, s));
  if (!max) c.w.line("m = vmul(m, vset({}));", float_literal(1.0f / static_cast<float>(R * S)));
  c.w.line("vstore(y + ((p * {} + q) * {} + ch) * {}, m);", Q, C, L);
  c.w.close();
  c.w.close();
  c.w.close();
  c.w.close();
  c.w.blank();
  if (!lp.needs_dx) return;  // first layer: no gradient to pass on, no parameters

  function_comment(c, lp, "backward",
                   fmt::format("dy [{}][{}][{}][L] -> dx [{}][{}][{}][L]", P, Q, C, l.in.h, W, C));
  c.w.function("static {} void {}_backward(float* __restrict ws)", c.kernel(), l.name);
  c.w.line("const float* x = {};", c.input_of(lp.index));
  c.w.line("const float* y = {};", c.output_of(lp.index));
  c.w.line("const float* dy = {};", c.grad_of(lp.index));
  c.w.line("float* dx = {};", c.grad_of(lp.index - 1));
  // Windows that tile the input without overlap write each dx value once, so they store
  // instead of adding; only rows and columns that no window covers need clearing then.
  bool tiles = l.stride_h == R && l.stride_w == S;
  bool covers = tiles && P * R == l.in.h && Q * S == W;
  if (!covers) c.w.line("std::memset(dx, 0, {} * sizeof(float));", l.in.size() * L);
  auto add = [&](const std::string& to, const std::string& value) {
    if (tiles) return fmt::format("vstore({}, {});", to, value);
    return fmt::format("vstore({}, vadd(vload({}), {}));", to, to, value);
  };
  c.w.open("for (int p = 0; p < {}; ++p)", P);
  c.w.open("for (int q = 0; q < {}; ++q)", Q);
  c.w.open("for (int ch = 0; ch < {}; ++ch)", C);
  c.w.line("int64_t o = ((p * {} + q) * {} + ch) * {};", Q, C, L);
  c.w.line("int64_t corner = p * {} + q * {} + ch * {};", l.stride_h * W * C * L,
           l.stride_w * C * L, L);
  c.w.line("V g = vload(dy + o);");
  if (max) {
    c.w.line("V top = vload(y + o);");
    c.w.line("V taken = vzero();");
    for (int64_t r = 0; r < R; ++r)
      for (int64_t s = 0; s < S; ++s) {
        int64_t off = (r * W + s) * C * L;
        c.w.line(
            "{{ V hit = vandnot(taken, veq(vload(x + corner + {}), top)); taken = vor(taken, hit);",
            off);
        c.w.line("  {} }}", add(fmt::format("dx + corner + {}", off), "vand(hit, g)"));
      }
  } else {
    c.w.line("g = vmul(g, vset({}));", float_literal(1.0f / static_cast<float>(R * S)));
    for (int64_t r = 0; r < R; ++r)
      for (int64_t s = 0; s < S; ++s) {
        int64_t off = (r * W + s) * C * L;
        c.w.line("{}", add(fmt::format("dx + corner + {}", off), "g"));
      }
  }
  c.w.close();
  c.w.close();
  c.w.close();
  c.w.close();
  c.w.blank();
}

}  // namespace cnnc::codegen
