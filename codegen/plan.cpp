// Planning: workspace layout and register blocking per layer and ISA.
#include "codegen/plan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>
#include <utility>

#include "codegen/abi_table.hpp"

namespace cnnc::codegen {

const char* name_of(Isa isa) {
  switch (isa) {
    case Isa::portable: return "portable";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::avx512_bf16: return "avx512_bf16";
  }
  return "?";
}

int lanes_of(Isa isa) {
  return isa == Isa::avx512 || isa == Isa::avx512_bf16 ? 16 : isa == Isa::avx2 ? 8 : 1;
}

bool has_prefetchw(Isa isa) {
  return isa == Isa::avx512 || isa == Isa::avx512_bf16;
}

std::vector<Isa> isas_of(const dsl::Graph& graph) {
  std::vector<Isa> isas(std::begin(all_isas), std::end(all_isas));
  if (graph.training.precision == dsl::Precision::bf16) isas.insert(isas.begin(), Isa::avx512_bf16);
  return isas;
}

namespace {

// Workspace regions are handed out in order, each 64-byte aligned, and listed in the plan.
struct Arena {
  std::vector<Slot>& regions;
  int64_t top = 0;
  int64_t reserve(int64_t floats) {
    int64_t at = top;
    top += (floats + 15) / 16 * 16;
    return at;
  }
  Slot take(std::string name, int64_t floats, std::string holds) {
    Slot s{std::move(name), reserve(floats), floats, std::move(holds)};
    regions.push_back(s);
    return s;
  }
};

// "[6][6][2][L]"; a flat tensor as "[120][L]".
std::string dims(const dsl::Shape& s) {
  return s.flat ? fmt::format("[{}][L]", s.size()) : fmt::format("[{}][{}][{}][L]", s.h, s.w, s.c);
}

// Forward tiles of columns x filters, each column `points` output positions (a pooling window's
// when the conv is fused with its pool). Each distinct tile shape is a body of R*S taps in the
// text, and a column or filter count that the tile does not divide adds one, so the shape that
// divides the layer comes first (lenet5's conv2, 10 columns x 16 filters, takes 5 x 4 in one body
// instead of 4 x 6 in four: a third of the code and compile time); among those, the most
// accumulators. AVX2's 16 registers hold a 2 x 6 tile with its inputs; AVX-512's 32 hold 4 x 6
// (and broadcasts fold into its FMAs); the bf16 variant keeps AVX2's budget. A fused conv and
// pool keeps AVX-512's to 21 registers: lenet5's conv1 with its pool ran its inference 1.3x
// slower in 6 x 4 accumulators (spilled beside the window maxima) than in 3 x 4.
std::pair<int, int> forward_tile(Isa isa, int64_t columns, int64_t filters, int64_t points) {
  int64_t budget = isa != Isa::avx512 ? 15 : points > 1 ? 21 : 30, best_bodies = 5, best_acc = 0;
  std::pair<int, int> best{1, 1};
  for (int64_t q = 1; q <= std::min<int64_t>(columns, 6); ++q)
    for (int64_t k = 1; k <= std::min<int64_t>(filters, 8); ++k) {
      int64_t acc = q * points * k;
      if (acc + q * points + 1 > budget) continue;
      int64_t bodies = (columns % q ? 2 : 1) * (filters % k ? 2 : 1);
      if (bodies < best_bodies || (bodies == best_bodies && acc > best_acc)) {
        best_bodies = bodies;
        best_acc = acc;
        best = {static_cast<int>(q), static_cast<int>(k)};
      }
    }
  return best;
}

// A conv's input-gradient tile (emit_backward_data): qblock columns of dz scatter into the
// (qblock - 1) * sw + S columns of a dx row that they reach, cblock channels of each, held in
// registers while every filter adds into them. Per filter that is qblock dz loads and S * cblock
// weight broadcasts for qblock * S * cblock FMAs: one column alone needs a load per FMA, which
// held keras_mnist's conv2 at 85% of the peak its forward reaches 97% of. Shapes that divide Q
// and C come first (a remainder is another body in the text), then the fewest loads per FMA,
// then the most accumulators. A single column adds each dx value's terms filter by filter for
// one output column after another, the order of the generic engine's scatter: the portable code
// keeps it. bf16 plans as AVX-512 (plan_model), so it tiles several columns too.
std::pair<int, int> dx_tile(Isa isa, const dsl::Layer& l) {
  const int64_t registers = isa == Isa::avx512 ? 32 : 16;
  const bool single_column = isa == Isa::portable;
  const int64_t S = l.kernel_w, sw = l.stride_w, Q = l.out.w, C = l.in.c;
  std::pair<int, int> best{1, 1};
  bool best_divides = false;
  double best_loads = 2;
  int64_t best_acc = 0;
  for (int64_t q = 1; q <= (single_column ? 1 : Q); ++q)
    for (int64_t c = 1; c <= C; ++c) {
      int64_t acc = ((q - 1) * sw + S) * c;
      if (acc + q + 1 > registers) continue;
      bool divides = Q % q == 0 && C % c == 0;
      double loads = static_cast<double>(q + S * c) / static_cast<double>(q * S * c);
      if (std::tie(divides, best_loads, acc) > std::tie(best_divides, loads, best_acc)) {
        best = {static_cast<int>(q), static_cast<int>(c)};
        best_divides = divides;
        best_loads = loads;
        best_acc = acc;
      }
    }
  return best;
}

// Accumulators kept in registers while one input vector is reused: AVX2 has 16 vector
// registers (one holds the input, one or two the broadcast weights), AVX-512 has 32.
int register_block(Isa isa, int64_t units, int64_t most = 0) {
  if (most == 0) most = isa == Isa::avx512 ? 24 : isa == Isa::avx2 ? 12 : 8;
  // Equal blocks: 16 filters run as 2 x 8, not 12 + 4.
  int64_t blocks = (units + most - 1) / most;
  return static_cast<int>((units + blocks - 1) / blocks);
}

// The bf16 variant's pair layouts for a conv or dense layer (see LayerPlan): the activations'
// in the workspace (a), the weights' in the prepared weights (w).
void plan_pairs(LayerPlan& lp, Arena& a, Arena& w, int64_t L) {
  const dsl::Layer& l = *lp.layer;
  auto pairs = [&](int64_t n) { return (n + 1) / 2; };
  int64_t K2 = pairs(l.units);
  if (l.kind == dsl::LayerKind::conv) {
    int64_t Hp = l.in.h + l.pad_top + l.pad_bottom, Wp = l.in.w + l.pad_left + l.pad_right;
    int64_t C = l.in.c, RSC = l.kernel_h * l.kernel_w * C;
    // Pairs of channels where C is even; otherwise (a first layer's single channel) pairs of
    // kernel columns, the last paired with a zero weight when S is odd.
    lp.bf16_forward = true;
    lp.bf16_columns = C % 2 != 0;
    lp.bf16_dx = lp.needs_dx;
    lp.bf16_dw = l.trainable();
    if (lp.winograd) {
      // its forward pairs the transformed tiles and filters (winograd_v, winograd_u)
    } else if (lp.bf16_columns) {
      int64_t S2 = pairs(l.kernel_w);
      lp.x_pairs = a.take(l.name + "_x_pairs", Hp * Wp * C * L,
                          fmt::format("{}'s input, each column paired with the next, bf16, "
                                      "[{}][{}][{}][L]",
                                      l.name, Hp, Wp, C));
      lp.w_pairs = w.take(l.name + "_w_pairs", l.units * l.kernel_h * S2 * C,
                          fmt::format("{}'s weights by pairs of kernel columns, bf16, "
                                      "[{}][{}][{}][{}]",
                                      l.name, l.units, l.kernel_h, S2, C));
    } else {
      lp.x_pairs = a.take(l.name + "_x_pairs", Hp * Wp * (C / 2) * L,
                          fmt::format("{}'s input by pairs of channels, bf16, [{}][{}][{}][L]",
                                      l.name, Hp, Wp, C / 2));
      lp.w_pairs = w.take(l.name + "_w_pairs", l.units * RSC / 2,
                          fmt::format("{}'s weights by pairs of channels, bf16, [{}][{}][{}][{}]",
                                      l.name, l.units, l.kernel_h, l.kernel_w, C / 2));
    }
    if (lp.bf16_dx && !lp.winograd_dx) {  // Winograd pairs the transformed dz tiles instead
      lp.dz_pairs = a.take(l.name + "_dz_pairs", l.out.h * l.out.w * K2 * L,
                           fmt::format("{}'s output gradient by pairs of filters, bf16, "
                                       "[{}][{}][{}][L]",
                                       l.name, l.out.h, l.out.w, K2));
      lp.wt_pairs =
          w.take(l.name + "_wt_pairs", K2 * RSC,
                 fmt::format("{}'s weights by pairs of filters, bf16, [{}][{}]", l.name, K2, RSC));
    }
    if (lp.bf16_dw && !lp.dw_by_taps) {  // by taps, the pairs go straight to x_by_sample
      lp.xq_pairs =
          a.take(l.name + "_xq_pairs", Hp * Wp * C * L,
                 fmt::format("{}'s input, each column paired with the one {} to its right, bf16, "
                             "[{}][{}][{}][L]",
                             l.name, l.stride_w, Hp, Wp, C));
    }
    if (lp.dw_column_pairs()) {
      lp.dzq_pairs = a.take(l.name + "_dzq_pairs", l.out.h * pairs(l.out.w) * l.units * L,
                            fmt::format("{}'s output gradient by pairs of columns, bf16, "
                                        "[{}][{}][{}][L]",
                                        l.name, l.out.h, pairs(l.out.w), l.units));
    }
    return;
  }
  int64_t I = l.in.size(), I2 = pairs(I);
  lp.bf16_forward = true;
  lp.bf16_dx = lp.needs_dx;
  lp.bf16_dw = l.trainable();
  lp.x_pairs = a.take(l.name + "_x_pairs", I2 * L,
                      fmt::format("{}'s input by pairs, bf16, [{}][L]", l.name, I2));
  lp.w_pairs =
      w.take(l.name + "_w_pairs", l.units * I2,
             fmt::format("{}'s weights by pairs of inputs, bf16, [{}][{}]", l.name, l.units, I2));
  if (lp.bf16_dx) {
    lp.dz_pairs = a.take(l.name + "_dz_pairs", K2 * L,
                         fmt::format("{}'s output gradient by pairs, bf16, [{}][L]", l.name, K2));
    // In tiles of the input gradient's register block, each [K2][dx_tblock]: the tile reads one
    // stream, where rows of I pairs would be K2 streams, more than the prefetchers follow.
    lp.wt_pairs = w.take(
        l.name + "_wt_pairs", K2 * I,
        fmt::format("{}'s weights by pairs of units in tiles of {} inputs, bf16, "
                    "[{}][{}][{}]",
                    l.name, lp.dx_tblock, (I + lp.dx_tblock - 1) / lp.dx_tblock, K2, lp.dx_tblock));
  }
}

}  // namespace

Plan plan_model(const dsl::Graph& g, Isa isa, int max_batch) {
  Plan p;
  // The bf16 variant tiles as AVX-512 does; only its products differ.
  const bool bf16 = isa == Isa::avx512_bf16;
  if (bf16) isa = Isa::avx512;
  p.isa = bf16 ? Isa::avx512_bf16 : isa;
  p.lanes = lanes_of(isa);
  p.max_batch = max_batch;
  const int64_t L = p.lanes;
  Arena a{p.regions};
  Arena weights{p.weight_regions};
  const rt::ModelSpec abi = lower_to_abi(g);
  const dsl::Layer& first = g.layers.front();
  p.input_padded = first.kind == dsl::LayerKind::conv && pads(first);
  if (!p.input_padded)
    p.input = a.take("block_input", g.input.size() * L, "the block's input, " + dims(g.input));
  int64_t largest = g.input.size();
  for (size_t i = 0; i < g.layers.size(); ++i) {
    const dsl::Layer& l = g.layers[i];
    LayerPlan lp;
    lp.index = static_cast<int>(i);
    lp.layer = &l;
    lp.needs_dx = l.needs_input_grad;  // the FLOPs the Graph counts are the work done here
    // A max pool right after a conv: forward sums its windows' conv outputs in registers and
    // stores only their maximum (emit_forward_pooled), so the conv's output has no region. Only
    // relu and linear convs (sigmoid and tanh run over the stored output afterwards), and only
    // AVX-512 (bf16 plans as it), where it was measured.
    const dsl::Layer* next = i + 1 < g.layers.size() ? &g.layers[i + 1] : nullptr;
    bool relu_or_linear =
        l.activation == dsl::Activation::relu || l.activation == dsl::Activation::linear;
    bool max_pool_next = next && next->kind == dsl::LayerKind::maxpool && !pads(*next);
    // Winograd's F(2x2, 3x3) for the layers that cnnc_abi.h's rule names (the bf16 generic
    // engine follows the same rule), on AVX-512, where it was measured: keras_mnist's conv2 forward
    // 1.7x, its training step 1.1x (docs/codegen.md).
    lp.winograd = isa == Isa::avx512 && cnnc_winograd(&abi.layers[i]);
    // Training keeps each window's element in a byte, R*S for none: at most 255 elements. A
    // Winograd tile of 2x2 outputs is a window only of a 2x2 pool of stride 2.
    lp.pool_fused = l.kind == dsl::LayerKind::conv && isa == Isa::avx512 && relu_or_linear &&
                    max_pool_next && next->kernel_h * next->kernel_w <= 255 &&
                    (!lp.winograd || (next->kernel_h == 2 && next->kernel_w == 2 &&
                                      next->stride_h == 2 && next->stride_w == 2));
    lp.view = l.kind == dsl::LayerKind::flatten;
    if (lp.view)
      lp.out = i == 0 ? p.input : p.layers[i - 1].out;
    else if (!lp.pool_fused)
      lp.out = a.take(l.name + "_y", l.out.size() * L,
                      fmt::format("{}'s output, {}", l.name, dims(l.out)));
    largest = std::max(largest, l.out.size());
    if (l.kind == dsl::LayerKind::conv) {
      int64_t padded =
          (l.in.h + l.pad_top + l.pad_bottom) * (l.in.w + l.pad_left + l.pad_right) * l.in.c * L;
      if (pads(l)) {
        std::string shape = fmt::format("[{}][{}][{}][L]", l.in.h + l.pad_top + l.pad_bottom,
                                        l.in.w + l.pad_left + l.pad_right, l.in.c);
        lp.padded = a.take(l.name + "_x_padded", padded,
                           fmt::format("{}'s input, zero-padded, {}", l.name, shape));
        if (lp.needs_dx)
          lp.dpadded = a.take(l.name + "_dx_padded", padded,
                              fmt::format("{}'s input gradient, padded, {}", l.name, shape));
      }
      // Forward tiles of qblock columns x kblock filters: each tap then costs qblock input loads
      // and kblock weight broadcasts for qblock x kblock FMAs.
      if (isa == Isa::portable) {
        lp.qblock = 1;
        lp.kblock = register_block(isa, l.units, 8);
      } else {
        std::tie(lp.qblock, lp.kblock) = forward_tile(isa, l.out.w, l.units, 1);
      }
      lp.relu_in_pool =
          l.activation == dsl::Activation::relu && max_pool_next && (lp.needs_dx || l.trainable());
      if (lp.pool_fused) {
        std::tie(lp.pool_qblock, lp.pool_kblock) =
            forward_tile(isa, next->out.w, l.units, next->kernel_h * next->kernel_w);
        // Training stores one byte per pooled output for the pool's backward, which would read
        // the conv's output otherwise (lenet5's conv1: 18,816 bytes a block instead of 301,056).
        if (next->needs_input_grad)
          lp.pool_kept =
              a.take(next->name + "_kept", (next->out.size() * L + 3) / 4,
                     fmt::format("which element of each {} window the forward kept, {} bytes",
                                 next->name, dims(next->out)));
      }
      // The input gradient by Winograd too where cnnc_abi.h's rule names it (emit_winograd.cpp).
      // Register tiles: 4 tiles x 4 filters, 16 accumulators and 8 loads for 16 products (3 x 8,
      // 6 x 4 and 2 x 8 measured within 5% of it on keras_mnist's conv2's forward); groups of up
      // to 5 tiles for dx, whose 13 tiles a row would leave a group of one (5, 5, 3 instead).
      lp.winograd_dx = isa == Isa::avx512 && lp.needs_dx && cnnc_winograd_dx(&abi.layers[i]);
      if (lp.winograd || lp.winograd_dx) {
        const int64_t pair = bf16 ? 2 : 1;
        int64_t v = 0, m = 0;
        if (lp.winograd) {
          lp.winograd_tiles = register_block(isa, l.out.w / 2, 4);
          lp.winograd_kblock = register_block(isa, l.units, 4);
          v = lp.winograd_tiles * 16 * winograd_step(l.in.c / pair * L, L);
          m = 16 * lp.winograd_tiles * lp.winograd_kblock;
          lp.winograd_u =
              weights.take(l.name + "_winograd_u", 16 * l.units * (l.in.c / pair),
                           fmt::format("{}'s transformed filters, {}[16][{}][{}]", l.name,
                                       bf16 ? "bf16 pairs, " : "", l.units, l.in.c / pair));
        }
        if (lp.winograd_dx) {
          lp.winograd_dx_tiles = register_block(isa, l.in.w / 2, 5);
          lp.winograd_dx_kblock = register_block(isa, l.in.c, 4);
          v = std::max<int64_t>(v,
                                lp.winograd_dx_tiles * 16 * winograd_step(l.units / pair * L, L));
          m = std::max<int64_t>(m, 16 * lp.winograd_dx_tiles * lp.winograd_dx_kblock);
          lp.winograd_dx_u = weights.take(
              l.name + "_winograd_dx_u", 16 * l.in.c * (l.units / pair),
              fmt::format("{}'s filters turned and transposed, transformed, {}[16][{}][{}]", l.name,
                          bf16 ? "bf16 pairs, " : "", l.in.c, l.units / pair));
        }
        lp.winograd_v = a.take(
            l.name + "_winograd_v", v,
            fmt::format("{}'s transformed input tiles{}", l.name, bf16 ? ", bf16 pairs" : ""));
        lp.winograd_m = a.take(l.name + "_winograd_m", m * L,
                               fmt::format("{}'s transformed output tiles", l.name));
      }
      // Unrolling every tap of a filter block is worth it only while the body stays small: a
      // few hundred multiply-adds compile in well under a second. Past that the channel loop
      // stays a loop with a constant bound and only the R x S window is unrolled.
      lp.unroll_c = l.kernel_h * l.kernel_w * l.in.c * lp.kblock * lp.qblock <= 512;
      // Backward tiles run over the S*C taps of a kernel row. The weight gradient keeps
      // dw_kblock x dw_tblock per-lane accumulators and loads dw_kblock + dw_tblock vectors per
      // output position; the input gradient keeps a tile of a dx row (dx_tile) and sums every
      // filter into it, so dx is read and written once per tile instead of per filter.
      int64_t taps = l.kernel_w * l.in.c;
      // Rows with few taps (a first layer's S*C is S) take more filters, as many as the
      // registers hold: dw_kblock * dw_tblock accumulators + dw_kblock dz + one x.
      int64_t registers = isa == Isa::avx512 ? 32 : 16;
      lp.dw_tblock = register_block(isa, taps, isa == Isa::avx512 ? 6 : isa == Isa::avx2 ? 5 : 4);
      lp.dw_kblock = register_block(isa, l.units, (registers - 1) / (lp.dw_tblock + 1));
      // Every tile walks the output rows of a chunk, and the tiles after it read the same dz rows
      // and mostly the same x rows. Chunks of dw_prows rows keep what one tile reads within
      // 24 KiB, so that the next tile finds it in L1: lenet5's conv2 ran at 72% of the peak with
      // all 10 rows (64 KiB a tile, from L2) and at 93% with 3. Where not even 2 rows fit
      // (keras_mnist's conv1 on AVX-512: 3 taps, 7 filters), a dz vector serves few FMAs whatever
      // the chunk, and chunks keep the rows all tiles read within about 512 KiB of L2 instead.
      int64_t x_row = (l.in.w + l.pad_left + l.pad_right) * l.in.c * L * 4;
      int64_t dz_row = l.out.w * l.units * L * 4;
      // bf16's dz holds pairs of output columns.
      int64_t dz_tile_row = (bf16 ? (l.out.w + 1) / 2 : l.out.w) * lp.dw_kblock * L * 4;
      auto tile_bytes = [&](int64_t rows) {
        return ((rows - 1) * l.stride_h + 1) * x_row + rows * dz_tile_row;
      };
      auto chunk_bytes = [&](int64_t rows) {
        return (rows * l.stride_h + l.kernel_h) * x_row + rows * dz_row;
      };
      lp.dw_prows = 1;
      while (lp.dw_prows < l.out.h && tile_bytes(lp.dw_prows + 1) <= 24 * 1024) ++lp.dw_prows;
      if (lp.dw_prows < 2)
        while (lp.dw_prows < l.out.h && chunk_bytes(lp.dw_prows + 1) <= 512 * 1024) ++lp.dw_prows;
      std::tie(lp.dx_qblock, lp.dx_cblock) = dx_tile(isa, l);
      // With samples in the lanes every tile above streams all of x and dz from L2 (keras_mnist's
      // conv2 ran at 43% of peak so). Where a kernel row's taps fill whole vectors, the gradient
      // runs by taps instead: taps in the lanes, filters broadcast, every sample in turn at each
      // output position. bf16 runs it too, with pairs of output columns in each vdot
      // (emit_conv.cpp).
      lp.dw_by_taps = l.trainable() && isa != Isa::portable && taps % L == 0;
      // The weight gradient by Winograd too where cnnc_abi.h's rule names it (emit_winograd.cpp):
      // 16 products per filter, channel and tile where the taps take 36.
      lp.winograd_dw = lp.dw_by_taps && isa == Isa::avx512 && cnnc_winograd_dw(&abi.layers[i]);
      if (lp.dw_by_taps) {
        // Registers: dw_kblock x dw_tblock accumulators, dw_tblock x vectors, one broadcast.
        lp.dw_tblock = register_block(isa, taps / L, isa == Isa::avx512 ? 6 : 3);
        lp.dw_kblock = register_block(isa, l.units, (registers - 1 - lp.dw_tblock) / lp.dw_tblock);
        lp.x_by_sample = a.take(
            l.name + "_x_by_sample", padded,
            fmt::format(
                "{}'s input{}, one sample after another, [L][{}][{}][{}]", l.name,
                bf16 && !lp.winograd_dw ? " with the column sw to the right of each, bf16 pairs"
                                        : "",
                l.in.h + l.pad_top + l.pad_bottom, l.in.w + l.pad_left + l.pad_right, l.in.c));
      }
      if (lp.winograd_dw) {
        // Registers (32): winograd_dw_kblock x winograd_dw_vectors accumulators, the vectors of
        // one V row and one broadcast. A group's V and Z stay within 512 KiB of L2 while its 16
        // positions pass over them (keras_mnist's conv2: 96 KiB a tile, 48 in bf16 pairs, whose
        // groups of 6 tiles instead of 4 ran its weight gradient 1.01-1.04x as fast).
        lp.winograd_dw_vectors = register_block(isa, l.in.c / L, 4);
        lp.winograd_dw_kblock =
            register_block(isa, l.units, (31 - lp.winograd_dw_vectors) / lp.winograd_dw_vectors);
        const int64_t tile_floats = 16 * L * (l.in.c + l.units) / (bf16 ? 2 : 1);
        lp.winograd_dw_tiles =
            register_block(isa, l.out.w / 2, std::max<int64_t>(1, 512 * 1024 / (tile_floats * 4)));
        const int64_t T = lp.winograd_dw_tiles, samples = bf16 ? L / 2 : L;  // bf16: pairs
        lp.winograd_dw_vz = a.take(
            l.name + "_winograd_dw_vz",
            16 * (winograd_step(T * samples * l.in.c, L) + winograd_step(T * l.units * samples, L)),
            fmt::format("{}'s transformed x and dz tiles of a group{}, [16][{}][{}][{}] then "
                        "[16][{}][{}][{}]",
                        l.name, bf16 ? ", bf16 pairs of samples" : "", T, bf16 ? "L/2" : "L",
                        l.in.c, T, l.units, bf16 ? "L/2" : "L"));
        lp.winograd_dw_m =
            a.take(l.name + "_winograd_dw_m", 16 * l.units * l.in.c,
                   fmt::format("{}'s transformed weight gradient of the block, [16][{}][{}]",
                               l.name, l.units, l.in.c));
      }
      if (l.trainable()) {
        lp.lane_dw =
            lp.dw_by_taps
                ? a.take(l.name + "_dw_sums", l.weight_count,
                         fmt::format("{}'s weight gradient summed over the slice, [{}][{}][{}][{}]",
                                     l.name, l.units, l.kernel_h, l.kernel_w, l.in.c))
                : a.take(l.name + "_dw_lanes", l.weight_count * L,
                         fmt::format("{}'s weight gradient per lane, [{}][{}][{}][{}][L]", l.name,
                                     l.units, l.kernel_h, l.kernel_w, l.in.c));
        lp.lane_db = a.take(l.name + "_db_lanes", l.units * L,
                            fmt::format("{}'s bias gradient per lane, [{}][L]", l.name, l.units));
      }
    } else if (l.kind == dsl::LayerKind::dense) {
      // Forward: each unit's weight row is its own stream through memory (a large layer's
      // weights come from L3 for every block), and more than about 8 streams at once defeat
      // the prefetchers: keras_mnist's 9216 x 128 layer ran at 31 GFLOP/s with 22.
      lp.kblock = register_block(isa, l.units, 8);
      // FP32: every group of units passes over a chunk of 1024 vectors of x (64 KiB at L = 16),
      // which stays in cache while the weight rows stream, rather than over all of x
      // (keras_mnist's dense1: 590 KB, read once per group of 8 units): 162 to 175 GFLOP/s in a
      // microbenchmark of its forward on one thread (chunks of 512 to 2304 within 1%, of 256
      // 171); in bench_layers 1.07-1.12x in each of 10 alternations (docs/codegen.md). bf16's
      // pairs of x (295 KB) gained nothing.
      constexpr int64_t chunk = 1024;
      lp.ichunk = !bf16 && l.in.size() > chunk ? chunk : 0;
      // Input gradient: dx_tblock inputs in registers, every unit's dz added into them.
      lp.dx_tblock = register_block(isa, l.in.size());
      // The slice's weight gradient is a matrix product with tiles of units x input vectors:
      // dw_kblock broadcasts and dw_vblock loads per dw_kblock x dw_vblock FMAs.
      // Neither is larger than the layer, so the tile is the one that runs.
      lp.dw_kblock = static_cast<int>(std::min<int64_t>(isa == Isa::avx512 ? 6
                                                        : isa == Isa::avx2 ? 3
                                                                           : 4,
                                                        l.units));
      lp.dw_vblock = static_cast<int>(std::min<int64_t>(isa == Isa::avx512 ? 4
                                                        : isa == Isa::avx2 ? 4
                                                                           : 2,
                                                        std::max<int64_t>(1, l.in.size() / L)));
      lp.x_stride = (l.in.size() + L - 1) / L * L;
      if (l.trainable()) {
        int64_t rows = (max_batch + L - 1) / L * L;
        lp.lane_db = a.take(l.name + "_db_lanes", l.units * L,
                            fmt::format("{}'s bias gradient per lane, [{}][L]", l.name, l.units));
        if (bf16) {  // pairs of samples: rows 2m and 2m + 1 in one word
          lp.slice_x = a.take(l.name + "_x_row_pairs", rows / 2 * lp.x_stride,
                              fmt::format("{}'s input rows for the slice by pairs, bf16, [{}][{}]",
                                          l.name, rows / 2, lp.x_stride));
          lp.slice_dz =
              a.take(l.name + "_dz_row_pairs", rows / 2 * l.units,
                     fmt::format("{}'s output gradient rows for the slice by pairs, bf16, [{}][{}]",
                                 l.name, rows / 2, l.units));
        } else {
          lp.slice_x = a.take(
              l.name + "_x_rows", rows * lp.x_stride,
              fmt::format("{}'s input rows for the slice, [{}][{}]", l.name, rows, lp.x_stride));
          lp.slice_dz = a.take(l.name + "_dz_rows", rows * l.units,
                               fmt::format("{}'s output gradient rows for the slice, [{}][{}]",
                                           l.name, rows, l.units));
        }
      }
    }
    if (bf16 && (l.kind == dsl::LayerKind::conv || l.kind == dsl::LayerKind::dense))
      plan_pairs(lp, a, weights, L);
    p.layers.push_back(lp);
  }
  // The output gradients take two buffers of the largest size in turns, the last layer's in the
  // first: layer i writes its input gradient, the output gradient of layer i - 1, into the
  // buffer that it does not read from. One layer needs one buffer. A view has no backward pass:
  // its output gradient is the layer before's.
  int64_t gradients[2] = {a.reserve(largest * L), 0};
  if (p.layers.size() > 1) gradients[1] = a.reserve(largest * L);
  std::vector<size_t> turns(p.layers.size());
  for (size_t i = p.layers.size(), turn = 0; i-- > 0;) {
    turns[i] = turn;
    if (!p.layers[i].view) turn ^= 1;
  }
  for (LayerPlan& lp : p.layers) {
    const dsl::Layer& l = *lp.layer;
    // The loss writes the last layer's output gradient; a layer before it needs one only when
    // its backward pass runs.
    bool last = static_cast<size_t>(lp.index) + 1 == p.layers.size();
    if (!last && !lp.needs_dx && !l.trainable()) continue;
    if (lp.view && lp.index > 0 && !p.layers[lp.index - 1].dy.name.empty()) {
      lp.dy = p.layers[lp.index - 1].dy;
      continue;
    }
    size_t turn = turns[lp.index];
    lp.dy = {l.name + "_dy", gradients[turn], l.out.size() * L,
             fmt::format("{}'s output gradient, {} (buffer {})", l.name, dims(l.out),
                         turn == 0 ? "a" : "b")};
    p.regions.push_back(lp.dy);
  }
  // The call's own prepared weights, for a pass without cnnc_pass::prepared, and where this
  // call's are (emit_drivers.cpp): one pointer in a region of its own.
  if (weights.top > 0) {
    p.prepared_floats = weights.top;
    p.own_weights = a.take("own_weights", weights.top,
                           "the weights prepared by this call when the pass brings none");
    p.weights_at = a.take("weights_at", 2, "a pointer: the prepared weights this call reads");
  }
  p.workspace_floats = a.top;
  return p;
}

bool pads(const dsl::Layer& l) {
  return l.pad_top + l.pad_bottom + l.pad_left + l.pad_right > 0;
}

}  // namespace cnnc::codegen
