// augment.hpp: dsl.md's `augment shift=N rotate=DEG scale=F`, one affine warp per image drawn
// from a counter-based hash of (seed, epoch, sample), written straight into the float batch.
#pragma once

#include <cstdint>
#include <span>

#include "data/dataset.hpp"

namespace cnnc::rt {

// The statement's values; all zero means no augmentation.
struct AugmentSpec {
  int32_t shift = 0;  // translate by an integer in [-shift, shift] on each axis
  float rotate = 0;   // rotate by a uniform angle in [-rotate, rotate] degrees
  float scale = 0;    // zoom by a uniform factor in [1 - scale, 1 + scale]

  bool enabled() const { return shift != 0 || rotate != 0 || scale != 0; }
};

// One image's draw. Positive dx moves the content right, positive dy down, positive angle
// turns it counter-clockwise as displayed (rows grow downwards), zoom > 1 enlarges it.
struct AugmentParams {
  int32_t dx = 0, dy = 0;
  float angle = 0;  // degrees
  float zoom = 1;
};

// The parameters of sample `sample` (its index in the data set, not in the batch) in epoch
// `epoch`: a pure function of its arguments, so neither threads nor batch order change it.
AugmentParams draw_augment(const AugmentSpec& spec, uint64_t seed, uint32_t epoch, uint32_t sample);

// Warps one image: dst(y, x) = src(T^-1 (y, x)) with T = shift . rotate . zoom about the centre
// ((rows-1)/2, (cols-1)/2), sampled bilinearly with zero outside the source, each byte scaled as
// pixel_to_float. src: [rows][cols] bytes; dst: [rows][cols] floats. Integer shifts with no
// rotation and no zoom reproduce the pixels exactly.
void warp_image(const uint8_t* src, int32_t rows, int32_t cols, const AugmentParams& params,
                float* dst);

// prepare_batch with every image warped by draw_augment(spec, seed, epoch, indices[b]).
void prepare_augmented_batch(const LabeledImages& data, std::span<const int32_t> indices,
                             const AugmentSpec& spec, uint64_t seed, uint32_t epoch, float* images,
                             int32_t* labels);

}  // namespace cnnc::rt
