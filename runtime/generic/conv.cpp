// Convolution, forward and backward, one sample at a time: im2col into scratch, then SGEMM.
//
// With channels-last data the im2col matrix of a sample is col[P*Q][R*S*C], and the weights
// [K][R*S*C] are already its right-hand side transposed, so
//   forward           y[PQ][K]    = col[PQ][RSC] * w^T          (GEMM NT)
//   backward-weights  dw[K][RSC] += dy^T[K][PQ] * col[PQ][RSC]  (GEMM TN, summed over samples)
//   backward-data     dcol[PQ][RSC] = dy[PQ][K] * w[K][RSC]     (GEMM NN), then col2im into dx.
// With bf16 products, a layer whose generated code runs by Winograd takes winograd.cpp's path.
#include <algorithm>
#include <cstring>

#include "generic/gemm.hpp"
#include "generic/layers.hpp"

namespace cnnc::rt {
namespace {

struct ConvShape {
  int64_t H, W, C, K, R, S, P, Q, sh, sw, pt, pl;
  int64_t rsc() const { return R * S * C; }
};

ConvShape shape_of(const cnnc_layer& l) {
  return {l.in_h,  l.in_w,  l.in_c,     l.out_c,    l.kernel_h, l.kernel_w,
          l.out_h, l.out_w, l.stride_h, l.stride_w, l.pad_top,  l.pad_left};
}

bool is_pointwise(const cnnc_layer& l) {
  return l.kernel_h == 1 && l.kernel_w == 1 && l.stride_h == 1 && l.stride_w == 1 &&
         l.pad_top == 0 && l.pad_left == 0 && l.pad_bottom == 0 && l.pad_right == 0;
}

// Copies and zero-fills of a few floats each (S*C is 5 for a 5x5 kernel on one channel): plain
// loops the compiler inlines, where a libc call per run would cost more than the copy.
inline void copy(float* dst, const float* src, int64_t count) {
  for (int64_t j = 0; j < count; ++j) dst[j] = src[j];
}

inline void zero(float* dst, int64_t count) {
  for (int64_t j = 0; j < count; ++j) dst[j] = 0.0f;
}

// x [H][W][C] -> col [P][Q][R][S][C], zeros where the window hangs over the padding. For fixed
// (p, q, r) the S*C values are contiguous in x, so a window row inside the image is one copy;
// the columns q whose window rows all lie inside, [q_lo, q_hi), are found once per call.
void im2col(const ConvShape& d, const float* x, float* col) {
  const int64_t run = d.S * d.C, rsc = d.rsc();
  const int64_t q_lo = std::min(d.Q, (d.pl + d.sw - 1) / d.sw);
  const int64_t q_hi = d.W + d.pl >= d.S ? std::min(d.Q, (d.W + d.pl - d.S) / d.sw + 1) : 0;
  for (int64_t p = 0; p < d.P; ++p)
    for (int64_t r = 0; r < d.R; ++r) {
      const int64_t h = p * d.sh - d.pt + r;
      float* dst = col + p * d.Q * rsc + r * run;
      if (h < 0 || h >= d.H) {
        for (int64_t q = 0; q < d.Q; ++q) zero(dst + q * rsc, run);
        continue;
      }
      const float* row = x + h * d.W * d.C;
      for (int64_t q = 0; q < d.Q; ++q) {
        const int64_t w0 = q * d.sw - d.pl;
        if (q >= q_lo && q < q_hi) {
          copy(dst + q * rsc, row + w0 * d.C, run);
          continue;
        }
        for (int64_t s = 0; s < d.S; ++s) {
          const int64_t w = w0 + s;
          if (w < 0 || w >= d.W)
            zero(dst + q * rsc + s * d.C, d.C);
          else
            copy(dst + q * rsc + s * d.C, row + w * d.C, d.C);
        }
      }
    }
}

// dx [H][W][C] += col [P][Q][R][S][C], the adjoint of im2col: padding positions are dropped.
void col2im(const ConvShape& d, const float* col, float* dx) {
  for (int64_t p = 0; p < d.P; ++p)
    for (int64_t q = 0; q < d.Q; ++q) {
      const int64_t h0 = p * d.sh - d.pt, w0 = q * d.sw - d.pl;
      const float* src = col + (p * d.Q + q) * d.rsc();
      for (int64_t r = 0; r < d.R; ++r) {
        const int64_t h = h0 + r;
        if (h < 0 || h >= d.H) continue;
        for (int64_t s = 0; s < d.S; ++s) {
          const int64_t w = w0 + s;
          if (w < 0 || w >= d.W) continue;
          const float* from = src + (r * d.S + s) * d.C;
          float* to = dx + (h * d.W + w) * d.C;
          for (int64_t c = 0; c < d.C; ++c) to[c] += from[c];
        }
      }
    }
}

}  // namespace

// P*Q*R*S*C floats: one sample's im2col matrix; for the bf16 Winograd input gradient, its
// transformed filters and one tile too, and for the weight gradient its sums and one tile's
// transforms (winograd.cpp).
int64_t conv_col_floats(const cnnc_layer& l) {
  if (is_pointwise(l)) return 0;
  const int64_t K = l.out_c, C = l.in_c;
  int64_t col = int64_t{l.out_h} * l.out_w * l.kernel_h * l.kernel_w * C;
  if (cnnc_winograd_dx(&l)) col = std::max<int64_t>(col, 16 * K * (C + 1));
  if (cnnc_winograd_dw(&l)) col = std::max<int64_t>(col, 16 * (K * C + C + K));
  return col;
}

// x [N][H][W][C], w [K][R][S][C], b [K] -> y [N][P][Q][K]; col [P*Q][R*S*C] scratch.
void conv_forward(const cnnc_layer& l, int32_t n, const float* x, const float* w, const float* b,
                  float* y, float* col, float* pack, bool bf16) {
  if (bf16 && cnnc_winograd(&l)) return conv_forward_winograd_bf16(l, n, x, w, b, y, col);
  const ConvShape d = shape_of(l);
  const bool pointwise = is_pointwise(l);
  for (int32_t i = 0; i < n; ++i) {
    const float* xi = x + i * d.H * d.W * d.C;
    float* yi = y + i * d.P * d.Q * d.K;
    if (!pointwise) im2col(d, xi, col);
    GemmArgs g;
    g.trans_b = true;
    g.m = d.P * d.Q, g.n = d.K, g.k = d.rsc();
    g.a = pointwise ? xi : col, g.lda = d.rsc();
    g.b = w, g.ldb = d.rsc();
    g.c = yi, g.ldc = d.K;
    g.bf16 = bf16;
    sgemm(g, pack);
    // The epilogue runs per sample, while the sample's output is still in cache.
    if (b) add_bias(d.P * d.Q, l.out_c, b, yi);
    activation_forward(l.activation, 1, d.P * d.Q * d.K, yi);
  }
}

// dy [N][P][Q][K] -> dw [K][R][S][C] (summed over N), db [K], dx [N][H][W][C].
void conv_backward(const cnnc_layer& l, int32_t n, const float* x, const float* w, const float* dy,
                   float* dx, float* dw, float* db, float* col, float* pack, bool bf16) {
  const ConvShape d = shape_of(l);
  const bool pointwise = is_pointwise(l);
  if (db) sum_bias(n * d.P * d.Q, l.out_c, dy, db);
  // bf16 rounds the transforms of the specialised code's Winograd gradients (winograd.cpp)
  const bool winograd_dx = bf16 && cnnc_winograd_dx(&l);
  const bool winograd_dw = bf16 && cnnc_winograd_dw(&l);
  for (int32_t i = 0; i < n; ++i) {
    const float* xi = x + i * d.H * d.W * d.C;
    const float* dyi = dy + i * d.P * d.Q * d.K;
    if (dw && !winograd_dw) {
      if (!pointwise) im2col(d, xi, col);
      GemmArgs g;
      g.trans_a = true;
      g.m = d.K, g.n = d.rsc(), g.k = d.P * d.Q;
      g.a = dyi, g.lda = d.K;
      g.b = pointwise ? xi : col, g.ldb = d.rsc();
      g.c = dw, g.ldc = d.rsc();
      g.accumulate = i > 0;
      g.bf16 = bf16;
      sgemm(g, pack);
    }
    if (dx && !winograd_dx) {
      float* dxi = dx + i * d.H * d.W * d.C;
      GemmArgs g;
      g.m = d.P * d.Q, g.n = d.rsc(), g.k = d.K;
      g.a = dyi, g.lda = d.K;
      g.b = w, g.ldb = d.rsc();
      g.c = pointwise ? dxi : col, g.ldc = d.rsc();
      g.bf16 = bf16;
      sgemm(g, pack);
      if (!pointwise) {
        std::memset(dxi, 0, d.H * d.W * d.C * sizeof(float));
        col2im(d, col, dxi);
      }
    }
  }
  if (dx && winograd_dx) conv_backward_data_winograd_bf16(l, n, w, dy, dx, col);
  if (dw && winograd_dw) conv_backward_weights_winograd_bf16(l, n, x, dy, dw, col);
}

}  // namespace cnnc::rt
