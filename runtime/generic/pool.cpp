// Max and average pooling, forward and backward: R x S windows, strides independent, no padding.
//
// Channels last makes C the contiguous inner loop of every window position, which is what the
// compiler vectorises. Windows may overlap (stride < window), so backward accumulates into dx.
#include <cstring>

#include "generic/layers.hpp"

namespace cnnc::rt {
namespace {

struct PoolShape {
  int64_t H, W, C, R, S, P, Q, sh, sw;
};

PoolShape shape_of(const cnnc_layer& l) {
  return {l.in_h, l.in_w, l.in_c, l.kernel_h, l.kernel_w, l.out_h, l.out_w, l.stride_h, l.stride_w};
}

}  // namespace

// x [N][H][W][C] -> y [N][P][Q][C].
void maxpool_forward(const cnnc_layer& l, int32_t n, const float* x, float* y) {
  const PoolShape d = shape_of(l);
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * d.H * d.W * d.C;
    for (int64_t p = 0; p < d.P; ++p)
      for (int64_t q = 0; q < d.Q; ++q) {
        float* yo = y + ((i * d.P + p) * d.Q + q) * d.C;
        const float* corner = xi + (p * d.sh * d.W + q * d.sw) * d.C;
        std::memcpy(yo, corner, d.C * sizeof(float));
        for (int64_t r = 0; r < d.R; ++r)
          for (int64_t s = 0; s < d.S; ++s) {
            const float* xv = corner + (r * d.W + s) * d.C;
            for (int64_t c = 0; c < d.C; ++c) yo[c] = xv[c] > yo[c] ? xv[c] : yo[c];
          }
      }
  }
}

// x [N][H][W][C], dy [N][P][Q][C] -> dx [N][H][W][C].
void maxpool_backward(const cnnc_layer& l, int32_t n, const float* x, const float* dy, float* dx) {
  const PoolShape d = shape_of(l);
  std::memset(dx, 0, n * d.H * d.W * d.C * sizeof(float));
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * d.H * d.W * d.C;
    float* dxi = dx + i * d.H * d.W * d.C;
    for (int64_t p = 0; p < d.P; ++p)
      for (int64_t q = 0; q < d.Q; ++q) {
        const float* dyo = dy + ((i * d.P + p) * d.Q + q) * d.C;
        const int64_t corner = (p * d.sh * d.W + q * d.sw) * d.C;
        for (int64_t c = 0; c < d.C; ++c) {
          // The first strict maximum in (r, s) order, as forward met it.
          int64_t best = corner + c;
          for (int64_t r = 0; r < d.R; ++r)
            for (int64_t s = 0; s < d.S; ++s) {
              const int64_t at = corner + (r * d.W + s) * d.C + c;
              if (xi[at] > xi[best]) best = at;
            }
          dxi[best] += dyo[c];
        }
      }
  }
}

// x [N][H][W][C] -> y [N][P][Q][C].
void avgpool_forward(const cnnc_layer& l, int32_t n, const float* x, float* y) {
  const PoolShape d = shape_of(l);
  const float scale = 1.0f / float(d.R * d.S);
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * d.H * d.W * d.C;
    for (int64_t p = 0; p < d.P; ++p)
      for (int64_t q = 0; q < d.Q; ++q) {
        float* yo = y + ((i * d.P + p) * d.Q + q) * d.C;
        const float* corner = xi + (p * d.sh * d.W + q * d.sw) * d.C;
        std::memset(yo, 0, d.C * sizeof(float));
        for (int64_t r = 0; r < d.R; ++r)
          for (int64_t s = 0; s < d.S; ++s) {
            const float* xv = corner + (r * d.W + s) * d.C;
            for (int64_t c = 0; c < d.C; ++c) yo[c] += xv[c];
          }
        for (int64_t c = 0; c < d.C; ++c) yo[c] *= scale;
      }
  }
}

// dy [N][P][Q][C] -> dx [N][H][W][C].
void avgpool_backward(const cnnc_layer& l, int32_t n, const float* dy, float* dx) {
  const PoolShape d = shape_of(l);
  const float scale = 1.0f / float(d.R * d.S);
  std::memset(dx, 0, n * d.H * d.W * d.C * sizeof(float));
  for (int64_t i = 0; i < n; ++i) {
    float* dxi = dx + i * d.H * d.W * d.C;
    for (int64_t p = 0; p < d.P; ++p)
      for (int64_t q = 0; q < d.Q; ++q) {
        const float* dyo = dy + ((i * d.P + p) * d.Q + q) * d.C;
        float* corner = dxi + (p * d.sh * d.W + q * d.sw) * d.C;
        for (int64_t r = 0; r < d.R; ++r)
          for (int64_t s = 0; s < d.S; ++s) {
            float* dxv = corner + (r * d.W + s) * d.C;
            for (int64_t c = 0; c < d.C; ++c) dxv[c] += dyo[c] * scale;
          }
      }
  }
}

}  // namespace cnnc::rt
