// The generic engine: any network the layer table describes, behind the C ABI of cnnc_abi.h.
//
// Build a ModelSpec (the front end does it from its checked Graph), hand it to GenericModel, and
// use abi() exactly as a generated model: the trainer cannot tell the two apart.
//
//   cnnc::rt::GenericModel model(std::move(spec), /*max_batch=*/64);
//   const cnnc_model* m = model.abi();
//   std::vector<std::byte> ws(m->workspace_bytes);  // 64-byte aligned in real use
//   float loss = m->train(m, &pass);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cnnc_abi.h"
#include "model_spec.hpp"

namespace cnnc::rt {

// Throws std::invalid_argument naming the layer and the broken rule when the table is not one
// the ABI allows: shapes that do not chain or do not follow from the kernel, stride and padding;
// parameter counts that do not match the shapes; ranges outside [0, param_count); an activation
// or kind out of range; softmax anywhere but the last layer. A spec built from the front end's
// checked Graph never trips it: this guards the ABI, not the user.
void validate(const ModelSpec& spec);

// Owns everything its cnnc_model points to (name, layer table, plan). Movable, not copyable:
// abi() stays valid across moves because the model lives behind a pointer. The ABI calls are
// const and may run concurrently on different slices; a pass outside the contract (n outside
// [1, max_batch], a missing pointer, a label outside the outputs) throws std::invalid_argument,
// because an oracle that computes on garbage is worse than one that stops.
class GenericModel {
 public:
  // Validates spec (see validate) and plans the workspace for slices of up to max_batch samples.
  // bf16_products: every conv and dense product takes its operands rounded to bf16 and sums in
  // fp32, as the avx512_bf16 variant of generated code does (engine "generic-bf16"; for a
  // Winograd conv, the operands are its transforms, winograd.cpp): the reference that `cnnc
  // verify` holds that variant to, whose relu and max-pool decisions follow the same rounded
  // values but where fp32 summation order moves one across a bf16 rounding midpoint.
  GenericModel(ModelSpec spec, int32_t max_batch, bool bf16_products = false);
  ~GenericModel();
  GenericModel(GenericModel&&) noexcept;
  GenericModel& operator=(GenericModel&&) noexcept;
  GenericModel(const GenericModel&) = delete;
  GenericModel& operator=(const GenericModel&) = delete;

  const cnnc_model* abi() const;
  const ModelSpec& spec() const;

  // The saliency of an input: d score[classes[i]] / d input for each sample of the pass (params,
  // input [n][H][W][C], workspace and n are read; the rest is ignored) into grad [n][H][W][C].
  // The score is the output before a final softmax (the logit), as in inference: dropout is the
  // identity. Only the generic engine has it: compiled code never computes the first layer's
  // input gradient, which training does not need.
  void input_gradient(const cnnc_pass& pass, const int32_t* classes, float* grad) const;

 private:
  struct Engine;
  std::unique_ptr<Engine> engine_;
};

}  // namespace cnnc::rt
