// Losses and their gradients: softmax + cross-entropy fused on logits, and mean squared error.
//
// Sums run in double so that the loss of a slice does not depend on float rounding of its
// order, and per-sample losses stay exact enough for finite-difference tests.
#include <cmath>
#include <stdexcept>
#include <string>

#include "generic/layers.hpp"

namespace cnnc::rt {
namespace {

void check_label(int32_t label, int32_t o) {
  if (label < 0 || label >= o)
    throw std::invalid_argument("label " + std::to_string(label) + " is outside [0, " +
                                std::to_string(o) + ")");
}

}  // namespace

// z [N][O] logits -> sum of losses; probs, dz [N][O].
float softmax_xent(int32_t n, int32_t o, const float* z, const int32_t* labels, float* probs,
                   float* dz) {
  double total = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    const float* zi = z + int64_t{i} * o;
    float* dzi = dz + int64_t{i} * o;
    check_label(labels[i], o);
    float top = zi[0];
    for (int32_t j = 1; j < o; ++j) top = zi[j] > top ? zi[j] : top;
    double sum = 0.0;
    for (int32_t j = 0; j < o; ++j) {
      dzi[j] = std::exp(zi[j] - top);
      sum += dzi[j];
    }
    // -log softmax(z)[label] = log sum exp(z - top) - (z[label] - top)
    total += std::log(sum) - double(zi[labels[i]] - top);
    const float inv = float(1.0 / sum);
    for (int32_t j = 0; j < o; ++j) dzi[j] *= inv;
    if (probs)
      for (int32_t j = 0; j < o; ++j) probs[int64_t{i} * o + j] = dzi[j];
    dzi[labels[i]] -= 1.0f;
  }
  return float(total);
}

// y [N][O] -> sum of losses; dy [N][O].
float mse(int32_t n, int32_t o, const float* y, const int32_t* labels, float* dy) {
  double total = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    const float* yi = y + int64_t{i} * o;
    float* dyi = dy + int64_t{i} * o;
    check_label(labels[i], o);
    double sum = 0.0;
    for (int32_t j = 0; j < o; ++j) {
      const float diff = yi[j] - (j == labels[i] ? 1.0f : 0.0f);
      sum += double(diff) * diff;
      dyi[j] = 2.0f * diff / float(o);
    }
    total += sum / o;
  }
  return float(total);
}

}  // namespace cnnc::rt
