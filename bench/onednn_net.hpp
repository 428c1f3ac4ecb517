// onednn_net.hpp: the baseline a user would write with oneDNN instead of cnnc, for any model
// whose layer table (runtime/cnnc_abi.h) it can map: a whole training network of oneDNN
// primitives (`cnnc bench --engines onednn`; onednn_peer.cpp wraps it in the module cnnc opens
// on demand) whose layers bench_layers also times one primitive at a time. oneDNN stays behind
// this header.
//
// Layout, as a oneDNN user at their best would set it up (OnednnLayout::any): conv primitives
// are created with format_tag::any for source, destination, weights and their gradients, and
// pick their own (nChw16c blocks on AVX-512); inner product takes its producer's format (its
// gemm reads any order), pooling and eltwise follow their input. A reorder runs only at the
// network's edges (the caller's [n][H][W][C] images in, the logits out, dropout's loop, which
// keys its mask by the ABI's [H][W][C] element index) and where two neighbouring primitives
// chose different formats; backward takes the forward's weights format unless that costs it its
// kernel, and a conv's backward-weights goes channels-last when that gets it a wider one
// (onednn_net.cpp says where). OnednnLayout::nhwc keeps every activation in the ABI's
// channels-last order instead (only weights take format_tag::any): the layout bench_layers
// compares against. Weights are reordered from the ABI's [K][R][S][C] once in set_params, and
// the optimizer then runs elementwise on oneDNN's weights layout.
// Threads: oneDNN's own (OpenMP), limited with onednn_set_threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench/onednn_types.hpp"
#include "cnnc_abi.h"

namespace cnnc::bench {

// Caps oneDNN's OpenMP threads for the primitives created and run after it (on this thread).
// Call it before constructing an OnednnNet: oneDNN splits work by the thread count it sees when
// a primitive is created, and asks OpenMP for that many when it runs.
void onednn_set_threads(int threads);

// The activations' formats (see the top of this file). any is the default because it was the
// faster for both models: bench_layers' train_step and infer of onednn-any against
// onednn-nhwc, batch 64, 9 repetitions interleaved at random, medians, images/s, on a shared
// 2-core Zen 5 (CPU family 26) at load average 8.8-10.6, OMP_WAIT_POLICY=passive:
//
//   model        phase  threads      any     nhwc  any/nhwc
//   lenet5       train  1         12,540    9,151  1.37
//   lenet5       train  2          1,337    1,074  1.24
//   lenet5       infer  1         43,827   31,465  1.39
//   lenet5       infer  2         35,614   30,355  1.17
//   keras_mnist  train  1            714      700  1.02
//   keras_mnist  train  2            670      542  1.24
//   keras_mnist  infer  1          2,861    2,634  1.09
//   keras_mnist  infer  2          2,786    2,682  1.04
//
// With OpenMP's default (spinning) waits the 1-thread ratios were alike (1.13, 1.41, 1.15,
// 0.99) and the 2-thread figures collapsed for both layouts on that loaded machine
// (docs/benchmarks.md, "The peers at their best"). Rerun: bench_layers
// --benchmark_filter='onednn-' --benchmark_repetitions=9
// --benchmark_enable_random_interleaving=true.
enum class OnednnLayout { any, nhwc };
const char* layout_name(OnednnLayout layout);

// A whole training network of oneDNN primitives for batches of exactly `batch` samples:
// conv, pooling, inner product and eltwise from oneDNN; dropout (oneDNN has no primitive) with the
// ABI's counter-based mask, softmax + cross-entropy and the optimizer step (oneDNN has none) in
// plain loops. Throws OnednnUnsupported for the MSE loss and for layers it cannot map.
class OnednnNet {
 public:
  OnednnNet(const cnnc_model& model, int32_t batch, OnednnLayout layout = OnednnLayout::any);
  ~OnednnNet();
  OnednnNet(const OnednnNet&) = delete;
  OnednnNet& operator=(const OnednnNet&) = delete;

  // params in the ABI's layout (model.param_count floats): reordered into oneDNN's, and the
  // optimizer state zeroed.
  void set_params(const float* params);
  // Forward, loss, backward and one optimizer step on images [batch][H][W][C] and labels
  // [batch]; opt.step counts from 1. Returns the summed loss; when it or a gradient is not
  // finite the parameters are left as they were.
  // epoch, sample_base and seed key the dropout masks as in cnnc_pass.
  float train_step(const float* images, const int32_t* labels, const cnnc_optimizer& opt,
                   uint32_t epoch, uint32_t sample_base, uint64_t seed);
  // Inference: probabilities [batch][output_size] after the final softmax.
  void forward(const float* images, float* outputs);

  // Every primitive the network runs, layer by layer in the network's order: each phase's
  // primitive, the fused activation's backward, and every reorder.
  std::vector<OnednnImplementation> implementation_rows() const;

  // For bench_layers: layer `layer`'s own primitive of a phase (a conv's backward_data without
  // the reorders around it), run once on what the last train_step left in the buffers. A phase
  // the network does not run (backward of the first trained layer's input, weights of a pool)
  // has none.
  bool has(size_t layer, Phase phase) const;
  void run(size_t layer, Phase phase);
  std::string implementation(size_t layer, Phase phase) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cnnc::bench
