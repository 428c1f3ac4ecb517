// Inverted dropout, forward and backward, with the mask every engine derives from the ABI's hash.
//
// The mask is recomputed in backward from (seed, epoch, sample, layer, element) instead of being
// stored: it costs one hash per element and keeps the workspace free of masks.
#include "generic/layers.hpp"

namespace cnnc::rt {
namespace {

// x -> x * mask * scale for every sample of the slice; used for both directions, since the
// backward of a fixed mask-and-scale is the same mask-and-scale.
void apply_mask(const cnnc_layer& l, int32_t n, const DropoutKey& key, const float* x, float* y) {
  const int64_t size = int64_t{l.out_h} * l.out_w * l.out_c;
  const uint32_t threshold = cnnc_dropout_threshold(l.dropout_rate);
  const float scale = 1.0f / (1.0f - l.dropout_rate);
  for (int32_t i = 0; i < n; ++i) {
    const uint32_t k =
        cnnc_dropout_key(key.seed, key.epoch, key.sample_base + uint32_t(i), key.layer);
    const float* xi = x + i * size;
    float* yi = y + i * size;
    for (int64_t e = 0; e < size; ++e)
      yi[e] = cnnc_dropout_bits(k, uint32_t(e)) >= threshold ? xi[e] * scale : 0.0f;
  }
}

}  // namespace

// x [N][H][W][C] -> y [N][H][W][C].
void dropout_forward(const cnnc_layer& l, int32_t n, const DropoutKey& key, const float* x,
                     float* y) {
  apply_mask(l, n, key, x, y);
}

// dy [N][H][W][C] -> dx [N][H][W][C]; dx may alias dy.
void dropout_backward(const cnnc_layer& l, int32_t n, const DropoutKey& key, const float* dy,
                      float* dx) {
  apply_mask(l, n, key, dy, dx);
}

}  // namespace cnnc::rt
