// Planning: workspace layout and register blocking per layer and ISA.
#include "plan.hpp"

#include <algorithm>

namespace cnnc::codegen {

const char* name_of(Isa isa) {
  switch (isa) {
    case Isa::portable: return "portable";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

int lanes_of(Isa isa) {
  return isa == Isa::avx512 ? 16 : isa == Isa::avx2 ? 8 : 1;
}

namespace {

// Workspace regions are handed out in order, each 64-byte aligned.
struct Arena {
  int64_t top = 0;
  Slot take(int64_t floats) {
    Slot s{top, floats};
    top += (floats + 15) / 16 * 16;
    return s;
  }
};

// Accumulators kept in registers while one input vector is reused: AVX2 has 16 vector
// registers (one holds the input, one or two the broadcast weights), AVX-512 has 32.
int register_block(Isa isa, int64_t units, int64_t most = 0) {
  if (most == 0) most = isa == Isa::avx512 ? 24 : isa == Isa::avx2 ? 12 : 8;
  // Equal blocks: 16 filters run as 2 x 8, not 12 + 4.
  int64_t blocks = (units + most - 1) / most;
  return static_cast<int>((units + blocks - 1) / blocks);
}

}  // namespace

Plan plan_model(const dsl::Graph& g, Isa isa, int max_batch) {
  Plan p;
  p.isa = isa;
  p.lanes = lanes_of(isa);
  p.max_batch = max_batch;
  const int64_t L = p.lanes;
  Arena a;
  p.input = a.take(g.input.size() * L);
  int64_t largest = g.input.size();
  for (size_t i = 0; i < g.layers.size(); ++i) {
    const dsl::Layer& l = g.layers[i];
    LayerPlan lp;
    lp.index = static_cast<int>(i);
    lp.layer = &l;
    lp.needs_dx = i > 0;
    lp.out = a.take(l.out.size() * L);
    largest = std::max(largest, l.out.size());
    if (l.kind == dsl::LayerKind::conv) {
      bool padding = l.pad_top + l.pad_bottom + l.pad_left + l.pad_right > 0;
      int64_t padded =
          (l.in.h + l.pad_top + l.pad_bottom) * (l.in.w + l.pad_left + l.pad_right) * l.in.c * L;
      if (padding) {
        lp.padded = a.take(padded);
        if (lp.needs_dx) lp.dpadded = a.take(padded);
      }
      // Forward tiles of qblock columns x kblock filters: each tap then costs qblock input loads
      // and kblock weight broadcasts for qblock x kblock FMAs. AVX2's 16 registers hold a 2 x 6
      // tile with its inputs; AVX-512's 32 hold 4 x 6 (and broadcasts fold into its FMAs).
      //
      // Each distinct tile shape is a body of R*S taps in the text, and a column or filter count
      // that the tile does not divide adds one, so the shape that divides the layer comes first
      // (lenet5's conv2, 10 columns x 16 filters, takes 5 x 4 in one body instead of 4 x 6 in
      // four: a third of the code and compile time); among those, the most accumulators.
      if (isa == Isa::portable) {
        lp.qblock = 1;
        lp.kblock = register_block(isa, l.units, 8);
      } else {
        int64_t budget = isa == Isa::avx512 ? 30 : 15, best_bodies = 5, best_acc = 0;
        for (int64_t q = 1; q <= std::min<int64_t>(l.out.w, 6); ++q)
          for (int64_t k = 1; k <= std::min<int64_t>(l.units, 8); ++k) {
            if (q * k + q + 1 > budget) continue;
            int64_t bodies = (l.out.w % q ? 2 : 1) * (l.units % k ? 2 : 1);
            if (bodies < best_bodies || (bodies == best_bodies && q * k > best_acc)) {
              best_bodies = bodies;
              best_acc = q * k;
              lp.qblock = static_cast<int>(q);
              lp.kblock = static_cast<int>(k);
            }
          }
      }
      // Unrolling every tap of a filter block is worth it only while the body stays small: a
      // few hundred multiply-adds compile in well under a second. Past that the channel loop
      // stays a loop with a constant bound and only the R x S window is unrolled.
      lp.unroll_c = l.kernel_h * l.kernel_w * l.in.c * lp.kblock * lp.qblock <= 512;
      // Backward tiles run over the S*C taps of a kernel row. The weight gradient keeps
      // dw_kblock x dw_tblock per-lane accumulators and loads dw_kblock + dw_tblock vectors per
      // output position; the input gradient keeps dx_tblock accumulators of one dx row and sums
      // every filter into them, so dx is read and written once per (p, q, r) instead of per
      // filter.
      int64_t taps = l.kernel_w * l.in.c;
      // Rows with few taps (a first layer's S*C is S) take more filters, as many as the
      // registers hold: dw_kblock * dw_tblock accumulators + dw_kblock dz + one x.
      int64_t registers = isa == Isa::avx512 ? 32 : 16;
      lp.dw_tblock = register_block(isa, taps, isa == Isa::avx512 ? 6 : isa == Isa::avx2 ? 5 : 4);
      lp.dw_kblock = register_block(isa, l.units, (registers - 1) / (lp.dw_tblock + 1));
      // Every tile walks the output rows of a chunk; chunks of dw_prows rows keep the input
      // rows and output-gradient rows they read within about 512 KiB of L2, so the tiles after
      // the first find them there.
      int64_t x_row = (l.in.w + l.pad_left + l.pad_right) * l.in.c * L * 4;
      int64_t dz_row = l.out.w * l.units * L * 4;
      lp.dw_prows = 1;
      while (lp.dw_prows < l.out.h &&
             ((lp.dw_prows + 1) * l.stride_h + l.kernel_h) * x_row + (lp.dw_prows + 1) * dz_row <=
                 512 * 1024)
        ++lp.dw_prows;
      lp.dx_tblock = register_block(isa, taps, isa == Isa::avx512 ? 24 : isa == Isa::avx2 ? 12 : 8);
      lp.lane_dw = a.take(l.weight_count * L);
      lp.lane_db = a.take(l.units * L);
    } else if (l.kind == dsl::LayerKind::dense) {
      // Forward: each unit's weight row is its own stream through memory (a large layer's
      // weights come from L3 for every block), and more than about 8 streams at once defeat
      // the prefetchers: keras_mnist's 9216 x 128 layer ran at 31 GFLOP/s with 22.
      lp.kblock = register_block(isa, l.units, 8);
      // Input gradient: dx_tblock inputs in registers, every unit's dz added into them.
      lp.dx_tblock = register_block(isa, l.in.size());
      lp.lane_db = a.take(l.units * L);
      int64_t rows = (max_batch + L - 1) / L * L;
      lp.x_stride = (l.in.size() + L - 1) / L * L;
      lp.slice_x = a.take(rows * lp.x_stride);
      // The slice's weight gradient is a matrix product with tiles of units x input vectors:
      // dw_kblock broadcasts and dw_vblock loads per dw_kblock x dw_vblock FMAs.
      lp.dw_kblock = isa == Isa::avx512 ? 6 : isa == Isa::avx2 ? 3 : 4;
      lp.dw_vblock = isa == Isa::avx512 ? 4 : isa == Isa::avx2 ? 4 : 2;
      lp.slice_dz = a.take(rows * l.units);
    }
    p.layers.push_back(lp);
  }
  if (!p.layers.empty()) {
    const dsl::Layer& last = g.layers.back();
    p.layers.back().softmax_in_loss =
        g.training.loss == dsl::Loss::cross_entropy && last.activation == dsl::Activation::softmax;
  }
  p.grad_a = a.take(largest * L);
  p.grad_b = a.take(largest * L);
  p.loss_lanes = a.take(L);
  p.workspace_floats = a.top;
  return p;
}

}  // namespace cnnc::codegen
