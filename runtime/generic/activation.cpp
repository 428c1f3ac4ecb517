// Activations (relu, sigmoid, tanh, softmax) forward and backward, and the bias of the epilogue.
//
// Every derivative is written in terms of the activation's output y, so forward keeps only y
// and never the pre-activation value.
#include <cmath>

#include "generic/layers.hpp"

namespace cnnc::rt {
namespace {

// y [size] -> softmax(y), shifted by the maximum so that exp never overflows.
void softmax_inplace(int64_t size, float* y) {
  float top = y[0];
  for (int64_t j = 1; j < size; ++j) top = y[j] > top ? y[j] : top;
  double sum = 0.0;
  for (int64_t j = 0; j < size; ++j) {
    y[j] = std::exp(y[j] - top);
    sum += y[j];
  }
  const float inv = float(1.0 / sum);
  for (int64_t j = 0; j < size; ++j) y[j] *= inv;
}

}  // namespace

// y [N][size] in place.
void activation_forward(int32_t act, int32_t n, int64_t size, float* y) {
  const int64_t total = n * size;
  switch (act) {
    case CNNC_LINEAR: return;
    case CNNC_RELU:
      for (int64_t j = 0; j < total; ++j) y[j] = y[j] > 0.0f ? y[j] : 0.0f;
      return;
    case CNNC_SIGMOID:
      for (int64_t j = 0; j < total; ++j) y[j] = 1.0f / (1.0f + std::exp(-y[j]));
      return;
    case CNNC_TANH:
      for (int64_t j = 0; j < total; ++j) y[j] = std::tanh(y[j]);
      return;
    case CNNC_SOFTMAX:
      for (int64_t i = 0; i < n; ++i) softmax_inplace(size, y + i * size);
      return;
  }
}

// y, dy [N][size] -> dx [N][size].
void activation_backward(int32_t act, int32_t n, int64_t size, const float* y, const float* dy,
                         float* dx) {
  const int64_t total = n * size;
  switch (act) {
    case CNNC_LINEAR:
      if (dx != dy)
        for (int64_t j = 0; j < total; ++j) dx[j] = dy[j];
      return;
    case CNNC_RELU:
      for (int64_t j = 0; j < total; ++j) dx[j] = y[j] > 0.0f ? dy[j] : 0.0f;
      return;
    case CNNC_SIGMOID:
      for (int64_t j = 0; j < total; ++j) dx[j] = dy[j] * y[j] * (1.0f - y[j]);
      return;
    case CNNC_TANH:
      for (int64_t j = 0; j < total; ++j) dx[j] = dy[j] * (1.0f - y[j] * y[j]);
      return;
    case CNNC_SOFTMAX:
      // The Jacobian-vector product diag(y) - y y^T, without forming the Jacobian.
      for (int64_t i = 0; i < n; ++i) {
        const float* yi = y + i * size;
        const float* dyi = dy + i * size;
        float* dxi = dx + i * size;
        double dot = 0.0;
        for (int64_t j = 0; j < size; ++j) dot += double(dyi[j]) * yi[j];
        for (int64_t j = 0; j < size; ++j) dxi[j] = yi[j] * (dyi[j] - float(dot));
      }
      return;
  }
}

// y [rows][K] += b [K].
void add_bias(int64_t rows, int32_t k, const float* b, float* y) {
  for (int64_t r = 0; r < rows; ++r)
    for (int32_t j = 0; j < k; ++j) y[r * k + j] += b[j];
}

// dy [rows][K] -> db [K].
void sum_bias(int64_t rows, int32_t k, const float* dy, float* db) {
  for (int32_t j = 0; j < k; ++j) db[j] = 0.0f;
  for (int64_t r = 0; r < rows; ++r)
    for (int32_t j = 0; j < k; ++j) db[j] += dy[r * k + j];
}

}  // namespace cnnc::rt
