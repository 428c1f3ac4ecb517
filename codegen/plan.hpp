// The plan: a pure-data decision, per model and ISA, of how the specialised code runs, made
// before any text is emitted (as NN-512 does). Emitters only read it.
//
// The strategy: samples in the vector lanes. A slice of the batch is cut into blocks of L
// samples (L = 8 for AVX2, 16 for AVX-512, 1 for portable) and every activation is stored
// [H][W][C][L], so each scalar operation of the per-sample math becomes one vector operation on
// L samples. That fills every lane even where channels are few (the first conv has one).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dsl/graph.hpp"

namespace cnnc::codegen {

// avx512_bf16 is the AVX-512 variant whose conv and dense layers multiply in bf16 (vdpbf16ps)
// and add in fp32; models with `precision bf16` carry it besides the fp32 variants.
enum class Isa { portable, avx2, avx512, avx512_bf16 };
const char* name_of(Isa isa);
int lanes_of(Isa isa);
// Whether every CPU of the ISA has PREFETCHW (every AVX-512 one; some AVX2 ones, Haswell, lack
// it, and the read prefetch the compiler emits instead does not take the line for writing).
bool has_prefetchw(Isa isa);
inline constexpr Isa all_isas[] = {Isa::avx512, Isa::avx2, Isa::portable};
// The variants a model's file carries, in the order the CPU is asked for them.
std::vector<Isa> isas_of(const dsl::Graph& graph);

// A region of the workspace: the name of its offset in generated code (one constant per ISA
// namespace), where it starts in floats from the workspace's start, and what it holds.
struct Slot {
  std::string name;
  int64_t offset = 0;
  int64_t floats = 0;
  std::string holds;  // "conv1's output, [6][6][2][L]": the constant's comment
};

struct LayerPlan {
  int index = 0;  // in Graph::layers
  const dsl::Layer* layer = nullptr;
  Slot out;      // this layer's output for one block: out.size() * L floats
  Slot dy;       // the gradient of the output, in one of two buffers that layers take in turns
  Slot padded;   // conv with padding: the zero-padded input, [Hp][Wp][C][L]
  Slot dpadded;  // conv with padding, backward: the padded input gradient
  // flatten: [H][W][C][L] already is [H*W*C][L], so out and dy are the layer before's regions
  // and the layer has no functions (keras_mnist copied 590 KB each way per block).
  bool view = false;
  // Parameter gradients, for trainable layers only:
  Slot lane_dw;  // conv: per-lane weight-gradient partials, [K][R][S][C][L] (dw_by_taps: sums)
  Slot lane_db;  // conv and dense: per-lane bias-gradient partials, [K][L]
  Slot slice_x;  // dense: the slice's inputs, sample-major [n][x_stride], for the weight gradient
  int64_t x_stride = 0;  // dense: I rounded up to whole vectors, so every row starts aligned
  Slot slice_dz;         // dense: the slice's output gradients, sample-major [n][K]
  int kblock = 1;  // conv, dense: filters (units) whose accumulators live in registers at once
  // FP32 dense forward: vectors of x that every group of kblock units passes over before the
  // next chunk of them; 0 (one pass over all of x) when the layer has no more than that
  int64_t ichunk = 0;
  int qblock = 1;  // conv forward: output columns in the same register tile
  // conv followed by a max pool without padding, on AVX-512: forward runs both in one function
  // whose tiles hold every conv output of pool_qblock windows x pool_kblock filters. When the
  // pool's backward runs, training's also stores which element of each window it kept, so the
  // conv's output never reaches memory in training either.
  bool pool_fused = false;
  int pool_qblock = 1;
  int pool_kblock = 1;
  Slot pool_kept;  // [P][Q][K][L] bytes: the kept element's index in (r, s) order, R*S for none
                   // (so windows of at most 255 elements fuse)
  // conv backward, over t = (s, c), the S*C taps of one kernel row (contiguous in x, dx and w):
  int dw_kblock = 1;  // weight gradient: filters x dw_tblock taps of accumulators
  int dw_tblock = 1;
  // Per-lane weight gradient only: output rows per pass over the tiles (cache blocking).
  int dw_prows = 1;
  // Weight gradient by taps (S*C a whole number of vectors, AVX2, AVX-512 and bf16): the
  // samples in turn with taps in the lanes and filters broadcast, so lanes are not samples and
  // lane_dw holds sums over the slice, [K][R][S][C]; dw_tblock then counts vectors of taps.
  bool dw_by_taps = false;
  // weight gradient by taps: x (bf16 by taps: its column pairs) transposed to [L][Hp][Wp][C]
  Slot x_by_sample;
  int dx_tblock = 1;  // dense input gradient: values of dx summed in registers
  // conv input gradient: dz columns whose dx columns, dx_cblock channels of each, are summed in
  // registers (plan.cpp, dx_tile)
  int dx_qblock = 1;
  int dx_cblock = 1;
  // dense weight gradient: dw_kblock units x dw_vblock vectors of inputs in registers
  int dw_vblock = 1;
  bool unroll_c = true;  // conv: the channel loop is unrolled in the text (false: a loop)
  // conv forward by Winograd's F(2x2, 3x3) (emit_winograd.cpp): each 2x2 tile of outputs from a
  // 4x4 tile of x, in 16 products per filter and channel where the direct sum takes 36. Tiles of
  // winograd_tiles tiles of a row x winograd_kblock filters in registers. With pool_fused the
  // pool is 2x2 with stride 2 and a tile is one pooling window.
  bool winograd = false;
  int winograd_tiles = 1;
  int winograd_kblock = 1;
  Slot winograd_u;  // prepared weights: the transformed filters, [16][K][C] (bf16 [C/2] pairs)
  // conv input gradient by the same F(2x2, 3x3) (cnnc_winograd_dx): a forward of dz padded by 2
  // with the filters turned and transposed, tiles of dx x channels of dx in registers.
  bool winograd_dx = false;
  int winograd_dx_tiles = 1;
  int winograd_dx_kblock = 1;
  Slot winograd_dx_u;  // prepared weights, training: [16][C][K] (bf16 [K/2] pairs)
  // Either's transformed input tiles, [tiles][16][channels][L] (bf16 pairs of channels; positions
  // winograd_step apart), and their products, [16][tiles][kblock][L]: scratch that the forward and
  // the input gradient share.
  Slot winograd_v;
  Slot winograd_m;
  // conv weight gradient by Winograd's F(3x3, 2x2) (cnnc_winograd_dw, emit_winograd.cpp), on top
  // of dw_by_taps (its x_by_sample, fp32 even in bf16, and its sums): groups of
  // winograd_dw_tiles tiles of a row, with winograd_dw_kblock filters x winograd_dw_vectors
  // vectors of channels in registers.
  bool winograd_dw = false;
  int winograd_dw_tiles = 1;
  int winograd_dw_kblock = 1;
  int winograd_dw_vectors = 1;
  // A group's V [16][tiles][L][C], then its Z [16][tiles][K][L] (bf16: L/2 pairs of samples for
  // L), positions winograd_step apart.
  Slot winograd_dw_vz;
  Slot winograd_dw_m;  // the block's products, [16][K][C]
  // relu conv followed by a max pool: the pool's backward applies relu's derivative, and sums the
  // bias gradient, as it routes dy back (emit_pool.cpp), so the conv's backward has no pass of
  // its own over dz
  bool relu_in_pool = false;
  bool needs_dx = true;  // false for the first layer: nobody reads its input gradient
  // avx512_bf16: which products run in bf16 pairs of their reduction dimension (the others stay
  // fp32), and the pair layouts they read. A pair is two bf16 in one 32-bit word, the first in
  // the low half; vdpbf16ps multiplies pairs and adds both products into one fp32 lane.
  bool bf16_forward = false;  // conv: pairs of channels, or of kernel columns (odd C); dense:
                              // pairs of inputs
  bool bf16_columns = false;  // conv forward: pairs of kernel columns s, s + 1 (C is odd)
  bool bf16_dx = false;       // input gradient: pairs of filters (units)
  bool bf16_dw = false;       // weight gradient: conv pairs of output columns (Winograd: of
                              // samples), dense of samples
  Slot x_pairs;               // forward: conv x [Hp][Wp][C/2][L], dense x [ceil(I/2)][L]
  Slot w_pairs;               // forward: conv w [K][R][S][C/2], dense w [K][ceil(I/2)]
  Slot dz_pairs;              // input gradient: dz [P][Q][ceil(K/2)][L] (dense [ceil(K/2)][L])
  Slot wt_pairs;   // input gradient: w by pairs of filters, [ceil(K/2)][R*S*C] (dense [..][I])
  Slot xq_pairs;   // conv weight gradient: x[h][w] with x[h][w + sw], [Hp][Wp][C][L]
  Slot dzq_pairs;  // conv weight gradient: dz[p][2j] with dz[p][2j + 1], [P][ceil(Q/2)][K][L]
  // The bf16 weight gradient by taps or per lane pairs output columns (xq_pairs, dzq_pairs and
  // x_by_sample's pairs); by Winograd it pairs its transforms' samples instead.
  bool dw_column_pairs() const { return bf16_dw && !winograd_dw; }
};

struct Plan {
  Isa isa = Isa::portable;
  int lanes = 1;
  int max_batch = 0;  // the largest slice; the workspace is sized for it
  std::vector<LayerPlan> layers;
  // The block's input, [H][W][C][L]. When the first layer is a conv that pads, the block is
  // loaded straight into the interior of that conv's padded buffer instead, and input is empty.
  Slot input;
  bool input_padded = false;
  std::vector<Slot> regions;  // every Slot above, in the order they were laid out
  int64_t workspace_floats = 0;
  // bf16: the weights in the pair layouts the products read (w_pairs, wt_pairs), laid out in a
  // buffer of their own that the slices of a step share (cnnc_model::prepare), or that a call
  // fills in own_weights when its pass brings none; weights_at holds which one the call reads.
  std::vector<Slot> weight_regions;  // offsets from the start of the prepared weights
  int64_t prepared_floats = 0;
  Slot own_weights;
  Slot weights_at;
};

// The floats between two positions of a Winograd buffer whose positions hold `floats` each: one
// vector more. Each transform stores a tile's 16 positions at once; packed, they lay a multiple
// of 4 KiB apart or close to it, and their stores missed L1 in turn (keras_mnist's conv2 on one
// thread, 64 samples: input gradient 6.1-6.4 ms packed, 4.4-4.8 ms so; weight gradient 5.97 and
// 4.16 ms).
inline int64_t winograd_step(int64_t floats, int64_t L) {
  return floats + L;
}

// Plans one ISA for slices of up to max_batch samples.
Plan plan_model(const dsl::Graph& graph, Isa isa, int max_batch);

// Whether a layer pads its input.
bool pads(const dsl::Layer& l);

}  // namespace cnnc::codegen
