// onednn_net.hpp: the baseline a user would write with oneDNN instead of cnnc, for any model
// whose layer table (runtime/cnnc_abi.h) it can map: per layer (bench_layers) and as a whole
// training network (`cnnc bench --engines onednn`). oneDNN stays behind this header, so that
// cnnc builds without it (CNNC_WITH_ONEDNN tells whether these are compiled in).
//
// Layout: activations stay channels-last, oneDNN's nhwc (flat tensors nc), exactly the ABI's
// [n][H][W][C], so no activation is ever reordered. Weights take the format oneDNN prefers
// (format_tag::any): they are reordered from the ABI's [K][R][S][C] once in set_params, and the
// optimizer then runs elementwise on oneDNN's layout, as a oneDNN user would train.
// Threads: oneDNN's own (OpenMP), limited with onednn_set_threads.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "cnnc_abi.h"

namespace cnnc::bench {

// A model the oneDNN baseline cannot run: what() names the layer or setting and why.
struct OnednnUnsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Caps oneDNN's OpenMP threads for the primitives created and run after it (on this thread).
// Call it before constructing an OnednnLayer or OnednnNet: oneDNN splits work by the thread
// count it sees when a primitive is created, and asks OpenMP for that many when it runs.
void onednn_set_threads(int threads);

enum class Phase { forward, backward_data, backward_weights };
const char* phase_name(Phase phase);

// One conv, pool or dense layer at a batch of n, on random data: each phase as one oneDNN
// primitive call (forward training with the fused bias and activation as a post-op; the
// backward phases without the activation's derivative, as the ABI's backward kernels).
class OnednnLayer {
 public:
  // Throws OnednnUnsupported for other kinds.
  OnednnLayer(const cnnc_layer& layer, int32_t n);
  ~OnednnLayer();
  OnednnLayer(const OnednnLayer&) = delete;
  OnednnLayer& operator=(const OnednnLayer&) = delete;

  bool has(Phase phase) const;  // pooling has no backward_weights
  void run(Phase phase);        // one primitive execution, waited for
  // oneDNN's implementation of the phase ("brg:avx512_core", "jit:avx512_core", "gemm:jit").
  std::string implementation(Phase phase) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A whole training network of oneDNN primitives for batches of exactly `batch` samples:
// conv, pooling, inner product and eltwise from oneDNN; dropout (oneDNN has no primitive) with the
// ABI's counter-based mask, softmax + cross-entropy and the optimizer step (oneDNN has none) in
// plain loops over the same float vectors. Throws OnednnUnsupported for the MSE loss.
class OnednnNet {
 public:
  OnednnNet(const cnnc_model& model, int32_t batch);
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
  // One line: the implementation oneDNN chose for each layer's forward.
  std::string implementations() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cnnc::bench
