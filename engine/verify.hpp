// The specialised code against the generic engine, the oracle: one comparison that both
// `cnnc verify` and the test suite run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dsl/graph.hpp"

namespace cnnc::engine {

struct TensorCheck {
  std::string tensor;  // "forward output", "conv1 weight grad", ...
  double max_abs = 0, max_ref = 0;
  // fp32's; bf16's are bf16_products_tolerance() and, for against_fp32, bf16_tolerance()
  double rel_tolerance = 1e-3;
  double max_rel() const { return max_abs / (max_ref > 1e-12 ? max_ref : 1e-12); }
  // Float sums in another order differ by rounding: a tensor passes when its largest error is
  // small next to its largest value.
  bool ok() const { return max_abs <= 1e-5 + rel_tolerance * max_ref; }
};

struct TargetCheck {
  std::string target;  // "avx2", ...
  std::string engine;  // the model's engine name; empty when the CPU cannot run the target
  // Against the generic engine at the target's arithmetic: fp32, or for avx512_bf16 the generic
  // engine with bf16 products. ok() is these.
  std::vector<TensorCheck> tensors;
  // avx512_bf16 only: the same tensors against the fp32 generic engine, each with the bound of
  // bf16_tolerance. What bf16 arithmetic changes, not a check of the code: a relu or max-pool
  // decision that rounding flips moves a whole sample's share of a gradient, which at small
  // batches can exceed the bound (docs/codegen.md).
  std::vector<TensorCheck> against_fp32;
  bool ok() const;
};

struct VerifyReport {
  int lines = 0;      // of generated source
  std::string build;  // "compiled in 1.2 s (clang++ 14.0.6)" or "loaded from the cache"
  std::vector<TargetCheck> targets;
  bool ran() const;  // some target ran: the CPU and the model have it
  bool ok() const;   // every target that ran agrees, and at least one ran
};

// The bound on the bf16 variant's error against the fp32 generic engine (docs/codegen.md,
// "Checking it") while bf16 rounding flips no relu or max-pool decision. bf16 keeps 8 significant
// bits, values 2^-7 of the binade's bottom apart: rounding moves a factor by at most 2^-8 of
// itself, a product of two by about 2^-7, and a sum of such products by 2^-7 of the sum of its
// terms' sizes. Each conv or dense layer a tensor depends on adds one such error: the forward
// outputs depend on every layer once (2^-7 x layers), the gradients and the updated parameters
// on every layer forward and backward (2 x layers) and are sums over the n samples of a batch,
// whose errors add like sqrt(n) terms while the sum itself may cancel down to one term's size.
double bf16_tolerance(const dsl::Graph& graph, bool gradient, int32_t n);

// The tolerance of the bf16 variant against the generic engine with bf16 products, every
// tensor: 2^-7 x the conv and dense layers. Both round the same fp32 values, but those differ
// by fp32 rounding, summed in other orders, so a value near the midpoint between two bf16
// values can round up in one engine and down in the other: one bf16 step, at most 2^-7 of
// itself, in that operand of every product that reads it, through each layer after it.
double bf16_products_tolerance(const dsl::Graph& graph);

// Generates and builds the specialised code for batches of n, runs it on each target
// ("avx512_bf16", "avx512", "avx2", "portable"; those the CPU lacks are reported without
// tensors) and the generic engine on the same random inputs, labels and parameters, and
// compares: inference output, training output, loss, every trainable layer's weight and bias
// gradient, the parameters after one optimizer step. Throws codegen::BuildError when the
// generated code does not build.
VerifyReport verify_specialized(const dsl::Graph& graph, int32_t n, uint64_t seed,
                                const std::vector<std::string>& targets);

}  // namespace cnnc::engine
