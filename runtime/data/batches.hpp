// batches.hpp: the order of an epoch and the float batches the engines read (cnnc_abi.h's
// [n][H][W][C] input with C = 1, and int32 labels).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "data/dataset.hpp"

namespace cnnc::rt {

// A permutation of [0, count) that depends on (seed, epoch) only: Fisher-Yates driven by
// splitmix64, so every standard library and machine produces the same order.
std::vector<int32_t> epoch_order(int32_t count, uint64_t seed, uint32_t epoch);

// Pixel scaling, stated once: a byte p becomes p / 255.0f (correctly rounded, as torchvision's
// ToTensor), so inputs lie in [0, 1]. No mean subtraction.
inline float pixel_to_float(uint8_t p) {
  return static_cast<float>(p) / 255.0f;
}

// pixel_to_float over n bytes, vectorised; dst: [n] floats.
void pixels_to_floats(const uint8_t* src, size_t n, float* dst);

// images: [indices.size()][rows][cols][1] floats; labels: [indices.size()].
// Sample b is data's sample indices[b]; indices must be < data.count.
void prepare_batch(const LabeledImages& data, std::span<const int32_t> indices, float* images,
                   int32_t* labels);

}  // namespace cnnc::rt
