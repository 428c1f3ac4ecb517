// The parameter vector of a model: initialisation by layer, the digests that name a model and
// a set of weights, and the check that a vector of that size (weights, gradients) is finite.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cnnc_abi.h"

namespace cnnc::rt {

// He-uniform for layers followed by relu, Glorot-uniform otherwise; biases zero. Drawn from
// a splitmix64 stream per layer keyed by (seed, layer index), so a layer's initial weights do
// not change when another layer is added.
std::vector<float> initial_params(const cnnc_model& model, uint64_t seed);

// FNV-1a 64 of the model's name, input shape and layer table: checkpoints of one model cannot
// be loaded into another.
uint64_t model_digest(const cnnc_model& model);

// FNV-1a 64 of the parameter bytes, as 16 hex digits: two runs agree bit for bit iff equal.
std::string weights_digest(std::span<const float> params);

// Whether no value is a NaN or an infinity: the check of every step's summed gradients before
// the update, in AVX-512 where the CPU has it.
bool all_finite(std::span<const float> values);

}  // namespace cnnc::rt
